"""Raw webhook deliveries: stored (and committed) before they are acknowledged, replayable later."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Mapping

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector.store import INBOX_NEW, InboxDelivery, utcnow

_INBOX = InboxDelivery.__table__
_DROP_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(_INBOX).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        return sqlite_insert(_INBOX).on_conflict_do_nothing()
    return insert(_INBOX)


def record_delivery(session: Session, *, platform: str, shop: str, topic: str, headers: Mapping[str, str],
                    body: bytes, delivery_id: str | None = None) -> int | None:
    """Store one delivery; returns its id, or None when this delivery id was stored before.

    The caller commits before answering the platform.
    """
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}
    res = session.execute(_insert_ignoring_duplicates(session).values(
        platform=platform, shop=shop, topic=topic or "", delivery_id=delivery_id or None,
        headers=json.dumps(kept, sort_keys=True), body=body, received_at=utcnow(), state=INBOX_NEW, attempts=0,
    ))
    if res.rowcount == 0:
        return None
    return res.inserted_primary_key[0] if res.inserted_primary_key else None


def mark(session: Session, delivery_id: int, state: str, error: str | None = None) -> None:
    """Record what processing made of a delivery (done, ignored with a reason, failed with an error)."""
    session.execute(update(_INBOX).where(_INBOX.c.id == delivery_id).values(
        state=state, error=error, processed_at=utcnow(), attempts=_INBOX.c.attempts + 1))


# SQLite allows one writer at a time and resolves contention by sleeping in busy_timeout steps of
# up to 100 ms: that is where a naive commit-per-thread loses its tail latency. And a thread that
# leaves the GIL inside sqlite (it does, for every statement) waits up to the switch interval (5 ms)
# to get it back, holding the write lock all the while. So on SQLite each process writes through one
# connection, and whichever request thread holds the write lock commits every delivery queued
# meanwhile in one transaction (leader/followers: no writer thread, no hand-off), with one prepared
# INSERT. It writes exactly what `record_delivery` writes; PostgreSQL, where
# concurrent writers are fine, goes through record_delivery itself.
_INSERT = ("INSERT INTO inbox (platform, shop, topic, delivery_id, headers, body, received_at, state, attempts) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 0) ON CONFLICT DO NOTHING")


class _Slot:
    __slots__ = ("row", "done", "result", "error")

    def __init__(self, row: tuple):
        self.row, self.done, self.result, self.error = row, False, None, None


class _SQLiteWriter:
    CHECKPOINT_EVERY = 1.0    # seconds

    def __init__(self, path: str):
        self.lock = threading.Lock()          # held while a transaction is written
        self.queue_lock = threading.Lock()    # guards `pending` only (never held across I/O)
        self.pending: list[_Slot] = []
        self.pid = os.getpid()
        self.path = path
        self.conn = self._connect()
        # A WAL checkpoint copies pages and fsyncs: it must not sit inside the write lock, where every
        # sender waits for it. This connection never checkpoints; a thread does, every second.
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        threading.Thread(target=self._checkpoints, name="inbox-wal-checkpoint", daemon=True).start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _checkpoints(self) -> None:
        conn = self._connect()
        while True:
            time.sleep(self.CHECKPOINT_EVERY)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:      # busy: the next round catches up
                pass

    def insert(self, row: tuple) -> int | None:
        """Commit `row`; returns its id, or None for a duplicate delivery id. Raises on a database error."""
        slot = _Slot(row)
        with self.queue_lock:
            self.pending.append(slot)
        while not slot.done:
            with self.lock:
                if slot.done:          # a leader committed it while we waited
                    break
                with self.queue_lock:
                    batch, self.pending = self.pending, []
                self._commit(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _commit(self, batch: list[_Slot]) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for s in batch:
                cur = self.conn.execute(_INSERT, s.row)
                s.result = cur.lastrowid if cur.rowcount == 1 else None
            self.conn.execute("COMMIT")
        except Exception as e:   # noqa: BLE001 - every waiting sender must learn the outcome, or it waits forever
            for s in batch:       # first: a failed batch is never answered 200
                s.result, s.error = None, e
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            for s in batch:
                s.done = True


_writers: dict[str, _SQLiteWriter] = {}     # one per database file and process
_writers_guard = threading.Lock()


def _sqlite_writer(engine: Engine) -> _SQLiteWriter | None:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    path = os.path.abspath(engine.url.database)
    with _writers_guard:
        w = _writers.get(path)
        if w is None or w.pid != os.getpid():      # a forked worker opens its own connection
            w = _writers[path] = _SQLiteWriter(path)
        return w


def store_delivery(engine: Engine, *, shop: str, topic: str, headers: dict, body: bytes,
                   delivery_id: str | None, platform: str) -> int | None:
    """Record and commit one delivery (the webhook receivers' path); None when its delivery id was stored before."""
    writer = _sqlite_writer(engine)
    if writer is None:
        with Session(engine) as session:
            new_id = record_delivery(session, platform=platform, shop=shop, topic=topic, headers=headers,
                                     body=body, delivery_id=delivery_id)
            session.commit()
            return new_id
    kept = json.dumps({k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}, sort_keys=True)
    # the text form SQLAlchemy's SQLite DateTime reads back (naive, UTC by convention)
    received = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")
    return writer.insert((platform, shop, topic or "", delivery_id or None, kept, body, received))
