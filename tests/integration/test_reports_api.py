"""RFM, revenue attribution and segments, checked against numbers worked out by hand.

Orders go in through the real `POST /api/v1/orders`; messages are written into the workflow
engine's tables as its send step would. Everything is dated relative to AT.
"""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from backend import create_app, segments
from backend.db import get_engine
from backend.workflows import storage as wf

AT = datetime(2026, 6, 1, tzinfo=timezone.utc)
KEY = "test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"any:{KEY}".encode()).decode()}


def order(oid, customer, status, total, currency, when, **extra):
    return {"externalOrderId": oid, "externalCustomerId": customer, "status": status, "totalCost": total,
            "currency": currency, "date": when.isoformat(), **extra}


def d(days=0, hours=0):
    return AT - timedelta(days=days, hours=hours)


ORDERS = [
    # c1: two delivered USD orders, one cancelled, one delivered then cancelled (latest version wins)
    order("c1-a", "c1", "DELIVERED", 10, "USD", d(1)),
    order("c1-b", "c1", "DELIVERED", 20, "USD", d(3)),
    order("c1-x", "c1", "CANCELLED", 99, "USD", d(2)),
    order("c1-r", "c1", "DELIVERED", 70, "USD", d(2)),
    # c2: one EUR order exactly two weeks old: the 2w-1m bin holds its lower edge
    order("c2-a", "c2", "DELIVERED", 30, "EUR", d(14)),
    # c3, c6: no delivered order at all
    order("c3-a", "c3", "IN_PROGRESS", 5, "USD", d(1)),
    order("c3-b", "c3", "INITIALIZED", 7, "USD", d(1)),
    order("c6-a", "c6", "ABANDONED_SHOPPING_CART", 12, "USD", d(1)),
    # c4: three orders in two currencies, the last 100 days ago
    order("c4-a", "c4", "DELIVERED", 100, "USD", d(400)),
    order("c4-b", "c4", "DELIVERED", 50, "USD", d(200)),
    order("c4-c", "c4", "DELIVERED", 40, "EUR", d(100)),
    # c5: one order before AT, one after it (not in the RFM at AT)
    order("c5-a", "c5", "DELIVERED", 5, "USD", d(1)),
    order("c5-b", "c5", "DELIVERED", 1000, "USD", d(-1)),
] + [order(f"c7-{i}", "c7", "DELIVERED", 1, "USD", d(400 + i)) for i in range(6)]   # c7: 6 old orders
LATER = [order("c1-r", "c1", "CANCELLED", 70, "USD", d(2))]


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": [KEY], "RATE_LIMIT": 0,
                                  "SECRET_KEY": "test-secret"})
    yield app
    get_engine_of(app).dispose()


def get_engine_of(app):
    with app.app_context():
        return get_engine()


@pytest.fixture
def client(app):
    c = app.test_client()
    for batch in (ORDERS, LATER):
        r = c.post("/api/v1/orders", json={"orders": batch}, headers=AUTH)
        assert r.status_code == 200 and r.json == {"failedOrders": []}, r.json
    return c


def contact_ids(client) -> dict:
    out = {}
    for o in ORDERS:
        r = client.get(f"/api/v1/orders/{o['externalOrderId']}", headers=AUTH)
        out[o["externalCustomerId"]] = int(r.headers["X-Contact-Id"])
    return out


def add_workflows_and_messages(app, ids):
    """W1 welcome, W2 winback, W3 without messages; messages dated around the orders."""
    now = AT
    wfs = [dict(id=i, name=n, start_event="orderDELIVERED", definition="{}", created_at=now, updated_at=now)
           for i, n in ((1, "welcome"), (2, "winback"), (3, "quiet"))]
    msgs = [  # (workflow, contact, when, status)
        (1, "c1", d(4), "sent"),            # M1: credited with c1-b (3 days before AT)
        (2, "c1", d(1, 12), "stored"),      # M2: the last before c1-a (1 day before AT)
        (1, "c2", d(20), "sent"),           # M3: 6 days before c2-a: outside 5 days, inside 7
        (2, "c5", d(1, -1), "sent"),        # M4: after c5-a, so it is credited with c5-b only
        (1, "c5", d(2), "failed"),          # M5: failed sends earn nothing
        (1, "c4", d(101), "sent"),          # M6: credited with c4-c (EUR)
    ]
    rows = [dict(workflow_id=w, run_id=i + 1, step_row_id=i + 1, contact_id=ids[c], channel="store",
                 to_address=f"{c}@example.com", subject="hi", body="hello", status=st, created_at=when)
            for i, (w, c, when, st) in enumerate(msgs)]
    with get_engine_of(app).begin() as conn:
        conn.execute(wf.definitions.insert(), wfs)
        conn.execute(wf.messages.insert(), rows)


