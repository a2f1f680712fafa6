"""GET /api/v1/orders/<externalOrderId> reads back an order whose id starts with, or is, a slash.

Before, `/` answered 404 and `/A-1` a redirect to `/A-1` without its slash (Werkzeug merges `//`; its path
converter cannot start with `/`), while the order had been accepted: the property test of the round trip
(tests/integration/test_backend_roundtrip.py) failed whenever Hypothesis drew such an id.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.test_workflows_runner import AUTH, Backend

IDS = ["/", "//", "/A-1", "A-1/", "A//1", "shop/1001", "%2F", "a?b#c"]


@pytest.fixture
def b(tmp_path):
    backend = Backend(f"sqlite:///{tmp_path}/b.db", None, starters=False)
    yield backend
    backend.engine.dispose()


def test_each_order_reads_back_by_its_own_id(b):
    b.post(*[{"externalOrderId": ext, "totalCost": i, "status": "DELIVERED", "date": "2025-01-01T00:00:00Z",
              "currency": "USD", "email": "a@example.com"} for i, ext in enumerate(IDS)])
    for i, ext in enumerate(IDS):
        r = b.client.get(f"/api/v1/orders/{quote(ext, safe='')}", headers=AUTH)
        assert r.status_code == 200, (ext, r.status_code)
        assert (r.json["externalOrderId"], r.json["totalCost"]) == (ext, i)


def test_an_unknown_id_with_slashes_is_a_404_naming_it(b):
    r = b.client.get("/api/v1/orders/%2Fnone", headers=AUTH)
    assert r.status_code == 404 and "'/none'" in r.json["message"]
