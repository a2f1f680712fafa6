"""Inputs at the edge of what the backend reads: non-JSON numbers, ids beyond any column, odd order ids."""
from __future__ import annotations

from urllib.parse import quote

from tests.integration.test_backend_intake import AUTH, app, client, order, post  # noqa: F401  (fixtures)


def test_nan_and_infinity_are_not_json_and_get_a_400(client):
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = ('{"orders": [{"externalOrderId": "N1", "totalCost": %s, "status": "INITIALIZED", '
                '"date": "2024-01-01T10:00:00+00:00", "currency": "EUR", "email": "a@b.co"}]}' % constant)
        r = client.post("/api/v1/orders", data=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400 and constant in r.get_json()["error"]["message"]
    assert client.get("/api/v1/orders/N1", headers=AUTH).status_code == 404


def test_a_contact_id_beyond_any_column_is_404_not_500(client):
    r = client.get(f"/api/v1/contacts/{2 ** 64}", headers=AUTH)
    assert r.status_code == 404 and r.get_json()["error"]["status"] == 404


def test_order_ids_with_url_characters_read_back_when_quoted(client):
    assert post(client, order("2024/001#x?y", email="a@b.co")) == []
    r = client.get(f"/api/v1/orders/{quote('2024/001#x?y', safe='')}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["externalOrderId"] == "2024/001#x?y"
