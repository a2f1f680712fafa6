"""Raw webhook deliveries: stored (and committed) before they are acknowledged, replayable later."""
from __future__ import annotations

import json
import logging
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

from connector import database
from connector.spool import Mover, Spool
from connector.store import INBOX_NEW, InboxDelivery, utcnow

log = logging.getLogger(__name__)

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
                    body: bytes, delivery_id: str | None = None, received_at: datetime | None = None) -> int | None:
    """Store one delivery; returns its id, or None when this delivery id was stored before.

    The caller commits before answering the platform. `received_at`: when it came (a spooled one came earlier).
    """
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}
    res = session.execute(_insert_ignoring_duplicates(session).values(
        platform=platform, shop=shop, topic=topic or "", delivery_id=delivery_id or None,
        headers=json.dumps(kept, sort_keys=True), body=body, received_at=received_at or utcnow(), state=INBOX_NEW,
        attempts=0,
    ))
    if res.rowcount == 0:
        return None
    return res.inserted_primary_key[0] if res.inserted_primary_key else None


def mark(session: Session, delivery_id: int, state: str, error: str | None = None) -> None:
    """Record what processing made of a delivery (done, ignored with a reason, failed with an error)."""
    session.execute(update(_INBOX).where(_INBOX.c.id == delivery_id).values(
        state=state, error=error, processed_at=utcnow(), attempts=_INBOX.c.attempts + 1))


# On SQLite each request thread commits its own delivery on its own connection, as one INSERT in
# autocommit mode (a statement is its own transaction), and no Python lock is held around it.
# Why, measured with bench/webhooks.py (50 senders, waitress with 8 threads, 2 cores):
# - the sqlite3 module lets go of the GIL around every prepare and step, and winning it back under
#   load means a context switch or two and often a wait of up to the switch interval (5 ms). Any
#   Python lock held across such a call becomes a convoy: a group commit with one leader at a time
#   (first with the write lock as the queue, then with an explicit hand-off) measured 5-7x the
#   bare-handler floor's p99, 3.4 ms CPU and ~56 context switches per delivery;
# - here SQLite's own write lock is held only inside the C call, and is let go before the GIL is
#   asked for again: 1.6-1.8x the floor, 1.3 ms CPU and ~22 context switches per delivery.
# A contending writer waits in SQLite's busy handler (1 ms first step); a WAL write takes tens of
# microseconds, so it rarely waits twice. WAL checkpoints (page copies and an fsync) run in a thread
# of their own, outside every request. PostgreSQL goes through record_delivery.
_INSERT = ("INSERT INTO inbox (platform, shop, topic, delivery_id, headers, body, received_at, state, attempts) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 0) ON CONFLICT DO NOTHING")


