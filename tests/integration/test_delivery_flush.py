"""Flushing the outbox into a fake add-orders target: per-order outcomes, splitting, backing off, stopping."""
from __future__ import annotations

import collections
import json
import time
from datetime import timedelta

import pytest
import responses
from sqlalchemy import select, update
from sqlmodel import Session

from connector import outbox
from connector.client import CREDENTIALS_REFUSED, AddOrdersClient, RetryPolicy
from connector.flush import Flusher, Held, LeaseLost, dead_local_owners, sweep
from connector.outbox import Version, enqueue
from connector.store import FAILED, PENDING, SENT, OutboxRow, PushAttempt, init_db, make_engine, utcnow
from tests.delivery_helpers import TARGET, FakeTarget, wire_order

NO_WAIT = RetryPolicy(attempts=1, max_wait=0, max_total=1)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


class Clock:
    """Time passed in: tests move it by hand."""

    def __init__(self):
        self.now = self.start = utcnow() + timedelta(seconds=1)

    def __call__(self):
        return self.now


def flusher(engine, clock=None, batch_size=1000, **kw) -> Flusher:
    client = AddOrdersClient(TARGET, "k", retry=kw.pop("retry", NO_WAIT))
    return Flusher(engine, client, batch_size=batch_size, lease=60, schedule=(30, 60), max_attempts=kw.pop("max_attempts", 5),
                   clock=clock or Clock(), **kw)


def put(engine, wires):
    with Session(engine) as s:
        ids = enqueue(s, [Version("s", w) for w in wires]).ids
        s.commit()
    return ids


def rows(engine) -> dict[str, tuple[str, str | None]]:
    with Session(engine) as s:
        return {r.external_order_id: (r.state, r.last_error) for r in s.exec(select(OutboxRow)).scalars()}


def test_everything_is_sent_in_batches_and_each_request_is_logged(engine, rsps):
    target = FakeTarget().install(rsps)
    put(engine, [wire_order(i) for i in range(25)])
    report = flusher(engine, batch_size=10).flush()
    assert (report.batches, report.sent, report.failed) == (3, 25, 0)
    assert sorted(target.ids()) == sorted(f"O{i}" for i in range(25))
    with Session(engine) as s:
        attempts = s.exec(select(PushAttempt)).scalars().all()
    assert [a.orders for a in attempts] == [10, 10, 5] and {a.status_code for a in attempts} == {200}


def test_only_the_orders_listed_in_failed_orders_fail(engine, rsps):
    target = FakeTarget().install(rsps)
    bad = [wire_order(3, email="not-an-email", externalCustomerId=None), wire_order(7, currency="EURO")]
    for b in bad:
        b.pop("externalCustomerId", None)
    put(engine, [wire_order(i) for i in range(10) if i not in (3, 7)] + bad)
    report = flusher(engine).flush()
    assert (report.sent, report.failed) == (8, 2)
    state = rows(engine)
    assert state["O3"][0] == FAILED and "email" in state["O3"][1]
    assert state["O7"][0] == FAILED and "currency" in state["O7"][1]
    assert {k for k, v in state.items() if v[0] == SENT} == set(target.ids())


def test_a_single_failure_as_an_object_is_understood(engine, rsps):
    FakeTarget().install(rsps)
    bad = wire_order(2, currency="XXX1")
    put(engine, [wire_order(1), bad])
    assert flusher(engine).flush().failed == 1
    assert rows(engine)["O2"][0] == FAILED


def test_a_rejected_batch_is_split_until_the_bad_order_is_alone(engine, rsps):
    target = FakeTarget(poison={"O13"}).install(rsps)
    put(engine, [wire_order(i) for i in range(20)])
    report = flusher(engine).flush()
    assert (report.sent, report.failed) == (19, 1)
    state = rows(engine)
    assert state["O13"][0] == FAILED and "cannot read order O13" in state["O13"][1] and "(400)" in state["O13"][1]
    assert sorted(target.ids()) == sorted(f"O{i}" for i in range(20) if i != 13)
    assert target.requests <= 1 + 2 * 5 + 1     # a halving search, not one request per order


def test_target_down_reschedules_on_the_schedule_then_delivers(engine, rsps):
    target = FakeTarget(faults=[(503, "maintenance", {})]).install(rsps)
    put(engine, [wire_order(i) for i in range(3)])
    clock = Clock()
    f = flusher(engine, clock)
    report = f.flush()
    assert report.unreachable and "503" in report.unreachable and report.retried == 3
    assert f.flush().batches == 0                    # not due yet: 30 s on the schedule
    clock.now += timedelta(seconds=31)
    assert f.flush().sent == 3 and len(target.received) == 3


