"""A database that fails for a moment (PostgreSQL restarted, a connection killed, a full disk) is not the
delivery's fault: the webhook stays `new` and the next run translates it, with no operator's replay."""
from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.config import from_dict
from connector.inbox import store_delivery
from connector.store import INBOX_DONE, INBOX_NEW, InboxDelivery, OutboxRow
from daemon import jobs
from tests.conftest import load_fixture

_INBOX = InboxDelivery.__table__


def _runtime(url: str, monkeypatch) -> jobs.Runtime:
    monkeypatch.setenv("OB_KEY", "k")
    config = from_dict({"connector": {"database": url},
                        "target": {"url": "http://127.0.0.1:9/api/v1", "api_key_env": "OB_KEY"},
                        "shops": [{"name": "main", "platform": "shopify"}]})
    return jobs.Runtime.create(config)


def _deliver(rt: jobs.Runtime, order_id: int) -> int:
    order = json.loads(load_fixture("shopify/webhook_orders_create_guest_hkd_discounts.json"))
    order.update(id=order_id, email=f"c{order_id}@example.com")
    return store_delivery(rt.engine, platform="shopify", shop="main", topic="orders/create", headers={},
                          body=json.dumps(order).encode(), delivery_id=f"wh-{order_id}")


def _state(rt: jobs.Runtime, delivery_id: int) -> str:
    with Session(rt.engine) as s:
        return s.execute(select(_INBOX.c.state).where(_INBOX.c.id == delivery_id)).scalar_one()


def _outbox_ids(rt: jobs.Runtime) -> list[str]:
    with Session(rt.engine) as s:
        return list(s.execute(select(OutboxRow.__table__.c.external_order_id)).scalars())


def test_a_database_error_while_translating_leaves_the_delivery_new(db_url, monkeypatch):
    rt = _runtime(db_url, monkeypatch)
    delivery = _deliver(rt, 7100001)
    import adapters.shopify.inbox as shopify_inbox
    real = shopify_inbox.process

    def connection_lost(session, d, shop):
        raise sa.exc.OperationalError("INSERT ...", {}, Exception("server closed the connection unexpectedly"))
    monkeypatch.setattr(shopify_inbox, "process", connection_lost)
    with pytest.raises(sa.exc.OperationalError):
        jobs.process_inbox(rt)
    assert _state(rt, delivery) == INBOX_NEW          # not `failed`: no replay needed

    monkeypatch.setattr(shopify_inbox, "process", real)
    assert jobs.process_inbox(rt).done == 1
    assert _state(rt, delivery) == INBOX_DONE and _outbox_ids(rt) == ["7100001"]
    rt.engine.dispose()


def test_postgresql_connection_terminated_mid_translation(pg_url, monkeypatch):
    """As in production: the daemon waits on an order's lock, and its connection is terminated."""
    rt = _runtime(pg_url, monkeypatch)
    delivery = _deliver(rt, 7100002)
    holder = rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT")   # a fresh pg_stat_activity each time
    holder.execute(sa.text("SELECT pg_advisory_lock(hashtextextended('4:main:7100002', 1))"))
    errors: list[BaseException] = []

    def run():
        try:
            jobs.process_inbox(rt)
        except BaseException as e:     # noqa: BLE001 - collected for the assertion below
            errors.append(e)
    t = threading.Thread(target=run)
    t.start()
    try:
        for _ in range(600):           # up to 30 s on a loaded machine; no duration is asserted
            waiting = holder.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() "
                "AND query LIKE '%pg_advisory_xact_lock%'")).scalars().all()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the daemon never waited on the order's lock"
        holder.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": waiting[0]})
        t.join(30)
    finally:
        holder.execute(sa.text("SELECT pg_advisory_unlock_all()"))
        holder.close()
    assert errors and sa.exc.OperationalError in type(errors[0]).__mro__
    assert _state(rt, delivery) == INBOX_NEW

    assert jobs.process_inbox(rt).done == 1
    assert _outbox_ids(rt) == ["7100002"]
    rt.engine.dispose()


def test_an_order_postgresql_cannot_index_fails_its_delivery_and_the_inbox_goes_on(pg_url, monkeypatch):
    """psycopg files ProgramLimitExceeded (an index row too large) under OperationalError, but the data causes it
    and it fails every time: the delivery is marked failed (its body kept), not left new to hold up the rest."""
    import secrets
    rt = _runtime(pg_url, monkeypatch)
    order = json.loads(load_fixture("shopify/webhook_orders_create_guest_hkd_discounts.json"))
    order.update(id=secrets.token_hex(4000), email="c@example.com")     # not compressible below btree's 2704 bytes
    bad = store_delivery(rt.engine, platform="shopify", shop="main", topic="orders/create", headers={},
                         body=json.dumps(order).encode(), delivery_id="wh-unindexable")
    good = _deliver(rt, 7100003)
    report = jobs.process_inbox(rt)
    assert (report.failed, report.done) == (1, 1)
    assert _state(rt, bad) == "failed" and _state(rt, good) == INBOX_DONE
    rt.engine.dispose()


def test_only_errors_of_the_database_itself_count_as_unavailable(tmp_path):
    import sqlite3

    from connector.database import is_unavailable
    conn = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.OperationalError) as statement_error:
        conn.execute("SELECT json_extract('{not json', '$.a')")
    assert not is_unavailable(statement_error.value)
    assert not is_unavailable(sa.exc.OperationalError("SELECT", {}, statement_error.value))
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert is_unavailable(full.value) and is_unavailable(sa.exc.OperationalError("INSERT", {}, full.value))
    conn.close()
