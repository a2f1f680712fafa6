"""The backend's read extensions (lists, cursors, filters, contact card) and contact delete / erase."""
from __future__ import annotations

import base64
import json

import pytest

from backend import create_app

KEY = "test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}


@pytest.fixture
def client(db_url):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": [KEY], "RATE_LIMIT": 0})
    yield app.test_client()
    app.extensions["orderbridge.engine"].dispose()


def order(ext, **kw):
    base = {"externalOrderId": ext, "totalCost": 10, "status": "INITIALIZED", "date": "2024-01-01T10:00:00+00:00",
            "currency": "EUR"}
    return {**base, **kw}


def post(client, *orders):
    r = client.post("/api/v1/orders", json={"orders": list(orders)}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"failedOrders": []}


def get(client, url, status=200):
    r = client.get(url, headers=AUTH)
    assert r.status_code == status, r.get_data(as_text=True)
    return r.get_json()


def test_lists_page_with_an_opaque_cursor_until_next_is_null(client):
    post(client, *[order(f"L-{i}", email=f"l{i}@example.com") for i in range(7)])
    seen, cursor, pages = [], None, 0
    while True:
        body = get(client, "/api/v1/events?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        seen += [e["key"] for e in body["events"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert seen == [f"L-{i}" for i in range(7)] and pages == 3
    body = get(client, "/api/v1/orders?limit=5")
    assert [o["externalOrderId"] for o in body["orders"]] == [f"L-{i}" for i in range(5)] and body["next"]
    assert {"id", "contactId", "totalCost"} <= set(body["orders"][0])


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"),
                                          ("cursor=%25%25", "cursor"), ("cursor=bm9wZQ", "cursor"),
                                          ("since=yesterday", "since"), ("contactId=x", "contactId")])
def test_bad_list_parameters_get_400_naming_the_parameter(client, query, field):
    body = get(client, f"/api/v1/events?{query}", 400)
    assert body["error"]["message"].startswith(f"{field}:")


def test_events_filter_by_type_key_contact_and_since(client):
    post(client, order("F-1", email="f1@example.com"), order("F-2", email="f2@example.com", status="DELIVERED"))
    post(client, order("F-1", email="f1@example.com", status="CANCELLED"))
    assert [e["key"] for e in get(client, "/api/v1/events?type=orderDELIVERED")["events"]] == ["F-2"]
    assert [e["type"] for e in get(client, "/api/v1/events?key=F-1")["events"]] == ["orderINITIALIZED", "orderCANCELLED"]
    cid = get(client, "/api/v1/events?key=F-2")["events"][0]["contactId"]
    assert [e["key"] for e in get(client, f"/api/v1/events?contactId={cid}")["events"]] == ["F-2"]
    assert len(get(client, "/api/v1/events?since=2000-01-01T00:00:00Z")["events"]) == 3
    assert get(client, "/api/v1/events?since=2999-01-01T00:00:00%2B02:00")["events"] == []


def test_orders_filter_by_status_and_contact(client):
    post(client, order("O-1", email="o@example.com"), order("O-2", email="o@example.com", status="DELIVERED"),
         order("O-3", email="p@example.com"))
    assert [o["externalOrderId"] for o in get(client, "/api/v1/orders?status=delivered")["orders"]] == ["O-2"]
    cid = get(client, "/api/v1/orders?status=DELIVERED")["orders"][0]["contactId"]
    assert [o["externalOrderId"] for o in get(client, f"/api/v1/orders?contactId={cid}")["orders"]] == ["O-1", "O-2"]


def test_one_order_reads_back_as_the_add_orders_object_with_our_ids_in_headers(client):
    post(client, order("G/1", externalCustomerId="c-1", totalCost="12.50", currency="usd"))
    r = client.get("/api/v1/orders/G/1", headers=AUTH)
    assert r.get_json() == {"externalOrderId": "G/1", "externalCustomerId": "c-1", "totalCost": 12.5, "status": "INITIALIZED",
                            "date": "2024-01-01T10:00:00+00:00", "currency": "USD"}
    assert r.headers["X-Order-Id"].isdigit() and r.headers["X-Contact-Id"].isdigit()
    assert get(client, "/api/v1/orders/nope", 404)["error"]["message"] == "no order with externalOrderId 'nope'"


def test_the_contact_card_shows_identifiers_and_orders_info(client):
    post(client, order("H-1", externalCustomerId="h", email="H@example.com", firstName="Ann",
                       date="2024-03-01T12:00:00+02:00"), order("H-2", externalCustomerId="h", phone="+1 555 0100"))
    cid = int(client.get("/api/v1/orders/H-1", headers=AUTH).headers["X-Contact-Id"])
    c = get(client, f"/api/v1/contacts/{cid}")
    assert (c["externalCustomerId"], c["email"], c["phone"], c["firstName"]) == ("h", "H@example.com", "15550100", "Ann")
    assert c["ordersInfo"] == {"count": 2, "lastDate": "2024-03-01T10:00:00+00:00"}
    assert get(client, "/api/v1/contacts/999999", 404)["error"]["status"] == 404


def personal_left(client, cid) -> str:
    """Every stored text about a contact, to search for personal data."""
    return json.dumps([get(client, f"/api/v1/contacts/{cid}"), get(client, f"/api/v1/orders?contactId={cid}"),
                       get(client, f"/api/v1/events?contactId={cid}")])


