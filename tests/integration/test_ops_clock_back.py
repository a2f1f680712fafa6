"""The system clock set back (an NTP step, a VM resumed from a snapshot) must not stop the daemon's jobs
until the clock catches up: APScheduler keeps next run times on the wall clock."""
from __future__ import annotations

import time
from datetime import datetime as real_datetime, timedelta

import apscheduler.schedulers.base as aps_base

from tests.conftest import wait_until
from connector.config import from_dict
from daemon import jobs, scheduler


class _Clock:
    offset = timedelta(0)


class _FakeDatetime(real_datetime):
    @classmethod
    def now(cls, tz=None):
        return real_datetime.now(tz) - _Clock.offset


def test_jobs_keep_running_after_the_clock_goes_back_an_hour(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(aps_base, "datetime", _FakeDatetime)
    monkeypatch.setattr(scheduler, "datetime", _FakeDatetime)
    monkeypatch.setattr(_Clock, "offset", timedelta(0))
    monkeypatch.setenv("OB_KEY", "k")
    runs: list[float] = []
    monkeypatch.setattr(jobs, "flush", lambda rt: runs.append(time.monotonic()))
    rt = jobs.Runtime.create(from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"},
                                        "target": {"url": "http://127.0.0.1:9/api/v1", "api_key_env": "OB_KEY"},
                                        "daemon": {"flush_every": "100ms"}}))
    stop = scheduler.start_background(rt)
    try:
        assert wait_until(lambda: runs)
        _Clock.offset = timedelta(hours=1)       # the wall clock is set back an hour
        jumped = time.monotonic()
        # without the watcher no job runs again for an hour: this waits in vain and fails
        assert wait_until(lambda: len([t for t in runs if t > jumped]) >= 5)
    finally:
        stop()
        rt.engine.dispose()
    assert any("the system clock went back by 3600 s" in r.getMessage() for r in caplog.records)
