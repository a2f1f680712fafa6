"""Webhook deliveries kept on local disk while the connector database cannot be used, moved into the inbox later.

WooCommerce never sends a refused delivery again and disables a webhook after a few refusals in a row
(reference/woocommerce.md 1.5); Shopify stops after 8 tries in 4 hours. So a receiver whose database is
down for a moment (PostgreSQL restarting, a SQLite lock held for long) writes the delivery here, synced
to disk, and acknowledges it: it is as durable as a committed inbox row. A thread of the receiver moves
spooled deliveries into the inbox once the database works again, oldest first, and only then deletes
their files. A crash between the two stores a delivery twice at most, which its delivery id (or, without
one, the outbox's content hash) makes a no-op.

One file a delivery, written under a temporary name and renamed once synced: a file with a final name
is always whole. While a receiver has deliveries in the spool, new ones go there too, so that they reach
the inbox in the order they came. Receivers sharing a folder take turns to move files (an exclusive lock
on `.lock`); a folder belongs to one connector database (daemon.receiver.spool_dir names it after it).
"""
from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import time
import uuid
import weakref
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector import database

log = logging.getLogger(__name__)

SUFFIX = ".delivery.json"
BAD_FOLDER = "unreadable"       # files that cannot be stored: kept aside, named in the log