def cells_with_contacts(report):
    return {(c["recency"], c["frequency"]): (c["contacts"], c["revenue"], c["averageCheck"])
            for c in report["cells"] if c["contacts"]}


def test_rfm_counts_delivered_orders_by_their_date(client):
    r = client.get("/api/v1/reports/rfm?at=2026-06-01T00:00:00Z", headers=AUTH)
    assert r.status_code == 200
    body = r.json
    assert body["at"] == "2026-06-01T00:00:00+00:00"
    assert body["recencyBins"] == ["<2w", "2w-1m", "1m-3m", "3m-6m", "6m-12m", ">12m"]
    assert body["frequencyBins"] == ["1", "2", "3-4", "5+"]
    assert len(body["cells"]) == 24
    assert cells_with_contacts(body) == {
        ("<2w", "2"): (1, {"USD": 30.0}, {"USD": 15.0}),                         # c1
        ("<2w", "1"): (1, {"USD": 5.0}, {"USD": 5.0}),                            # c5 (1000 is later)
        ("2w-1m", "1"): (1, {"EUR": 30.0}, {"EUR": 30.0}),                        # c2, exactly 14 days
        ("3m-6m", "3-4"): (1, {"EUR": 40.0, "USD": 150.0}, {"EUR": 40.0, "USD": 75.0}),   # c4
        (">12m", "5+"): (1, {"USD": 6.0}, {"USD": 1.0}),                          # c7
    }
    assert body["noPurchase"] == 2                                                # c3, c6


def test_rfm_moves_with_at(client):
    # a year later everyone with a purchase is in >12m, and c5's order of AT+1 day counts
    body = client.get("/api/v1/reports/rfm?at=2027-07-01", headers=AUTH).json
    cells = cells_with_contacts(body)
    assert cells[(">12m", "2")] == (2, {"USD": 1035.0}, {"USD": 258.75})          # c1 (10+20), c5 (5+1000)
    assert sum(n for n, _, _ in cells.values()) == 5


def test_rfm_rejects_a_bad_date(client):
    r = client.get("/api/v1/reports/rfm?at=yesterday", headers=AUTH)
    assert r.status_code == 400 and "at:" in r.json["error"]["message"]


def test_revenue_credits_the_last_message_within_the_window(app, client):
    add_workflows_and_messages(app, contact_ids(client))
    body = client.get("/api/v1/reports/revenue?currency=USD&windowDays=5", headers=AUTH).json
    assert body["currency"] == "USD" and body["windowDays"] == 5
    assert body["workflows"] == [
        {"workflowId": 1, "name": "welcome", "messages": 3, "purchases": 1, "revenue": 20.0, "averageCheck": 20.0},
        {"workflowId": 2, "name": "winback", "messages": 2, "purchases": 2, "revenue": 1010.0, "averageCheck": 505.0},
        {"workflowId": 3, "name": "quiet", "messages": 0, "purchases": 0, "revenue": 0.0, "averageCheck": 0.0},
    ]
    assert body["series"] == [{"date": "2026-05-29", "purchases": 1, "revenue": 20.0},
                              {"date": "2026-05-31", "purchases": 1, "revenue": 10.0},
                              {"date": "2026-06-02", "purchases": 1, "revenue": 1000.0}]


def test_revenue_in_another_currency_and_window(app, client):
    add_workflows_and_messages(app, contact_ids(client))
    eur5 = client.get("/api/v1/reports/revenue?currency=eur&windowDays=5", headers=AUTH).json
    assert [(w["purchases"], w["revenue"]) for w in eur5["workflows"]] == [(1, 40.0), (0, 0.0), (0, 0.0)]
    eur7 = client.get("/api/v1/reports/revenue?currency=EUR&windowDays=7", headers=AUTH).json
    assert eur7["workflows"][0] == {"workflowId": 1, "name": "welcome", "messages": 3, "purchases": 2,
                                         "revenue": 70.0, "averageCheck": 35.0}


def test_revenue_period_filter(app, client):
    add_workflows_and_messages(app, contact_ids(client))
    body = client.get("/api/v1/reports/revenue?currency=USD&until=2026-06-01", headers=AUTH).json
    assert [(w["purchases"], w["revenue"]) for w in body["workflows"]] == [(1, 20.0), (1, 10.0), (0, 0.0)]


