"""The revenue report's `until=DATE` counts that whole day, in the API as on the reports page.

Before, `GET /api/v1/reports/revenue?since=2026-05-01&until=2026-05-31` read the end as midnight at the start of
May 31 and left that day's purchases out, while the reports page, given the same dates, counted them.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backend import create_app
from backend.workflows import storage as wf
from tests.integration.test_reports_api import AUTH, KEY, order


@pytest.fixture
def app(db_url):
    app = create_app(test_config={"DATABASE_URL": db_url, "API_KEYS": [KEY], "RATE_LIMIT": 0, "SECRET_KEY": "s"})
    client = app.test_client()
    when = datetime(2026, 5, 31, 15, 0, tzinfo=timezone.utc)
    r = client.post("/api/v1/orders", json={"orders": [order("last-day", "c1", "DELIVERED", 25, "USD", when)]},
                    headers=AUTH)
    assert r.json == {"failedOrders": []}
    cid = int(client.get("/api/v1/orders/last-day", headers=AUTH).headers["X-Contact-Id"])
    engine = app.extensions["orderbridge.engine"]
    sent = datetime(2026, 5, 31, 9, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(wf.definitions.insert(), [dict(id=1, name="welcome", start_event="orderDELIVERED", definition="{}",
                                                    created_at=sent, updated_at=sent)])
        conn.execute(wf.messages.insert(), [dict(workflow_id=1, run_id=1, step_row_id=1, contact_id=cid, channel="store",
                                                 to_address="c1@example.com", subject="hi", body="hello",
                                                 status="stored", created_at=sent)])
    yield app
    engine.dispose()


@pytest.mark.parametrize("until, purchases, messages", [
    ("2026-05-31", 1, 1),                   # the whole of May 31
    ("2026-05-31T00:00:00Z", 0, 0),         # a moment: up to it
    ("2026-05-30", 0, 0),
])
def test_until_a_bare_date_counts_that_day(app, until, purchases, messages):
    body = app.test_client().get(f"/api/v1/reports/revenue?currency=USD&since=2026-05-01&until={until}",
                                 headers=AUTH).json
    [line] = body["workflows"]
    assert (line["purchases"], line["messages"]) == (purchases, messages)
    assert body["series"] == ([{"date": "2026-05-31", "purchases": 1, "revenue": 25.0}] if purchases else [])