def test_retry_after_longer_than_the_schedule_is_honoured(engine, rsps):
    FakeTarget(faults=[(429, "slow down", {"Retry-After": "600"})]).install(rsps)
    put(engine, [wire_order(1)])
    clock = Clock()
    f = flusher(engine, clock)
    assert f.flush().unreachable
    clock.now += timedelta(seconds=120)
    assert f.flush().batches == 0
    clock.now += timedelta(seconds=500)
    assert f.flush().sent == 1


def test_retry_after_holds_for_every_order_and_every_daemon(engine, rsps):
    """A 429 with Retry-After: 600 on one batch: no flush (the next tick, another daemon, a cron run)
    sends anything before the 600 s are up; then everything goes."""
    target = FakeTarget(faults=[(429, "slow down", {"Retry-After": "600"})]).install(rsps)
    put(engine, [wire_order(i) for i in range(6)])
    clock = Clock()
    assert flusher(engine, clock, batch_size=2).flush().retried == 2
    for later in (10, 300, 590):
        clock.now += timedelta(seconds=later - (clock.now - clock.start).total_seconds())
        report = flusher(engine, clock, batch_size=2).flush()      # a new daemon each time
        assert report.batches == 0 and "Retry-After" in report.paused and not report.stopped
        assert flusher(engine, clock, batch_size=2).flush_batch().batches == 0
    assert target.requests == 1
    clock.now += timedelta(seconds=11)
    assert flusher(engine, clock, batch_size=2).flush().sent == 6 and target.requests == 4


def test_refused_credentials_stop_and_leave_rows_pending(engine, rsps, caplog):
    FakeTarget(faults=[(401, "Unauthorized", {})]).install(rsps)
    put(engine, [wire_order(i) for i in range(4)])
    report = flusher(engine).flush()
    assert report.refused == CREDENTIALS_REFUSED and report.sent == 0
    assert {v[0] for v in rows(engine).values()} == {PENDING}
    assert CREDENTIALS_REFUSED in caplog.text
    with Session(engine) as s:
        assert {r.attempts for r in s.exec(select(OutboxRow)).scalars()} == {0}


def test_a_redirect_stops_the_flush_and_sends_nothing(engine, rsps):
    """requests would follow it as a body-less GET, and that GET's 200 would mark every order sent."""
    rsps.add("POST", f"{TARGET}/orders", status=301, headers={"Location": "https://elsewhere.test/api/v1/orders"})
    followed = rsps.add("GET", "https://elsewhere.test/api/v1/orders", json={"orders": [], "next": None})
    put(engine, [wire_order(i) for i in range(5)])
    report = flusher(engine).flush()
    assert report.sent == 0 and followed.call_count == 0
    assert "redirects (301) to https://elsewhere.test/api/v1/orders" in report.refused
    assert {v[0] for v in rows(engine).values()} == {PENDING}


def test_an_unsupported_media_type_stops_the_flush_instead_of_failing_every_order(engine, rsps):
    """415 is about the request (Yespo documents it for its JSON endpoints), never about one order: halving the
    batch would end with every order failed, one request each."""
    target = FakeTarget(faults=[(415, "Unsupported Media Type", {})] * 20).install(rsps)
    put(engine, [wire_order(i) for i in range(8)])
    report = flusher(engine).flush()
    assert report.failed == 0 and "media type (415" in report.refused
    assert {v[0] for v in rows(engine).values()} == {PENDING}
    assert target.requests == 1


def test_a_web_page_instead_of_the_api_stops_the_flush(engine, rsps):
    """A captive portal, a proxy's login page or yespo.io's front page answering 200: nothing was added."""
    FakeTarget(faults=[(200, "<!DOCTYPE html><html><title>Sign in</title></html>", {})]).install(rsps)
    put(engine, [wire_order(i) for i in range(3)])
    report = flusher(engine).flush()
    assert report.sent == 0 and "with a web page, not the add-orders API" in report.refused
    assert {v[0] for v in rows(engine).values()} == {PENDING}


def test_a_url_requests_cannot_use_stops_the_flush(engine):
    put(engine, [wire_order(1)])
    client = AddOrdersClient("http://127.0.0.1:99999/api/v1", "k", retry=RetryPolicy(attempts=3, max_wait=0))
    report = Flusher(engine, client, lease=60, schedule=(30,), max_attempts=5, clock=Clock()).flush()
    assert report.refused and "InvalidURL" in report.refused and "check [target] url" in report.refused
    assert report.retried == 0 and {v[0] for v in rows(engine).values()} == {PENDING}
    with Session(engine) as s:
        assert [r.attempts for r in s.exec(select(OutboxRow)).scalars()] == [0]      # no attempt used up


