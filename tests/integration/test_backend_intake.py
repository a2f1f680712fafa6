"""POST /api/v1/orders on the backend (Flask test client; SQLite and PostgreSQL): validation, upsert, events, contacts."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from backend import create_app
from tests.conftest import FIXTURES

KEY = "test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"any-user:{KEY}".encode()).decode()}
SEED = json.loads((FIXTURES / "yespo/add-orders.request.docs-example.json").read_text())


@pytest.fixture
def app(db_url):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": ["other-key", KEY], "RATE_LIMIT": 0, "TESTING": True})
    yield app
    app.extensions["orderbridge.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, *orders, headers=AUTH):
    r = client.post("/api/v1/orders", json={"orders": list(orders)}, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["failedOrders"]


def events(client, query=""):
    body = client.get(f"/api/v1/events?limit=1000{query}", headers=AUTH).get_json()
    assert body["next"] is None
    return body["events"]


def order(ext, **kw):
    base = {"externalOrderId": ext, "totalCost": 10, "status": "INITIALIZED", "date": "2024-01-01T10:00:00+00:00",
            "currency": "EUR"}
    return {k: v for k, v in {**base, **kw}.items() if v is not None}


def seed_order(**kw):
    return {**copy.deepcopy(SEED["orders"][0]), **kw}


# ---- the request ----------------------------------------------------------------------------

def test_the_documented_seed_request_is_accepted_with_its_event(client):
    r = client.post("/api/v1/orders", json=SEED, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"failedOrders": []}
    [ev] = events(client)
    assert ev["type"] == "orderINITIALIZED" and ev["key"] == "100500" and ev["orderId"] and ev["contactId"]
    assert ev["params"] == {"eventKey": "100500", "orderId": ev["orderId"], "contactId": ev["contactId"],
                            "externalCustomerId": "12345", "email": "mail@example.com", "EmailAddress": "mail@example.com",
                            "phone": "380942583691", "SMS": "380942583691"}
    assert set(ev) == {"id", "type", "key", "contactId", "orderId", "params", "createdAt"}


def test_an_order_without_contact_id_fails_alone_and_its_neighbours_are_stored(client):
    bad = order("A-1")
    failed = post(client, order("A-0", email="a@example.com"), bad, order("A-2", phone="+38 (050) 123-45-67"))
    assert failed == [{"order": bad, "error": "externalCustomerId/email/phone: at least one of externalCustomerId, "
                                              "email, phone is required (a phone needs 5 digits or more)"}]
    assert client.get("/api/v1/orders/A-0", headers=AUTH).status_code == 200
    assert client.get("/api/v1/orders/A-2", headers=AUTH).get_json()["phone"] == "380501234567"
    assert client.get("/api/v1/orders/A-1", headers=AUTH).status_code == 404
    assert [e["key"] for e in events(client)] == ["A-0", "A-2"]


def test_blank_optional_amounts_as_the_official_woocommerce_plugin_sends_them_are_absent(client):
    """reference/yespo-api.md: the plugin writes "" for a shipping, discount or tax it does not have."""
    woo = order("W-1", email="w@example.com", totalCost="24.00", shipping="", discount="", taxes="",
                items=[{"externalItemId": "7", "quantity": "2", "cost": "12.00"}])
    assert post(client, woo) == []
    stored = client.get("/api/v1/orders/W-1", headers=AUTH).get_json()
    assert stored["totalCost"] == 24 and not {"shipping", "discount", "taxes"} & set(stored)


def test_a_failed_order_is_returned_as_sent_with_the_field_and_the_problem(client):
    sent = order("B-1", email="b@example.com", status="SHIPPED", totalCost="ten")
    [f] = post(client, sent)
    assert f["order"] == sent
    assert "totalCost: not a number: 'ten'" in f["error"] and "status: must be one of" in f["error"]


@pytest.mark.parametrize("body, message", [
    (b"{not json", "the body is not valid JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b'{"order": []}', 'the body has no "orders" list'),
    (b'{"orders": {"a": 1}}', 'the body has no "orders" list'),
])
def test_a_body_that_is_not_an_orders_request_gets_400_saying_why(client, body, message):
    r = client.post("/api/v1/orders", data=body, headers=AUTH, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"]["status"] == 400 and message in r.get_json()["error"]["message"]


def test_more_than_1000_orders_gets_400_and_nothing_is_stored(client):
    r = client.post("/api/v1/orders", json={"orders": [order(f"X{i}", email="a@b.co") for i in range(1001)]}, headers=AUTH)
    assert r.status_code == 400
    assert r.get_json()["error"]["message"] == "1001 orders in one request; the limit is 1000"
    assert events(client) == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic " + base64.b64encode(b"user:wrong").decode()},
                                     {"Authorization": "Bearer " + KEY}])
def test_without_a_valid_key_the_answer_is_401(client, headers):
    r = client.post("/api/v1/orders", json=SEED, headers=headers)
    assert r.status_code == 401 and r.get_json()["error"]["status"] == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/api/v1/events", headers=headers).status_code == 401


def test_any_user_name_and_any_configured_key_are_accepted(client):
    for user, key in (("", KEY), ("admin", "other-key")):
        h = {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}
        assert client.post("/api/v1/orders", json=SEED, headers=h).status_code == 200


# ---- upsert and events ---------------------------------------------------------------------

def test_a_status_change_adds_an_event_and_no_second_order(client):
    post(client, seed_order())
    post(client, seed_order(status="DELIVERED"))
    assert [e["type"] for e in events(client, "&key=100500")] == ["orderINITIALIZED", "orderDELIVERED"]
    orders = client.get("/api/v1/orders", headers=AUTH).get_json()["orders"]
    assert len(orders) == 1 and orders[0]["status"] == "DELIVERED"
    assert client.get("/api/v1/orders/100500", headers=AUTH).get_json()["status"] == "DELIVERED"


def test_an_identical_resend_is_acknowledged_without_an_event(client):
    post(client, seed_order())
    # the same order written differently (numeric strings, lower-case currency) is still identical
    assert post(client, seed_order(totalCost="1000.00", currency="usd")) == []
    assert len(events(client)) == 1


def test_two_versions_of_one_order_in_one_request_apply_in_order(client):
    post(client, order("V-1", email="v@example.com"), order("V-1", email="v@example.com", status="DELIVERED"),
         order("V-1", email="v@example.com", status="DELIVERED"))
    evs = events(client)
    assert [e["type"] for e in evs] == ["orderINITIALIZED", "orderDELIVERED"]
    assert evs[0]["orderId"] == evs[1]["orderId"]
    assert client.get("/api/v1/orders/V-1", headers=AUTH).get_json()["status"] == "DELIVERED"


# ---- contact matching ------------------------------------------------------------------------

def contact_of(client, ext):
    return int(client.get(f"/api/v1/orders/{ext}", headers=AUTH).headers["X-Contact-Id"])


def test_a_known_external_customer_id_wins_over_email_and_phone(client):
    post(client, order("C-1", externalCustomerId="cust-1", email="one@example.com"),
         order("C-2", email="two@example.com"))
    post(client, order("C-3", externalCustomerId="cust-1", email="two@example.com"))
    assert contact_of(client, "C-3") == contact_of(client, "C-1") != contact_of(client, "C-2")


def test_email_matches_case_insensitively(client):
    post(client, order("E-1", email="Mail@Example.com"))
    post(client, order("E-2", email="mail@EXAMPLE.COM"))
    assert contact_of(client, "E-1") == contact_of(client, "E-2")


def test_phone_matches_by_digits_and_email_comes_before_phone(client):
    post(client, order("P-1", phone="+38 (050) 123-45-67"), order("P-2", email="p2@example.com"))
    post(client, order("P-3", phone="380501234567"))
    post(client, order("P-4", email="p2@example.com", phone="380501234567"))
    assert contact_of(client, "P-3") == contact_of(client, "P-1")
    assert contact_of(client, "P-4") == contact_of(client, "P-2")


def test_a_new_external_id_joins_a_contact_found_by_email_that_had_none(client):
    post(client, order("N-1", email="guest@example.com"))
    post(client, order("N-2", externalCustomerId="cust-9", email="guest@example.com"))
    post(client, order("N-3", externalCustomerId="cust-9"))
    assert contact_of(client, "N-1") == contact_of(client, "N-2") == contact_of(client, "N-3")
    c = client.get(f"/api/v1/contacts/{contact_of(client, 'N-1')}", headers=AUTH).get_json()
    assert c["externalCustomerId"] == "cust-9" and c["ordersInfo"]["count"] == 3


def test_two_customer_ids_sharing_an_email_are_two_contacts(client):
    post(client, order("S-1", externalCustomerId="a", email="family@example.com"))
    post(client, order("S-2", externalCustomerId="b", email="family@example.com"))
    assert contact_of(client, "S-1") != contact_of(client, "S-2")


def test_no_match_creates_a_contact_and_the_link_is_sticky(client):
    post(client, order("K-1", email="first@example.com"), order("K-9", email="other@example.com"))
    first = contact_of(client, "K-1")
    post(client, order("K-1", email="other@example.com", status="DELIVERED"))
    assert contact_of(client, "K-1") == first != contact_of(client, "K-9")
    [ev] = events(client, "&type=orderDELIVERED")
    assert ev["contactId"] == first and ev["params"]["email"] == "other@example.com"


def test_an_update_beside_a_new_order_does_not_stop_email_matching(client):
    post(client, order("U-1", email="one@example.com"), order("U-2", email="two@example.com"))
    post(client, order("U-1", email="one@example.com", status="DELIVERED"), order("U-3", email="two@example.com"))
    assert contact_of(client, "U-3") == contact_of(client, "U-2") != contact_of(client, "U-1")


def test_contacts_created_within_one_request_are_shared_by_its_orders(client):
    post(client, order("R-1", email="new@example.com"), order("R-2", email="NEW@example.com", phone="3805000000"),
         order("R-3", phone="3805000000"))
    assert contact_of(client, "R-1") == contact_of(client, "R-2") == contact_of(client, "R-3")
    c = client.get(f"/api/v1/contacts/{contact_of(client, 'R-1')}", headers=AUTH).get_json()
    assert c["email"] == "new@example.com" and c["phone"] == "3805000000"


# ---- limits and the error shape ------------------------------------------------------------

def test_a_body_over_the_limit_gets_413_as_json(db_url):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": [KEY], "MAX_CONTENT_LENGTH": 1000})
    r = app.test_client().post("/api/v1/orders", data=b'{"orders": [' + b" " * 2000 + b"]}", headers=AUTH,
                               content_type="application/json")
    app.extensions["orderbridge.engine"].dispose()
    assert r.status_code == 413 and r.get_json() == {"message": "request body too large",
                                                  "error": {"status": 413, "message": "request body too large"}}


def test_above_the_rate_limit_the_answer_is_429_with_retry_after(db_url):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": [KEY], "RATE_LIMIT": 1})
    c = app.test_client()
    statuses = [c.get("/api/v1/account/info", headers=AUTH) for _ in range(3)]
    app.extensions["orderbridge.engine"].dispose()
    assert statuses[0].status_code == 200
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].get_json()["error"]["status"] == 429


def test_every_error_is_json_without_a_stack_trace(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")
    r = client.get("/boom")
    assert r.status_code == 500 and r.get_json() == {"message": "internal error; the server log has the details",
        "error": {"status": 500, "message": "internal error; the server log has the details"}}
    assert client.get("/api/v1/nowhere", headers=AUTH).get_json()["error"]["status"] == 404
    r = client.put("/api/v1/orders", headers=AUTH)
    assert r.status_code == 405 and r.get_json()["error"]["status"] == 405


@pytest.mark.parametrize("body, headers, status", [
    (b'{"orders": [', AUTH, 400),
    (b'{"orders": []}', {}, 401),
])
def test_an_error_carries_its_message_where_yespo_clients_read_it(client, body, headers, status):
    # The official Shopify app reads `message` at the top of a JSON error body (yespo-api.md §4.3); without
    # it, every error from us would read "Unknown error" there.
    r = client.post("/api/v1/orders", data=body, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == status
    body = r.get_json()
    assert body["message"] and body["message"] == body["error"]["message"]


def test_healthz_and_account_info(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    info = client.get("/api/v1/account/info", headers=AUTH).get_json()
    assert info == {"userEmail": "admin@localhost", "organisationName": "orderbridge"}


# ---- bodies that are legal JSON but odd -----------------------------------------------------

def test_an_unpaired_surrogate_fails_its_order_not_the_batch(client):
    body = ('{"orders": [' + json.dumps(order("S1", email="a@example.com"))[:-1] + ', "firstName": "\\ud83d"}, '
            + json.dumps(order("S2", email="b@example.com")) + "]}")
    r = client.post("/api/v1/orders", data=body, content_type="application/json", headers=AUTH)
    assert r.status_code == 200
    failed = r.get_json()["failedOrders"]
    assert [f["order"]["externalOrderId"] for f in failed] == ["S1"]
    assert "holds '\\ud83d', half of a UTF-16 surrogate pair" in failed[0]["error"]
    assert [e["key"] for e in events(client)] == ["S2"]


def test_a_number_no_float_holds_is_refused_and_echoed_as_valid_json(client):
    body = '{"orders": [' + json.dumps(order("H1", email="a@example.com"))[:-1].replace('"totalCost": 10', '"totalCost": 1e400') + "}]}"
    r = client.post("/api/v1/orders", data=body, content_type="application/json", headers=AUTH)
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "Infinity" not in text
    failed = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))["failedOrders"]
    assert [f["order"]["externalOrderId"] for f in failed] == ["H1"] and "totalCost" in failed[0]["error"]


def test_an_email_a_known_order_brings_is_matched_within_the_same_request(client):
    """O1's contact (known by customer id) gains an email; O2 with only that email is the same person, in
    the same request as in the next one."""
    assert post(client, order("O1", externalCustomerId="C1")) == []
    assert post(client, order("O1", externalCustomerId="C1", email="x@example.com", status="IN_PROGRESS"),
                order("O2", email="x@example.com")) == []
    assert contact_of(client, "O1") == contact_of(client, "O2")


def test_identifiers_too_long_for_an_index_fail_their_order_not_the_batch(client):
    """PostgreSQL refuses an index entry of some 2700 bytes: a 3000-character id failed the whole batch."""
    long_id, long_email = "x" * 3000, "a" * 250 + "@example.com"
    failed = post(client, order(long_id, email="a@example.com"), order("K-1", externalCustomerId="c" * 256),
                  order("K-2", email=long_email), order("K-3", phone="1" * 40), order("OK-1", email="ok@example.com"))
    reasons = {f["order"]["externalOrderId"][:4]: f["error"] for f in failed}
    assert set(reasons) == {"xxxx", "K-1", "K-2", "K-3"}
    assert "at most 255 characters; got 3000" in reasons["xxxx"] and "at most 255 characters" in reasons["K-1"]
    assert "too long for an email address" in reasons["K-2"] and "too long for a phone number" in reasons["K-3"]
    assert [e["key"] for e in events(client)] == ["OK-1"]


def test_a_long_number_is_rounded_as_written_not_as_its_double(client):
    """1.0049999999999999 read as a double is 1.005, which rounds half up to 1.01; as written it is below
    1.005 and rounds to 1.00, as the connector (and any exact reader) rounds it."""
    body = '{"orders": [' + json.dumps(order("R1", email="a@example.com", currency="USD"))[:-1].replace(
        '"totalCost": 10', '"totalCost": 1.0049999999999999') + "}]}"
    r = client.post("/api/v1/orders", data=body, content_type="application/json", headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"failedOrders": []}
    assert client.get("/api/v1/orders/R1", headers=AUTH).get_json()["totalCost"] == 1


def test_an_amount_a_json_number_cannot_keep_exact_fails_its_order_not_the_batch(client):
    """15 digits in all, the currency's decimal places included: beyond, two amounts 0.01 apart read as one."""
    largest = order("M-1", email="a@example.com", totalCost=9999999999999.99,
                    items=[{"externalItemId": "i", "quantity": 1, "cost": 9999999999999.99}])
    yen = order("M-2", email="a@example.com", currency="JPY", totalCost=999999999999999)
    over = order("M-3", email="a@example.com", totalCost=99999999999999.99)
    over_item = order("M-4", email="a@example.com", items=[{"externalItemId": "i", "quantity": 1, "cost": 10000000000000}])
    failed = post(client, largest, over, yen, over_item)
    assert [f["order"]["externalOrderId"] for f in failed] == ["M-3", "M-4"]
    limit = "too large for EUR: at most 13 digits before the decimal point (15 digits in all with the 2 after it"
    assert failed[0]["error"].startswith(f"totalCost: {limit}") and failed[1]["error"].startswith(f"items[0].cost: {limit}")
    stored = client.get("/api/v1/orders/M-1", headers=AUTH).get_json()
    assert stored["totalCost"] == 9999999999999.99 and stored["items"][0]["cost"] == 9999999999999.99
    assert client.get("/api/v1/orders/M-2", headers=AUTH).get_json()["totalCost"] == 999999999999999
    assert [e["key"] for e in events(client)] == ["M-1", "M-2"]
    # a cent less is another version: a new event, not an identical re-send
    assert post(client, {**largest, "totalCost": 9999999999999.98}) == []
    assert [e["key"] for e in events(client)] == ["M-1", "M-2", "M-1"]
