"""Two transactions enqueue one new order at the same moment (the poll and the inbox job, or two daemons),
on SQLite and PostgreSQL: both succeed, and the second compares with the first's version as usual."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from connector.outbox import Version, enqueue
from connector.store import OutboxRow, init_db, make_engine
from tests.delivery_helpers import wire_order


@pytest.mark.parametrize("statuses, rows", [(("INITIALIZED", "DELIVERED"), 2), (("DELIVERED", "DELIVERED"), 1)])
def test_one_new_order_enqueued_by_two_transactions_at_once(db_url, statuses, rows):
    engine = make_engine(db_url)
    init_db(engine)
    both_open, errors = threading.Barrier(2), []

    def enqueue_one(status: str) -> None:
        try:
            with Session(engine) as s:
                s.connection()
                both_open.wait(timeout=30)
                enqueue(s, [Version("s", wire_order(1, status=status))])
                time.sleep(0.3)              # still open while the other one enqueues
                s.commit()
        except Exception as e:               # noqa: BLE001 - reported below
            errors.append(repr(e)[:300])

    threads = [threading.Thread(target=enqueue_one, args=(status,)) for status in statuses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []                      # the second used to fail on the order_heads key
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == rows
    engine.dispose()