class Spool:
    """The spool folder of a connector database's receivers (on one machine; several may share it)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._read_failures: dict[str, int] = {}

    def put(self, *, platform: str, shop: str, topic: str, headers: dict, body: bytes,
            delivery_id: str | None) -> Path:
        """Write one delivery and sync it to disk; raises OSError when it cannot be (a full disk)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = {"platform": platform, "shop": shop, "topic": topic, "headers": headers,
                  "delivery_id": delivery_id, "received_at": datetime.now(timezone.utc).isoformat(),
                  "body": base64.b64encode(body).decode("ascii")}
        # the name sorts by arrival: deliveries move into the inbox in the order they came
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}{SUFFIX}"
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(record).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / name)
            _sync_folder(self.folder)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.folder / name

    def waiting(self) -> list[Path]:
        """The spooled deliveries, oldest first (OSError when the folder cannot be read)."""
        try:
            return sorted(self.folder / n for n in os.listdir(self.folder) if n.endswith(SUFFIX) and not n.startswith("."))
        except FileNotFoundError:
            return []

    def drain(self, engine: Engine) -> int:
        """Move what waits into the inbox, oldest first; returns how many were moved. Stops at the first
        delivery the database cannot take now, raising that error (the next round starts there again);
        another receiver already moving files is left to it (0)."""
        if not self.waiting():
            return 0
        with open(self.folder / ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            moved = 0
            for path in self.waiting():     # read again under the lock: another receiver may have moved some
                try:
                    record = _read(path)
                except (ValueError, KeyError, TypeError) as e:      # not a whole delivery
                    self._set_aside(path, e)
                    continue
                except OSError as e:        # EACCES, EIO: tried again next round, set aside the third time
                    self._unreadable(path, e)
                    continue
                try:
                    _record(engine, record)
                except Exception as e:
                    if not database.refuses_the_data(e):
                        raise       # down, or set up wrongly (a missing grant): the next round starts here again
                    self._set_aside(path, e)    # this one delivery can never be stored: it must not hold the rest
                    continue
                path.unlink(missing_ok=True)
                moved += 1
            if moved:
                _sync_folder(self.folder)
            return moved

    def has_files(self) -> bool:
        """Whether any delivery waits (cheap: the first entry found answers; False when unreadable)."""
        try:
            with os.scandir(self.folder) as entries:
                return any(e.name.endswith(SUFFIX) and not e.name.startswith(".") for e in entries)
        except OSError:
            return False

    def clear_stale(self, age: float = 600.0) -> None:
        """Delete temporary files a crash left: their delivery was never acknowledged (the platform sends it
        again), and they hold customers' data. Only old ones: another receiver may be writing a new one."""
        try:
            with os.scandir(self.folder) as entries:
                stale = [e.path for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")
                         and time.time() - e.stat().st_mtime > age]
        except OSError:
            return
        for path in stale:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _unreadable(self, path: Path, error: OSError) -> None:
        self._read_failures[path.name] = self._read_failures.get(path.name, 0) + 1
        if self._read_failures[path.name] >= 3:
            del self._read_failures[path.name]
            self._set_aside(path, error)
        else:
            log.warning("webhook spool: %s cannot be read (%s); the others are moved, and it is tried again",
                        path.name, error)

    def _set_aside(self, path: Path, error: Exception) -> None:
        bad = self.folder / BAD_FOLDER
        bad.mkdir(mode=0o700, exist_ok=True)
        os.replace(path, bad / path.name)
        log.error("webhook spool: %s cannot be stored (%s); moved to %s, nothing was stored from it",
                  path.name, database.unavailable_reason(error), bad)


def _read(path: Path) -> dict:
    record = json.loads(path.read_bytes())
    record["body"] = base64.b64decode(record["body"], validate=True)
    record["received_at"] = datetime.fromisoformat(record["received_at"])
    for key in ("platform", "shop", "topic"):
        if not isinstance(record[key], str):
            raise TypeError(f"{key} is not text")
    if not isinstance(record["headers"], dict):
        raise TypeError("headers is not an object")
    if not isinstance(record.setdefault("delivery_id", None), (str, type(None))):
        raise TypeError("delivery_id is not text")
    return record


def _record(engine: Engine, record: dict) -> None:
    from connector.inbox import record_delivery
    with Session(engine) as session:
        record_delivery(session, platform=record["platform"], shop=record["shop"], topic=record["topic"],
                        headers=record["headers"], body=record["body"], delivery_id=record["delivery_id"],
                        received_at=record["received_at"])
        session.commit()


def _sync_folder(folder: Path) -> None:
    # a rename or an unlink is durable once the folder itself is synced
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Mover:
    """The receiver's thread that empties its spool into the inbox while anything waits there: it runs only
    then (started by `start`: when the receiver starts, and after each put). Rounds follow one another at
    once while they move files (under steady traffic every delivery comes through the spool until it is
    empty), and every EVERY seconds while the database cannot take them."""

    EVERY = 5.0
    WARN_EVERY = 60.0

    def __init__(self, spool: Spool, engine: Engine):
        self.spool = spool
        self.engine = engine
        self.pid = os.getpid()          # a forked child makes its own: this one's thread is not there
        self._warned: dict[str, float] = {}
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> Engine | None:
        return self._engine()

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)      # the receiver's own: this thread must not keep it alive

    def busy(self) -> bool:
        """True while deliveries wait in the spool (this process's or another receiver's on the folder): new
        ones go there too, so that deliveries reach the inbox in the order they came (an order.deleted
        spooled, then its order.restored stored directly, would otherwise end cancelled)."""
        if self._thread is not None:
            return True
        if self.spool.has_files():      # another receiver's: this one helps move them, in turns
            self.start()
            return True
        return False

    def start(self) -> None:
        """Make sure the thread runs if anything waits (a no-op while it runs)."""
        with self._guard:
            if self._thread is None and self._has_work() is not False:
                thread = threading.Thread(target=self._run, name="webhook-spool", daemon=True)
                thread.start()          # raises when no thread can be started: then none is recorded
                self._thread = thread

    def _has_work(self) -> bool | None:
        """Whether anything waits; None when the folder cannot be read (then it is tried again)."""
        try:
            return bool(self.spool.waiting())
        except OSError as e:
            self._warn("folder", "webhook spool %s cannot be read: %s; deliveries kept there wait", self.spool.folder, e)
            return None

    def _run(self) -> None:
        try:
            while self.engine is not None:      # its receiver gone: the next one to use this folder moves them
                moved = self.once()
                with self._guard:
                    # checked under the guard that `start` takes after a put: a file spooled now is seen here,
                    # or `start` finds no thread and starts one
                    if self._has_work() is False:
                        self._thread = None
                        return
                if not moved:
                    time.sleep(self.EVERY)
        finally:
            with self._guard:
                if self._thread is threading.current_thread():
                    self._thread = None

    def once(self) -> int:
        """One round: what waits, into the inbox; returns how many moved."""
        engine = self.engine
        if engine is None:
            return 0
        try:
            moved = self.spool.drain(engine)
        except Exception as e:      # noqa: BLE001 - a thread that dies would leave deliveries on disk unseen
            reason = database.unavailable_reason(e) if database.is_unavailable(e) else repr(e)
            self._warn("drain", "webhook spool %s: deliveries wait for the connector database (%s); tried again "
                       "every %gs", self.spool.folder, reason, self.EVERY)
            return 0
        if moved:
            log.info("webhook spool %s: %d deliveries moved into the inbox", self.spool.folder, moved)
        return moved

    def _warn(self, kind: str, message: str, *args) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -self.WARN_EVERY) >= self.WARN_EVERY:
            self._warned[kind] = now
            log.warning(message, *args)