@pytest.mark.parametrize("query, message", [
    ("windowDays=5", "currency: required"),
    ("currency=XYZ", "currency: 'XYZ' is not"),
    ("currency=USD&windowDays=0", "windowDays:"),
    ("currency=USD&windowDays=abc", "windowDays:"),
])
def test_revenue_bad_parameters(client, query, message):
    r = client.get(f"/api/v1/reports/revenue?{query}", headers=AUTH)
    assert r.status_code == 400 and message in r.json["error"]["message"]


def segment(client, query) -> list[str]:
    r = client.get(f"/api/v1/segments?{query}", headers=AUTH)
    assert r.status_code == 200, r.json
    return sorted(c["externalCustomerId"] for c in r.json["contacts"])


def test_segments_by_average_check_count_and_last_order(client):
    assert segment(client, "avgCheckMin=15&currency=USD") == ["c1", "c4", "c5"]
    assert segment(client, "avgCheckMin=15&avgCheckMax=75&currency=USD") == ["c1", "c4"]
    assert segment(client, "orderCountMin=3") == ["c4", "c7"]
    assert segment(client, "orderCountMin=2&orderCountMax=2") == ["c1", "c5"]
    assert segment(client, "orderCountMax=0") == ["c3", "c6"]
    assert segment(client, "lastOrderBefore=2026-01-01") == ["c7"]
    assert segment(client, "lastOrderAfter=2026-05-01&lastOrderBefore=2026-06-01") == ["c1", "c2"]
    assert segment(client, "orderCountMin=1&currency=EUR") == ["c2", "c4"]


def test_segment_contact_fields_and_pages(client):
    r = client.get("/api/v1/segments?orderCountMin=1&limit=2", headers=AUTH).json
    assert len(r["contacts"]) == 2 and r["next"]
    c1 = r["contacts"][0]
    assert c1["externalCustomerId"] == "c1" and c1["orderCount"] == 2 and c1["averageCheck"] == 15.0
    assert c1["lastOrderAt"] == "2026-05-31T00:00:00+00:00"
    seen = [c["externalCustomerId"] for c in r["contacts"]]
    while r["next"]:
        r = client.get(f"/api/v1/segments?orderCountMin=1&limit=2&cursor={r['next']}", headers=AUTH).json
        seen += [c["externalCustomerId"] for c in r["contacts"]]
    assert sorted(seen) == ["c1", "c2", "c4", "c5", "c7"]


def test_segment_money_is_never_summed_across_currencies(client):
    def by_customer(query):
        r = client.get(f"/api/v1/segments?{query}", headers=AUTH)
        assert r.status_code == 200, r.json
        return {c["externalCustomerId"]: (c["currency"], c["revenue"], c["averageCheck"]) for c in r.json["contacts"]}

    everyone = by_customer("orderCountMin=1")
    assert everyone["c4"] == (None, None, None)           # 100 + 50 USD and 40 EUR: no one number says that
    assert everyone["c2"] == ("EUR", 30.0, 30.0)           # one currency: its money, labelled
    assert everyone["c7"] == ("USD", 6.0, 1.0)
    assert by_customer("orderCountMin=1&currency=USD")["c4"] == ("USD", 150.0, 75.0)
    assert by_customer("orderCountMin=1&currency=EUR")["c4"] == ("EUR", 40.0, 40.0)
    assert by_customer("orderCountMax=0")["c3"] == (None, 0.0, None)


def test_a_saved_segment_that_no_longer_holds_is_named(app, client):
    """An average check saved without a currency by an earlier release is refused, naming the segment."""
    with Session(get_engine_of(app)) as s:
        s.add(segments.SavedSegment(name="old big", filters='{"avgCheckMin": 50}'))
        s.commit()
        seg_id = s.exec(select(segments.SavedSegment)).one().id
    r = client.get(f"/api/v1/segments/saved/{seg_id}/contacts", headers=AUTH)
    assert r.status_code == 400
    assert f"saved segment 'old big' (id {seg_id}): avgCheckMin: an average check is in one currency" \
        in r.json["error"]["message"]
    ids = contact_ids(client)
    with Session(get_engine_of(app)) as s, pytest.raises(segments.InvalidSegment, match="old big"):
        segments.contact_in_saved_segment(s, "old big", ids["c4"])


