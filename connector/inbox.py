"""Raw webhook deliveries: stored (and committed) before they are acknowledged, replayable later."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
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
# up to 100 ms: that is where a naive commit-per-thread loses its tail latency. So on SQLite each
# process writes through one connection, and one request thread at a time (the leader) commits every
# delivery queued meanwhile (group commit, no writer thread). The other cost is the GIL: the sqlite3
# module lets go of it around every prepare and step, and under waitress (8 busy workers + its
# asyncore thread) getting it back means a context switch or two and often a wait of up to the
# switch interval (5 ms), while the batch waits. BEGIN + one INSERT per row + COMMIT paid that N+2
# times per batch; one multi-row INSERT in autocommit mode (a statement is its own transaction)
# pays it once or twice. It writes exactly what `record_delivery` writes; PostgreSQL, where
# concurrent writers are fine, goes through record_delivery itself.
_COLUMNS = "platform, shop, topic, delivery_id, headers, body, received_at, state, attempts"
_ROW = "(?, ?, ?, ?, ?, ?, ?, 'new', 0)"
_MAX_BATCH = 256          # rows per statement: 7 parameters each, far below SQLite's 32766


def _insert_sql(rows: int) -> str:
    return f"INSERT INTO inbox ({_COLUMNS}) VALUES {', '.join([_ROW] * rows)} ON CONFLICT DO NOTHING"


class _Slot:
    __slots__ = ("row", "done", "result", "error", "wake")

    def __init__(self, row: tuple):
        self.row, self.done, self.result, self.error = row, False, None, None
        self.wake = threading.Lock()      # held until this sender is woken: its row is committed, or it leads
        self.wake.acquire()


class _SQLiteWriter:
    """Group commit with an explicit hand-off: one leader at a time writes the queued rows in one
    transaction, then wakes exactly the senders it committed and, if more rows queued meanwhile,
    exactly one of them to lead next.

    Why not "every sender takes the write lock, and whoever gets it commits the queue": under
    waitress a sender whose row was committed still had to win that lock once just to see so, one
    after another, each win a GIL hand-off, while fresh leaders kept cutting in with whole
    commits. Measured (py-spy, webhook benchmark): 2/3 of a request's time in the app sat in that
    acquire. Here a committed sender is woken once by its own lock, and nobody else waits on it."""

    CHECKPOINT_EVERY = 1.0    # seconds

    def __init__(self, path: str):
        self.mutex = threading.Lock()         # guards `pending` and `leading`; never held across I/O
        self.pending: list[_Slot] = []
        self.leading = False                  # a leader is writing (or has been chosen)
        self.pid = os.getpid()
        self.path = path
        self.conn = self._connect()
        # A WAL checkpoint copies pages and fsyncs: it must not sit inside a commit, where every
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
        with self.mutex:
            lead = not self.leading
            if lead:
                self.leading = True
            else:
                self.pending.append(slot)
        if not lead:
            slot.wake.acquire()        # woken once: committed by a leader, or chosen to lead
        if not slot.done:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, own: _Slot) -> None:
        with self.mutex:
            batch, self.pending = [own, *self.pending], []
        try:
            self._commit(batch)
        finally:
            with self.mutex:
                successor = self.pending.pop(0) if self.pending else None
                self.leading = successor is not None
            for s in batch:
                if s is not own:
                    s.wake.release()
            if successor is not None:
                successor.wake.release()

    def _commit(self, batch: list[_Slot]) -> None:
        try:
            for i in range(0, len(batch), _MAX_BATCH):
                self._insert(batch[i:i + _MAX_BATCH])
        except BaseException as e:   # noqa: BLE001 - every waiting sender must learn the outcome, or it waits forever
            for s in batch:          # a failed batch is never answered 200
                s.result, s.error = None, e
        finally:
            for s in batch:
                s.done = True

    def _insert(self, batch: list[_Slot]) -> None:
        cur = self.conn.execute(_insert_sql(len(batch)), [v for s in batch for v in s.row])
        inserted, last = cur.rowcount, cur.lastrowid
        if inserted == len(batch):
            # No duplicate: a rowid table without AUTOINCREMENT numbers new rows max(rowid)+1 onwards,
            # in VALUES order, all within this one statement's write lock.
            for k, s in enumerate(batch):
                s.result = last - len(batch) + 1 + k
            return
        # Some delivery ids were stored before (rare: a platform retrying). The new rows are the top
        # `inserted` ids, in VALUES order: a subsequence of the batch, matched in order by key.
        new_rows = self.conn.execute("SELECT id, platform, shop, delivery_id FROM inbox WHERE id > ? AND id <= ? "
                                     "ORDER BY id", (last - inserted, last)).fetchall() if inserted else []
        for s in batch:
            if new_rows and tuple(new_rows[0][1:]) == s.row[:2] + s.row[3:4]:
                s.result = new_rows.pop(0)[0]
            else:
                s.result = None


_writers: dict[str, _SQLiteWriter] = {}     # one per database file and process
_writers_guard = threading.Lock()
_by_engine: "weakref.WeakKeyDictionary[Engine, _SQLiteWriter | None]" = weakref.WeakKeyDictionary()


def _sqlite_writer(engine: Engine) -> _SQLiteWriter | None:
    # Remembered per engine: parsing its URL and taking a process-wide lock on every delivery cost
    # about as much GIL time as the INSERT itself (py-spy --gil on the webhook benchmark).
    w = _by_engine.get(engine, False)
    if w is False or (w is not None and w.pid != os.getpid()):     # a forked worker opens its own
        w = _by_engine[engine] = _open_writer(engine)
    return w


def _open_writer(engine: Engine) -> _SQLiteWriter | None:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    path = os.path.abspath(engine.url.database)
    with _writers_guard:
        w = _writers.get(path)
        if w is None or w.pid != os.getpid():
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
