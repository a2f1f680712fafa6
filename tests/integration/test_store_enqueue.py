"""The connector store on SQLite and PostgreSQL: inbox dedupe, outbox versions, order heads."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlmodel import Session

from connector.format import parse_order
from connector.inbox import record_delivery
from connector.outbox import Version, enqueue
from connector.store import OutboxRow, init_db, make_engine

SEED = json.loads((__import__("pathlib").Path(__file__).parents[1] / "fixtures/yespo/add-orders.request.docs-example.json").read_text())["orders"][0]


def _engine(url):
    e = make_engine(url)
    init_db(e)
    return e


def test_a_delivery_id_is_stored_once(db_url):
    e = _engine(db_url)
    with Session(e) as s:
        a = record_delivery(s, platform="shopify", shop="m", topic="orders/create", headers={"Authorization": "x", "X-A": "1"},
                            body=b"{}", delivery_id="w-1")
        b = record_delivery(s, platform="shopify", shop="m", topic="orders/create", headers={}, body=b"{}", delivery_id="w-1")
        c = record_delivery(s, platform="shopify", shop="m", topic="orders/create", headers={}, body=b"{}", delivery_id=None)
        s.commit()
    assert a is not None and b is None and c is not None


def test_identical_versions_are_enqueued_once_and_changes_again(db_url):
    e = _engine(db_url)
    order = parse_order(SEED)
    changed = parse_order(dict(SEED, status="DELIVERED"))
    with Session(e) as s:
        r1 = enqueue(s, [Version.of("m", order), Version.of("m", order)])
        s.commit()
    with Session(e) as s:
        r2 = enqueue(s, [Version.of("m", order), Version.of("m", changed)])
        s.commit()
        n = s.execute(select(func.count()).select_from(OutboxRow)).scalar()
    assert (r1.enqueued, r1.unchanged) == (1, 1)
    assert (r2.enqueued, r2.unchanged) == (1, 1)
    assert n == 2


def test_an_older_platform_version_is_refused(db_url):
    e = _engine(db_url)
    t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    new = parse_order(dict(SEED, status="DELIVERED"))
    old = parse_order(SEED)
    with Session(e) as s:
        enqueue(s, [Version.of("m", new, source_updated_at=t)])
        s.commit()
    with Session(e) as s:
        r = enqueue(s, [Version.of("m", old, source_updated_at=t - timedelta(minutes=5))])
        s.commit()
    assert (r.enqueued, r.stale) == (0, 1)
