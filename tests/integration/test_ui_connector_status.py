"""The connector status page: counts by state, failed orders with their errors, requeue, last push and polls."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend import create_app
from connector.config import from_dict
from connector.outbox import enqueue_failed
from connector.store import Cursor, OutboxRow, PushAttempt, init_db, make_engine
from daemon.status_ui import register_status_ui

KEY = "status-key"


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(engine)
    with Session(engine) as s:
        enqueue_failed(s, "main", "1001", {"externalOrderId": "1001"}, "email: not an email <b>x</b>")
        enqueue_failed(s, "main", "1002", {"externalOrderId": "1002"}, "no contact identifier")
        s.execute(insert(OutboxRow.__table__).values(shop="main", external_order_id="1003", payload="{}",
                                                     content_hash="h", state="sent"))
        s.execute(insert(PushAttempt.__table__).values(batch_id="b1", orders=2, status_code=200, duration_ms=12.0))
        s.execute(insert(Cursor.__table__).values(shop="main", name="orders", value="2026-11-20T10:00:00Z",
                                                  updated_at=datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)))
        s.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def client(tmp_path, store):
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/backend.db"},
                        "shops": [{"name": "main", "platform": "shopify"}, {"name": "other", "platform": "csv"}]})
    app = create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    register_status_ui(app, config, store)
    c = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/ui/login").text).group(1)
    assert c.post("/ui/login", data={"password": KEY, "csrf_token": token}).status_code == 302
    return c


def states(store) -> dict:
    with store.connect() as conn:
        return {r.external_order_id: r.state for r in conn.execute(select(OutboxRow.__table__))}


def test_status_page_shows_counts_failures_push_and_polls(client):
    html = client.get("/ui/connector/").text
    assert '<td class="num" data-state="failed">2</td>' in html
    assert '<td class="num" data-state="sent">1</td>' in html
    assert "email: not an email &lt;b&gt;x&lt;/b&gt;" in html and "no contact identifier" in html
    assert "2026-11-20 10:05:00 UTC" in html                     # the main shop's last poll
    assert "<td>other</td><td></td><td>never</td>" in html      # a shop never polled
    assert 'href="/ui/connector/"' in client.get("/ui/orders").text   # in the navigation


def test_a_retry_after_pause_shows_as_such_and_not_as_a_poll(client, store):
    from connector import cursors
    from connector.flush import PAUSE_NAME, PAUSE_SHOP
    assert 'id="push-paused"' not in client.get("/ui/connector/").text
    with Session(store) as s:
        cursors.write(s, PAUSE_SHOP, PAUSE_NAME, {"until": "2999-01-01T00:00:00+00:00"})
        s.commit()
    html = client.get("/ui/connector/").text
    assert 'id="push-paused"' in html and "2999-01-01 00:00:00 UTC" in html
    assert PAUSE_NAME not in html                               # not a row of the polls table


def test_requeue_selected_and_all(client, store):
    html = client.get("/ui/connector/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    row = re.search(r'<tr data-order="1001">\s*<td><input type="checkbox" name="id" value="(\d+)"', html).group(1)
    r = client.post("/ui/connector/requeue", data={"csrf_token": token, "id": row}, follow_redirects=True)
    assert "1 order version(s) requeued." in r.text
    assert states(store) == {"1001": "pending", "1002": "failed", "1003": "sent"}
    client.post("/ui/connector/requeue", data={"csrf_token": token, "all": "1"})
    assert states(store)["1002"] == "pending"


def test_requeue_needs_the_csrf_token(client, store):
    r = client.post("/ui/connector/requeue", data={"all": "1"})
    assert r.status_code == 400
    assert states(store)["1002"] == "failed"


def test_odd_ids_are_ignored_not_a_500(client, store):
    assert client.get("/ui/connector/?before=%C2%B2").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/connector/").text).group(1)
    r = client.post("/ui/connector/requeue", data={"csrf_token": token, "id": "²"}, follow_redirects=True)
    assert r.status_code == 200 and "Nothing to requeue" in r.text
    assert states(store) == {"1001": "failed", "1002": "failed", "1003": "sent"}


def test_the_page_carries_the_ui_security_headers(client):
    r = client.get("/ui/connector/")
    assert "default-src" in r.headers["Content-Security-Policy"] and r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