def test_a_retry_after_of_ages_waits_a_week(engine, rsps):
    FakeTarget(faults=[(429, "slow down", {"Retry-After": "100000000000000"})]).install(rsps)
    put(engine, [wire_order(1)])
    clock = Clock()
    report = flusher(engine, clock).flush()
    assert report.unreachable and report.retried == 1
    with Session(engine) as s:
        row = s.exec(select(OutboxRow)).scalars().one()
    assert outbox._aware(row.next_attempt_at) - clock.now == timedelta(days=7)


def test_a_request_slower_than_the_lease_keeps_its_rows(engine, rsps):
    """The heartbeat renews the lease while the request is on the wire: the sweep running meanwhile
    takes nothing, the 200 is recorded, and no order reaches the target twice."""
    target, posted = FakeTarget(), collections.Counter()

    def slow(request):
        for o in json.loads(request.body)["orders"]:
            posted[o["externalOrderId"]] += 1
        if target.requests == 0:
            time.sleep(3)                               # 1.5 leases
            assert sweep(engine, utcnow(), 30) == 0     # the scheduler's sweep job, mid-request
        return target.callback(request)

    rsps.add_callback("POST", f"{TARGET}/orders", callback=slow)
    put(engine, [wire_order(i) for i in range(3)])
    f = Flusher(engine, AddOrdersClient(TARGET, "k", retry=NO_WAIT), lease=2, schedule=(30,), max_attempts=5)
    assert f.flush().sent == 3
    assert set(posted.values()) == {1} and {v[0] for v in rows(engine).values()} == {SENT}


def test_the_batch_claimed_ahead_keeps_its_lease_while_a_split_runs(engine, rsps):
    target, posted = FakeTarget(poison={"O0"}), collections.Counter()

    def slow(request):
        for o in json.loads(request.body)["orders"]:
            posted[o["externalOrderId"]] += 1
        time.sleep(0.8)
        sweep(engine, utcnow(), 30)
        return target.callback(request)

    rsps.add_callback("POST", f"{TARGET}/orders", callback=slow)
    put(engine, [wire_order(i) for i in range(8)])      # O0 poisons the first batch: split into 5 requests
    f = Flusher(engine, AddOrdersClient(TARGET, "k", retry=NO_WAIT), batch_size=4, lease=2, schedule=(30,),
                max_attempts=5)
    report = f.flush()
    assert (report.sent, report.failed) == (7, 1)
    assert all(posted[f"O{i}"] == 1 for i in range(4, 8)), dict(posted)


def test_rows_whose_lease_was_lost_are_not_sent(engine):
    """Should the heartbeat stall for a whole lease, rows swept and claimed by another daemon are theirs."""
    put(engine, [wire_order(i) for i in range(3)])
    f = flusher(engine)
    with Held(f) as held:
        claimed = f._claim(held)
        with Session(engine) as s:          # the sweep, then another daemon's claim, took O1
            s.execute(update(OutboxRow.__table__).where(OutboxRow.__table__.c.external_order_id == "O1")
                      .values(lease_owner="other"))
            s.commit()
        held.renew()
        with pytest.raises(LeaseLost):
            held.check(claimed)
        assert [r.external_order_id for r in held.keep(claimed)] == ["O0", "O2"]
        assert held.ids == {r.id for r in claimed if r.external_order_id != "O1"}


def test_conflict_means_already_applied(engine, rsps):
    FakeTarget(faults=[(409, "Duplicated request", {})]).install(rsps)
    put(engine, [wire_order(1)])
    assert flusher(engine).flush().sent == 1


def test_versions_of_one_order_go_out_in_order_one_per_batch(engine, rsps):
    target = FakeTarget().install(rsps)
    for status in ("INITIALIZED", "IN_PROGRESS", "DELIVERED"):
        put(engine, [wire_order(1, status=status), wire_order(2, status=status)])
    report = flusher(engine).flush()
    assert report.batches == 3 and report.sent == 6
    assert [o["status"] for o in target.received if o["externalOrderId"] == "O1"] == ["INITIALIZED", "IN_PROGRESS", "DELIVERED"]
    for call in rsps.calls:
        ids = [o["externalOrderId"] for o in json.loads(call.request.body)["orders"]]
        assert len(ids) == len(set(ids))


