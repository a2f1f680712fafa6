"""The receiver's SQLite writer checkpoints its write-ahead log in a thread of its own. Webhooks are stored
whether or not that works, but a log no checkpoint can empty grows until the disk is full: the log says so
(it used to ignore every failure)."""
from __future__ import annotations

import logging
import sqlite3

from tests.conftest import wait_until
from connector import inbox
from connector.store import init_db, make_engine


def wait_for(caplog, words: str) -> str:
    def found():
        return [r.getMessage() for r in caplog.records if words in r.getMessage()]
    assert wait_until(found), f"no log line with {words!r}"
    return found()[0]


def test_a_log_held_open_by_a_reader_is_reported(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="connector.inbox")
    path = tmp_path / "c.db"
    init_db(make_engine(f"sqlite:///{path}"))
    monkeypatch.setattr(inbox._SQLiteWriter, "CHECKPOINT_EVERY", 0.05)
    monkeypatch.setattr(inbox._SQLiteWriter, "WAL_WARN_BYTES", 1)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM inbox").fetchone()       # holds a snapshot, as a forgotten shell does
    writer = inbox._SQLiteWriter(str(path))
    writer.insert(("shopify", "s", "orders/create", "d-1", "{}", b"{}", "2026-01-01 00:00:00.000000"))
    line = wait_for(caplog, "cannot be checkpointed: a connection holds a read transaction open")
    assert str(path) in line
    reader.close()


def test_a_failing_checkpoint_is_reported(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="connector.inbox")
    path = tmp_path / "c.db"
    init_db(make_engine(f"sqlite:///{path}"))

    class Full:
        """A connection whose checkpoints fail as on a full disk."""

        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)
    real = inbox._SQLiteWriter._connect
    monkeypatch.setattr(inbox._SQLiteWriter, "CHECKPOINT_EVERY", 0.05)
    monkeypatch.setattr(inbox._SQLiteWriter, "_connect", lambda self: Full(real(self)))
    inbox._SQLiteWriter(str(path))
    line = wait_for(caplog, "the write-ahead log cannot be checkpointed: database or disk is full")
    assert "webhooks are still stored" in line
