"""The outbox as a queue: claim order, one version per order per batch, leases, requeue, status."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from connector import outbox
from connector.outbox import Version, enqueue
from connector.store import FAILED, IN_FLIGHT, PENDING, SENT, OutboxRow, init_db, make_engine, utcnow
from tests.delivery_helpers import wire_order


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()


def put(engine, *wires, shop="s"):
    with Session(engine) as s:
        r = enqueue(s, [Version(shop, w) for w in wires])
        s.commit()
    return r.ids


def states(engine) -> dict[int, str]:
    with Session(engine) as s:
        return {r.id: r.state for r in s.exec(select(OutboxRow))}


def test_claim_takes_only_the_oldest_open_version_of_each_order(engine):
    v1, = put(engine, wire_order(1, status="INITIALIZED"))
    v2, = put(engine, wire_order(1, status="IN_PROGRESS"))
    other, = put(engine, wire_order(2))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        first = outbox.claim(s, "a", 1000, 60, now)
        s.commit()
    assert [r.id for r in first] == [v1, other]
    with Session(engine) as s:       # v1 in flight: v2 waits for it
        assert outbox.claim(s, "b", 1000, 60, now) == []
        outbox.mark_sent(s, [v1], "a", now)
        s.commit()
    with Session(engine) as s:
        assert [r.id for r in outbox.claim(s, "b", 1000, 60, now)] == [v2]


def test_a_failed_version_does_not_block_the_next(engine):
    v1, = put(engine, wire_order(1, status="INITIALIZED"))
    v2, = put(engine, wire_order(1, status="DELIVERED"))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        outbox.claim(s, "a", 10, 60, now)
        outbox.mark_failed(s, {v1: "phone: bad"}, "a", now)
        assert [r.id for r in outbox.claim(s, "a", 10, 60, now)] == [v2]


def test_claim_respects_batch_size_and_due_time(engine):
    ids = put(engine, *[wire_order(i) for i in range(5)])
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        assert [r.id for r in outbox.claim(s, "a", 3, 60, now)] == ids[:3]
        rows = outbox.claim(s, "a", 3, 60, now)
        outbox.mark_retry(s, rows, "a", now, "503", schedule=(30,), max_attempts=5)
        assert outbox.claim(s, "a", 3, 60, now) == []
        assert len(outbox.claim(s, "a", 3, 60, now + timedelta(seconds=31))) == 2


def test_expired_lease_returns_to_pending_and_late_outcomes_are_ignored(engine):
    ids = put(engine, wire_order(1), wire_order(2))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        outbox.claim(s, "dead", 10, 60, now)
        assert outbox.sweep_expired(s, now + timedelta(seconds=30), 5) == 0
        assert outbox.sweep_expired(s, now + timedelta(seconds=61), 5) == 2
        again = outbox.claim(s, "alive", 10, 60, now + timedelta(seconds=62))
        assert [r.attempts for r in again] == [2, 2]
        assert outbox.mark_sent(s, ids, "dead", now) == 0      # the old owner lost its lease
        assert outbox.mark_sent(s, ids, "alive", now) == 2
        s.commit()
    assert set(states(engine).values()) == {SENT}


def test_max_attempts_turns_retries_into_failures(engine):
    put(engine, wire_order(1))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        for n in range(3):
            rows = outbox.claim(s, "a", 10, 60, now + timedelta(hours=n))
            outbox.mark_retry(s, rows, "a", now, "the target answered 503", schedule=(1,), max_attempts=3)
        s.commit()
    with Session(engine) as s:
        (row,) = list(outbox.failed_rows(s))
    assert "gave up after 3 attempts" in row.last_error and "503" in row.last_error


def test_release_does_not_count_an_attempt(engine):
    put(engine, wire_order(1))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        rows = outbox.claim(s, "a", 10, 60, now)
        outbox.release(s, [r.id for r in rows], "a", now, "the target refused the credentials")
        assert outbox.claim(s, "a", 10, 60, now)[0].attempts == 1


def test_requeue_failed_but_not_superseded_versions(engine):
    a1, = put(engine, wire_order(1, status="INITIALIZED"))
    b1, = put(engine, wire_order(2))
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        outbox.claim(s, "a", 10, 60, now)
        outbox.mark_failed(s, {a1: "x", b1: "y"}, "a", now)
        s.commit()
    a2, = put(engine, wire_order(1, status="DELIVERED"))
    with Session(engine) as s:
        r = outbox.requeue(s, None, now)
        s.commit()
    assert r.requeued == [b1] and r.superseded == [a1]
    assert states(engine) == {a1: FAILED, b1: PENDING, a2: PENDING}
    with Session(engine) as s:
        assert outbox.requeue(s, [b1, 999], now).not_failed == [b1, 999]


def test_status_counts_and_oldest_pending(engine):
    put(engine, *[wire_order(i) for i in range(3)])
    now = utcnow() + timedelta(seconds=1)
    with Session(engine) as s:
        rows = outbox.claim(s, "a", 1, 60, now)
        outbox.mark_failed(s, {rows[0].id: "email: not an email"}, "a", now)
        outbox.claim(s, "a", 1, 60, now)
        st = outbox.status(s, now)
    assert st.counts == {PENDING: 1, IN_FLIGHT: 1, SENT: 0, FAILED: 1}
    assert st.due == 1 and st.last_error == "email: not an email" and st.oldest_pending <= now


def test_stored_hash_is_the_formats_content_hash(engine):
    from connector.format import content_hash
    wire = wire_order(1, firstName="Оля")
    put(engine, wire)
    with Session(engine) as s:
        row = s.exec(select(OutboxRow)).one()
    assert row.content_hash == content_hash(wire)