@pytest.mark.parametrize("query, message", [
    ("avgCheckMin=10", "avgCheckMin: an average check is in one currency; add currency"),
    ("avgCheckMax=10&orderCountMin=1", "avgCheckMax: an average check is in one currency"),
    ("avgCheckMin=ten", "avgCheckMin: expected a number"),
    ("orderCountMin=1.5", "orderCountMin: expected a whole number"),
    ("lastOrderAfter=soon", "lastOrderAfter: expected an ISO 8601 date"),
    ("orderCountMin=5&orderCountMax=1", "orderCount: the lower bound is above"),
    ("colour=red", "colour: unknown filter"),
    ("limit=0", "limit:"),
])
def test_segment_bad_parameters(client, query, message):
    r = client.get(f"/api/v1/segments?{query}", headers=AUTH)
    assert r.status_code == 400 and message in r.json["error"]["message"]


def test_saved_segments_crud_and_workflow_test(app, client):
    body = {"name": "big spenders", "filters": {"avgCheckMin": 50, "currency": "USD"}}
    r = client.post("/api/v1/segments/saved", json=body, headers=AUTH)
    assert r.status_code == 201
    seg = r.json
    assert seg["name"] == "big spenders" and seg["filters"] == {"avgCheckMin": 50.0, "currency": "USD"}
    assert client.post("/api/v1/segments/saved", json=body, headers=AUTH).status_code == 409
    bad = client.post("/api/v1/segments/saved", json={"name": "x", "filters": {"avgCheck": 1}}, headers=AUTH)
    assert bad.status_code == 400 and "avgCheck: unknown filter" in bad.json["error"]["message"]
    listed = client.get("/api/v1/segments/saved", headers=AUTH).json
    assert [s["name"] for s in listed["segments"]] == ["big spenders"] and listed["next"] is None
    members = client.get(f"/api/v1/segments/saved/{seg['id']}/contacts", headers=AUTH).json["contacts"]
    assert sorted(c["externalCustomerId"] for c in members) == ["c4", "c5"]

    ids = contact_ids(client)
    with Session(get_engine_of(app)) as s:
        assert segments.contact_in_saved_segment(s, "big spenders", ids["c4"]) is True
        assert segments.contact_in_saved_segment(s, seg["id"], ids["c1"]) is False
        with pytest.raises(segments.InvalidSegment):
            segments.contact_in_saved_segment(s, "nope", ids["c1"])

    upd = client.put(f"/api/v1/segments/saved/{seg['id']}", headers=AUTH,
                     json={"name": "regulars", "filters": {"orderCountMin": 2}})
    assert upd.status_code == 200 and upd.json["filters"] == {"orderCountMin": 2}
    assert client.get(f"/api/v1/segments/saved/{seg['id']}", headers=AUTH).json["name"] == "regulars"
    assert client.delete(f"/api/v1/segments/saved/{seg['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/api/v1/segments/saved/{seg['id']}", headers=AUTH).status_code == 404


def test_reports_need_the_api_key(client):
    assert client.get("/api/v1/reports/rfm").status_code == 401
    assert client.get("/api/v1/segments").status_code == 401


@pytest.mark.parametrize("query", ["segments?limit=%C2%B2", "segments?orderCountMin=1&cursor=aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",
                                   "reports/rfm?at=0001-01-01", "segments/saved?limit=%C2%B2"])
def test_odd_query_values_are_a_400_not_a_500(client, query):
    r = client.get(f"/api/v1/{query}", headers=AUTH)
    assert r.status_code == 400, r.get_data(as_text=True)


def test_the_report_cache_sees_an_event_committed_below_the_highest_id(app):
    """PostgreSQL hands out ids at insert, not at commit: a request that commits late adds an event below the
    highest id already read. Keyed on the highest id alone, the cached reports missed it until their TTL."""
    from sqlalchemy import insert

    from backend import reports
    from backend.storage import Event
    engine = get_engine_of(app)
    now = datetime.now(timezone.utc)
    row = {"type": "orderDELIVERED", "key": "k", "params": "{}", "created_at": now}
    with engine.begin() as conn:
        conn.execute(insert(Event.__table__), [{**row, "id": 100}])
    with engine.connect() as conn:
        before = reports.data_version(conn)
    with engine.begin() as conn:                # the request that took id 50 commits now
        conn.execute(insert(Event.__table__), [{**row, "id": 50}])
    with engine.connect() as conn:
        assert reports.data_version(conn) != before