def test_erase_removes_the_contacts_personal_data_everywhere(client):
    full = order("Z-1", externalCustomerId="zed", email="zed@example.com", phone="+44 20 7946 0000",
                 firstName="Zed", lastName="Zulu", deliveryAddress="1 Secret Lane")
    post(client, full, order("Z-2", email="zed@example.com", status="DELIVERED"), order("Y-1", email="keep@example.com"))
    cid = int(client.get("/api/v1/orders/Z-1", headers=AUTH).headers["X-Contact-Id"])
    r = client.delete("/api/v1/contact?externalCustomerId=zed&erase=true", headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"contactId": cid, "erased": True, "orders": 2, "events": 2}
    left = personal_left(client, cid)
    for secret in ("zed", "Zed", "Zulu", "442079460000", "Secret Lane"):
        assert secret not in left
    z1 = get(client, "/api/v1/orders/Z-1")
    assert z1["totalCost"] == 10 and z1["externalOrderId"] == "Z-1"   # the order still counts, anonymously
    assert get(client, "/api/v1/contacts/%d" % cid)["erasedAt"]
    assert get(client, "/api/v1/orders/Y-1")["email"] == "keep@example.com"
    # the contact is gone for matching: the same customer id later is a new contact
    post(client, order("Z-3", externalCustomerId="zed"))
    assert int(client.get("/api/v1/orders/Z-3", headers=AUTH).headers["X-Contact-Id"]) != cid


def test_delete_without_erase_removes_the_contact_and_unlinks_its_orders(client):
    post(client, order("D-1", externalCustomerId="dee", email="dee@example.com"))
    r = client.delete("/api/v1/contact?externalCustomerId=dee", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["erased"] is False and r.get_json()["orders"] == 1
    assert "X-Contact-Id" not in client.get("/api/v1/orders/D-1", headers=AUTH).headers
    assert get(client, "/api/v1/orders/D-1")["email"] == "dee@example.com"
    post(client, order("D-1", externalCustomerId="dee", email="dee@example.com", status="DELIVERED"))
    assert client.get("/api/v1/orders/D-1", headers=AUTH).headers["X-Contact-Id"]   # matched afresh


def test_an_identical_resend_after_a_delete_matches_afresh_without_an_event(client):
    post(client, order("D-2", externalCustomerId="dee", email="dee@example.com"))
    assert client.delete("/api/v1/contact?externalCustomerId=dee", headers=AUTH).status_code == 200
    post(client, order("D-2", externalCustomerId="dee", email="dee@example.com"))   # e.g. a requeued push
    cid = int(client.get("/api/v1/orders/D-2", headers=AUTH).headers["X-Contact-Id"])
    assert get(client, f"/api/v1/contacts/{cid}")["externalCustomerId"] == "dee"
    assert get(client, f"/api/v1/orders?contactId={cid}")["orders"][0]["externalOrderId"] == "D-2"
    assert len(get(client, "/api/v1/events?key=D-2")["events"]) == 1      # still nothing new to react to


def test_a_deleted_contact_leaves_no_history_to_the_next_contact_given_its_id(client):
    """SQLite gives a new contact the largest id + 1: after deleting the newest contact, the next one
    gets its id, and must not see its events."""
    post(client, order("P-1", externalCustomerId="alice", email="alice@example.com"))
    alice = int(client.get("/api/v1/orders/P-1", headers=AUTH).headers["X-Contact-Id"])
    r = client.delete("/api/v1/contact?externalCustomerId=alice", headers=AUTH)
    assert r.get_json()["events"] == 1
    post(client, order("P-2", externalCustomerId="bob", email="bob@example.com"))
    bob = int(client.get("/api/v1/orders/P-2", headers=AUTH).headers["X-Contact-Id"])
    assert [e["key"] for e in get(client, f"/api/v1/events?contactId={bob}")["events"]] == ["P-2"]
    assert [e["key"] for e in get(client, f"/api/v1/events?contactId={alice}")["events"]] == (
        ["P-2"] if alice == bob else [])


def test_a_deleted_contacts_id_is_not_left_in_its_events_params(client):
    """The event's params named the contact too (`contactId`, as Yespo's templates use it): left there after
    the delete, it named whichever contact SQLite gave the freed id next."""
    post(client, order("Q-1", externalCustomerId="carol", email="carol@example.com"))
    carol = int(client.get("/api/v1/orders/Q-1", headers=AUTH).headers["X-Contact-Id"])
    assert client.delete("/api/v1/contact?externalCustomerId=carol", headers=AUTH).status_code == 200
    post(client, order("Q-2", externalCustomerId="dave", email="dave@example.com"))
    (event,) = get(client, "/api/v1/events?key=Q-1")["events"]
    assert event["contactId"] is None and event["params"]["contactId"] is None
    assert event["params"]["eventKey"] == "Q-1" and event["params"]["email"] == "carol@example.com"   # kept: not erased
    dave = int(client.get("/api/v1/orders/Q-2", headers=AUTH).headers["X-Contact-Id"])
    assert get(client, "/api/v1/events?key=Q-2")["events"][0]["params"]["contactId"] == dave
    assert carol  # (on SQLite dave == carol: the id the old params would have named)


def test_delete_needs_a_known_external_customer_id(client):
    assert client.delete("/api/v1/contact", headers=AUTH).status_code == 400
    r = client.delete("/api/v1/contact?externalCustomerId=ghost&erase=true", headers=AUTH)
    assert r.status_code == 404 and "ghost" in r.get_json()["error"]["message"]