def test_max_attempts_then_failed_with_the_last_error(engine, rsps):
    FakeTarget(faults=[(500, "boom", {})] * 3).install(rsps)
    put(engine, [wire_order(1)])
    clock = Clock()
    f = flusher(engine, clock, max_attempts=2)
    f.flush()
    clock.now += timedelta(seconds=31)
    f.flush()
    state = rows(engine)["O1"]
    assert state[0] == FAILED and "gave up after 2 attempts" in state[1] and "boom" in state[1]


def test_sweep_returns_leases_of_dead_local_daemons_at_once(engine):
    put(engine, [wire_order(1)])
    now = utcnow() + timedelta(seconds=1)
    import socket
    dead = f"{socket.gethostname()}:999999:abcd"     # no such pid
    with Session(engine) as s:
        outbox.claim(s, dead, 10, 3600, now)
        s.commit()
    assert dead_local_owners([dead, "otherhost:1:x"]) == [dead]
    assert sweep(engine, now, 5) == 1
    assert rows(engine)["O1"][0] == PENDING


def test_a_shutdown_ends_the_in_request_retries_and_gives_the_batch_back_untouched(engine, rsps):
    """SIGTERM while the target fails: the daemon used to go on retrying the request (up to 30 s of retries
    on top of the timeout) before it could stop. Now the retry after the stop is not made, and the
    batch goes back to pending without an attempt counted."""
    import threading
    stop, calls = threading.Event(), []

    def busy(request):
        calls.append(1)
        stop.set()                  # the signal arrives while the first request is out
        return (503, {}, "busy")
    rsps.add_callback("POST", f"{TARGET}/orders", callback=busy)
    ids = put(engine, [wire_order(1), wire_order(2)])
    f = flusher(engine, retry=RetryPolicy(attempts=5, max_wait=30, max_total=300))
    report = f.flush(stop=stop)
    assert len(calls) == 1 and report.sent == 0 and report.failed == 0
    with Session(engine) as s:
        rows = s.exec(select(OutboxRow.state, OutboxRow.attempts, OutboxRow.lease_owner)
                      .where(OutboxRow.id.in_(ids))).all()
    assert rows == [(PENDING, 0, None), (PENDING, 0, None)]
    with Session(engine) as s:                  # the request that was made is in the push log
        assert [(a.orders, a.status_code) for a in s.exec(select(PushAttempt)).scalars()] == [(2, 503)]


def test_an_order_the_target_always_answers_with_500_is_isolated_and_the_others_are_delivered(engine, rsps):
    """A target bug: any request holding order O7 gets a 500. The batch used to be retried whole through the
    retry schedule (weeks by default) and then failed with it, every other order included. Requests that
    keep failing are halved: the others go through within a few retries, O7 ends up waiting alone."""
    import json as _json
    delivered = []

    def answer(request):
        ids = [o["externalOrderId"] for o in _json.loads(request.body)["orders"]]
        if "O7" in ids:
            return (500, {}, "Internal Server Error")
        delivered.extend(ids)
        return (200, {}, '{"failedOrders": []}')
    rsps.add_callback("POST", f"{TARGET}/orders", callback=answer)
    put(engine, [wire_order(i) for i in range(16)])
    clock = Clock()
    f = flusher(engine, clock=clock, batch_size=16, max_attempts=30)
    for _ in range(12):
        f.flush()
        clock.now += timedelta(days=2)          # past any step of the retry schedule
    assert sorted(delivered) == sorted(f"O{i}" for i in range(16) if i != 7)
    assert len(delivered) == 15                 # each once
    state = rows(engine)
    assert state["O7"][0] == PENDING and "500" in state["O7"][1]
    assert {st for oid, (st, _) in state.items() if oid != "O7"} == {SENT}


def test_after_an_outage_only_the_orders_tried_meanwhile_go_in_small_requests():
    from connector.flush import requests_of
    from connector.outbox import Claimed
    fresh = [Claimed(i, "s", f"O{i}", "{}", 1) for i in range(10, 990)]
    tried = [Claimed(i, "s", f"O{i}", "{}", 12) for i in range(2000, 2020)]    # failed ten times over
    parts = requests_of(tried[:10] + fresh + tried[10:], 1000)
    assert parts[0] == fresh and all(len(p) == 1 for p in parts[1:]) and len(parts) == 21
    assert requests_of(fresh, 1000) == [fresh]
    assert [len(p) for p in requests_of([Claimed(i, "s", f"O{i}", "{}", 4) for i in range(1000)], 1000)] == [250] * 4