class _SQLiteWriter:
    """Per-thread connections to one SQLite file, and the thread that checkpoints its WAL."""

    CHECKPOINT_EVERY = 1.0    # seconds
    # How long a delivery waits for a write lock another process holds (an import's chunk, a push) before
    # it is answered 503. Shopify and WooCommerce give a delivery 5 s in all (reference/shopify.md): a
    # longer wait only held a server thread past the point where the sender had given up and would retry
    # anyway, and with 30 s eight such waits took every thread, so deliveries the lock never touched
    # timed out too. A usual lock holder lets go within a second.
    BUSY_SECONDS = 3.0
    WAL_WARN_BYTES = 256 << 20  # a log this large that no checkpoint empties: someone holds a read open
    WARN_EVERY = 60.0         # seconds between two warnings of the same kind

    def __init__(self, path: str):
        self.path = path
        self.pid = os.getpid()
        self.local = threading.local()
        threading.Thread(target=self._checkpoints, name="inbox-wal-checkpoint", daemon=True).start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.BUSY_SECONDS, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={int(self.BUSY_SECONDS * 1000)}",
                       "wal_autocheckpoint=0"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _checkpoints(self) -> None:
        """Checkpoint the WAL every CHECKPOINT_EVERY. Webhooks are stored whether or not this works, but a
        log that is never emptied grows until the disk is full: that is said (at most once a minute)."""
        conn, warned = None, {}

        def warn(kind: str, message: str, *args) -> None:
            now = time.monotonic()
            if now - warned.get(kind, -self.WARN_EVERY) >= self.WARN_EVERY:
                warned[kind] = now
                log.warning(message, *args)
        while True:
            time.sleep(self.CHECKPOINT_EVERY)
            try:
                if conn is None:
                    fresh = self._connect()
                    page = fresh.execute("PRAGMA page_size").fetchone()[0]
                    conn = fresh            # only once both worked: `page` is then always known
                _, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as e:      # a passive checkpoint is never "busy": a full disk, an I/O error
                warn("error", "inbox %s: the write-ahead log cannot be checkpointed: %s (webhooks are still "
                     "stored; tried again every %gs)", self.path, e, self.CHECKPOINT_EVERY)
                continue
            if (pages - copied) * page >= self.WAL_WARN_BYTES:
                warn("size", "inbox %s: %d MB of write-ahead log cannot be checkpointed: a connection holds a read "
                     "transaction open (an sqlite3 shell? a long report?); the file grows until it is closed",
                     self.path, (pages - copied) * page >> 20)

    def insert(self, row: tuple) -> int | None:
        """Commit `row`; returns its id, or None for a duplicate delivery id. Raises on a database error."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self._connect()
        cur = conn.execute(_INSERT, row)
        return cur.lastrowid if cur.rowcount == 1 else None


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


SPOOLED = 0     # store_delivery's answer for a delivery kept in the spool (inbox ids start at 1)
_spools: "weakref.WeakKeyDictionary[Engine, Mover]" = weakref.WeakKeyDictionary()
_movers: dict[tuple[str, int], Mover] = {}     # one thread per spool folder and process


def use_spool(engine: Engine, folder: str | os.PathLike) -> Mover:
    """Deliveries that `engine` cannot take (`_keepable`) go to `folder`, and from there into the inbox by a
    thread of this process, which runs while anything waits there (from now, if an earlier run left
    deliveries)."""
    key = (os.path.abspath(folder), os.getpid())
    with _writers_guard:
        mover = _movers.get(key)
        if mover is None or mover.pid != os.getpid():
            mover = _movers[key] = Mover(Spool(folder), engine)
        mover.engine = engine
        _spools[engine] = mover
    mover.spool.clear_stale()
    mover.start()           # what an earlier run of the receiver kept
    return mover


def _mover_of(engine: Engine) -> Mover | None:
    mover = _spools.get(engine)
    if mover is not None and mover.pid != os.getpid():        # a forked worker: its own mover, its own thread
        mover = use_spool(engine, mover.spool.folder)
    return mover


def store_delivery(engine: Engine, *, shop: str, topic: str, headers: dict, body: bytes,
                   delivery_id: str | None, platform: str) -> int | None:
    """Record and commit one delivery (the webhook receivers' path); None when its delivery id was stored
    before, SPOOLED when the database could not be used and the delivery was kept in the spool instead
    (or others wait there: it goes after them)."""
    mover = _mover_of(engine)
    if mover is not None and mover.busy():
        try:
            _spool(mover, platform, shop, topic, headers, body, delivery_id)
            return SPOOLED
        except OSError:
            pass                    # the database may take it: better out of order than refused
    try:
        return _store(engine, shop=shop, topic=topic, headers=headers, body=body, delivery_id=delivery_id,
                      platform=platform)
    except Exception as e:
        if mover is None or not _keepable(e):
            raise
        try:
            path = _spool(mover, platform, shop, topic, headers, body, delivery_id)
        except OSError as spool_error:
            log.error("webhook spool %s: cannot keep the delivery either: %s", mover.spool.folder, spool_error)
            raise e from None
        log.warning("webhook %s/%s kept in the spool as %s: the connector database cannot be used (%s); it moves "
                    "into the inbox once the database works again", platform, shop, path.name,
                    database.unavailable_reason(e))
        return SPOOLED


def _keepable(e: BaseException) -> bool:
    """Whether a delivery the database did not take goes to the spool: when the database is down, and when it
    is set up wrongly (a grant missing after a restore, which a person fixes while the spool keeps them);
    not when it refuses the values themselves (they could never be stored), nor for a bug of ours."""
    from sqlalchemy.exc import DBAPIError
    if database.is_unavailable(e):
        return True
    return isinstance(e, (DBAPIError, sqlite3.Error)) and not database.refuses_the_data(e)


def _spool(mover: Mover, platform: str, shop: str, topic: str, headers: dict, body: bytes, delivery_id: str | None):
    path = mover.spool.put(platform=platform, shop=shop, topic=topic or "", body=body, delivery_id=delivery_id,
                           headers={k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS})
    mover.start()
    return path


def _store(engine: Engine, *, shop: str, topic: str, headers: dict, body: bytes, delivery_id: str | None,
           platform: str) -> int | None:
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
