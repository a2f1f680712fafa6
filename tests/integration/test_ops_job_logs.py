"""A database that cannot be used (disk full, locked, server down) makes every job fail on every tick: the
log says so in one line, not a traceback per job per tick (tens of lines a second at flush_every = 1s)."""
from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

from tests.conftest import wait_until
from connector.config import from_dict
from daemon import jobs, scheduler


def _runtime(tmp_path, monkeypatch) -> jobs.Runtime:
    monkeypatch.setenv("OB_KEY", "k")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"},
                        "target": {"url": "http://127.0.0.1:9/api/v1", "api_key_env": "OB_KEY"},
                        "daemon": {"flush_every": "20ms"}})
    return jobs.Runtime.create(config)


def test_a_full_disk_is_one_line_while_it_lasts_and_one_when_it_is_over(tmp_path, monkeypatch, caplog):
    rt = _runtime(tmp_path, monkeypatch)
    full = threading.Event()
    full.set()
    calls = {"n": 0}

    def job(real):
        def run(rt_):
            if full.is_set():
                calls["n"] += 1
                raise sqlite3.OperationalError("database or disk is full")
            return real(rt_)
        return run
    for name in ("sweep_leases", "process_inbox", "flush"):
        monkeypatch.setattr(jobs, name, job(getattr(jobs, name)))
    caplog.set_level(logging.INFO)
    stop = scheduler.start_background(rt)
    try:
        wait_until(lambda: calls["n"] >= 30)
        full.clear()
        wait_until(lambda: any("works again" in r.getMessage() for r in caplog.records))
    finally:
        stop()
        rt.engine.dispose()
    assert calls["n"] >= 30
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None
    assert "the connector database cannot be used: database or disk is full" in errors[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_bug_in_a_job_still_shows_its_traceback(caplog):
    trouble = scheduler.DatabaseTrouble(1.0)
    run = trouble.guard("flush", lambda rt: 1 / 0)
    with pytest.raises(ZeroDivisionError):      # APScheduler logs it with its traceback
        run(None)


def test_the_sql_and_its_parameters_stay_out_of_the_line(caplog):
    import sqlalchemy as sa
    trouble = scheduler.DatabaseTrouble(1.0)

    def fails(_rt):
        raise sa.exc.OperationalError("INSERT INTO outbox VALUES (?)", ("jane@example.com",),
                                      sqlite3.OperationalError("database is locked"))
    caplog.set_level(logging.INFO)
    trouble.guard("flush", fails)(None)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "database is locked" in line and "INSERT" not in line and "jane@" not in line
