"""The daemon's jobs under the APScheduler clock (BackgroundScheduler, as `up` runs them)."""
from __future__ import annotations

import threading

import responses
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.config import from_dict
from connector.outbox import Version, enqueue
from connector.store import IN_FLIGHT, SENT, OutboxRow
from daemon.jobs import Runtime, run_cycle
from daemon.scheduler import start_background
from tests.delivery_helpers import TARGET, FakeTarget, wire_order


def runtime(tmp_path, monkeypatch) -> Runtime:
    monkeypatch.setenv("OB_KEY", "k")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"},
                        "target": {"url": TARGET, "api_key_env": "OB_KEY", "batch_size": 10},
                        "daemon": {"flush_every": "50ms", "retry_schedule": ["50ms"]}})
    return Runtime.create(config)


def count(rt, state) -> int:
    with Session(rt.engine) as s:
        return s.execute(select(func.count()).where(OutboxRow.__table__.c.state == state)).scalar()


def test_scheduled_jobs_deliver_and_stop_cleanly(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch)
    with Session(rt.engine) as s:
        enqueue(s, [Version("s", wire_order(i)) for i in range(45)])
        s.commit()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        target = FakeTarget(faults=[(503, "busy", {})]).install(rsps)
        stop = start_background(rt)
        try:
            for _ in range(400):          # a bound, not a timing assertion
                if count(rt, SENT) == 45:
                    break
                threading.Event().wait(0.05)
        finally:
            stop()
    assert count(rt, SENT) == 45 and count(rt, IN_FLIGHT) == 0
    assert sorted(target.ids()) == sorted(f"O{i}" for i in range(45))


def test_one_cycle_reports_what_it_did(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch)
    with Session(rt.engine) as s:
        enqueue(s, [Version("s", wire_order(i)) for i in range(25)])
        s.commit()
    with responses.RequestsMock() as rsps:
        FakeTarget().install(rsps)
        cycle = run_cycle(rt)
    assert (cycle.flush.batches, cycle.flush.sent, cycle.inbox.total) == (3, 25, 0)
