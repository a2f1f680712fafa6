"""The daemon's jobs: flush the outbox, process the inbox, sweep leases, poll shops.

Each job runs once from a test, a CLI command or the scheduler, and keeps nothing in memory between
runs: the database is the only source of truth. `Runtime` holds resources only (engine, HTTP client).
"""
from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector import database
from connector.client import AddOrdersClient
from connector.flush import FlushReport, Flusher, sweep
from connector.inbox import mark
from connector.store import INBOX_DONE, INBOX_FAILED, INBOX_IGNORED, INBOX_NEW, InboxDelivery, init_db, make_engine, utcnow

log = logging.getLogger(__name__)
_INBOX = InboxDelivery.__table__


@dataclass
class Runtime:
    """What the jobs share: the config, one engine, one flusher, and the stop signal."""

    config: object
    engine: Engine
    flusher: Flusher
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, config, engine: Engine | None = None, client: AddOrdersClient | None = None) -> "Runtime":
        if engine is None:
            engine = make_engine(config.database)
        init_db(engine)
        return cls(config, engine, Flusher.from_config(engine, config, client))


def require_key(config) -> None:
    """Pushing without a key can only be refused: say so before starting."""
    from connector.errors import ConfigError
    if not config.target.api_key:
        raise ConfigError(f"no API key for the target: set the environment variable {config.target.api_key_env}"
                          + key_hint(config))


def key_hint(config) -> str:
    """Where `orderbridge up` keeps the key it made, when that file is here (its path, never its content)."""
    from pathlib import Path
    KEY_FILE = Path("var") / "api_key"      # backend/keys.py KEY_FILE; the daemon does not import the backend
    if not KEY_FILE.is_file():
        return ""
    return (f" (`orderbridge up` keeps the key it created in {KEY_FILE}: "
            f"export {config.target.api_key_env}=\"$(cat {KEY_FILE})\")")


# ---- flush and sweep -------------------------------------------------------------------------

def flush(rt: Runtime, progress=None) -> FlushReport:
    """Push until nothing is due, the target stops us, or the daemon is asked to stop."""
    report = rt.flusher.flush(stop=rt.stop, progress=progress)
    if report.batches:
        log.info("flush: %d sent, %d failed, %d rescheduled in %d batches", report.sent, report.failed,
                 report.retried, report.batches)
    return report


def sweep_leases(rt: Runtime) -> int:
    n = sweep(rt.engine, utcnow(), rt.config.daemon.max_attempts)
    if n:
        log.info("sweep: %d orders whose lease expired (or whose daemon died) are pending again", n)
    return n


# ---- inbox ---------------------------------------------------------------------------------

@dataclass
class InboxReport:
    done: int = 0
    ignored: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.done + self.ignored + self.failed


def _next_new(session: Session) -> int | None:
    """The oldest new delivery, held until the session ends, so no other process handles it meanwhile.

    PostgreSQL: the row stays locked while it is processed; other daemons skip it. SQLite: the
    transaction takes the database's write lock before it reads (BEGIN IMMEDIATE), so a second process
    (`outbox replay` beside `up`, two cron runs) waits, then reads the delivery as done. Without it
    both translated the same delivery and enqueued its version twice."""
    q = select(_INBOX.c.id).where(_INBOX.c.state == INBOX_NEW).order_by(_INBOX.c.id).limit(1)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    else:
        database.take_write_lock(session)
    return session.execute(q).scalar()


def process_inbox(rt: Runtime, limit: int | None = None) -> InboxReport:
    """Translate new deliveries, oldest first, one transaction each; stops when none is left."""
    report = InboxReport()
    while not rt.stop.is_set() and (limit is None or report.total < limit):
        outcome = process_one(rt)
        if outcome is None:
            break
        setattr(report, outcome, getattr(report, outcome) + 1)
    if report.total:
        log.info("inbox: %d done, %d ignored, %d failed", report.done, report.ignored, report.failed)
    return report


def process_one(rt: Runtime) -> str | None:
    """Process the oldest new delivery; returns 'done', 'ignored', 'failed', or None when none is new."""
    _prepare_next(rt)
    with Session(rt.engine) as s:
        delivery_id = _next_new(s)
        if delivery_id is None:
            return None
        delivery = s.get(InboxDelivery, delivery_id)
        try:
            reason = _process(s, delivery, rt.config)
        except Exception as e:   # noqa: BLE001 - any failure keeps the raw body for a replay
            s.rollback()
            if database.is_unavailable(e):
                # The store failed (a dropped connection, a server restart, a full disk), not the delivery:
                # it stays new and the next run takes it again, in order. Marked failed, it would wait for
                # an operator's replay while newer versions of its order went out.
                raise
            error = f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__) else str(e)
            log.warning("inbox %d (%s/%s %s) failed: %s", delivery_id, delivery.platform, delivery.shop,
                        delivery.topic, error)
            _mark_failed(s, delivery_id, error)
            s.commit()
            return "failed"
        mark(s, delivery_id, INBOX_IGNORED if reason else INBOX_DONE, reason)
        s.commit()
        return "ignored" if reason else "done"


def _prepare_next(rt: Runtime) -> None:
    """Before the transaction that processes it (which on SQLite holds the database's write lock, so every
    webhook received meanwhile waits), let the adapter of the oldest new delivery fetch what it will need
    from the platform (`prepare(delivery, shop)`, which must not raise or write): the processing then
    finds it cached instead of calling the platform under the lock. No lock is kept through the fetch:
    another daemon may take that delivery first, which only wastes the fetch (on PostgreSQL, one that
    another daemon is processing is passed over here too, as _next_new passes over it)."""
    with Session(rt.engine) as s:
        q = select(InboxDelivery).where(InboxDelivery.state == INBOX_NEW).order_by(InboxDelivery.id).limit(1)
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)     # held only while it is read
        delivery = s.execute(q).scalar()
        if delivery is None:
            return
        s.expunge(delivery)
    shop = rt.config.find_shop(delivery.shop)
    if shop is None:
        return                                  # processing names it
    try:
        prepare = getattr(_inbox_module(shop.platform), "prepare", None)
        if prepare is not None:
            prepare(delivery, shop)
    except Exception as e:   # noqa: BLE001 - a warm-up never stops the processing, which meets the same cause
        log.warning("inbox %d: preparing it failed (%s: %s); it is processed all the same", delivery.id,
                    type(e).__name__, e)


def _mark_failed(session: Session, delivery_id: int, error: str) -> None:
    # Only while still new: after the rollback another daemon may have taken and finished it.
    session.execute(update(_INBOX).where(_INBOX.c.id == delivery_id, _INBOX.c.state == INBOX_NEW).values(
        state=INBOX_FAILED, error=error[:4000], processed_at=utcnow(), attempts=_INBOX.c.attempts + 1))


class InboxError(Exception):
    """A delivery that cannot be processed as configured (unknown shop, no adapter)."""


def _process(session: Session, delivery: InboxDelivery, config) -> str | None:
    shop = config.find_shop(delivery.shop)
    if shop is None:
        raise InboxError(f"no shop named {delivery.shop!r} in the config (add it, then replay this delivery)")
    module = _inbox_module(shop.platform)
    if module is None:
        raise InboxError(f"no inbox processing for platform {shop.platform!r}")
    return module.process(session, delivery, shop)


def _inbox_module(platform: str):
    """adapters.<platform>.inbox, or None where the platform has none."""
    try:
        return importlib.import_module(f"adapters.{platform}.inbox")
    except ModuleNotFoundError as e:
        if e.name == f"adapters.{platform}.inbox":
            return None
        raise


def replay_inbox(engine: Engine, ids: list[int] | None) -> list[int]:
    """Failed deliveries back to `new` (after a fix); `ids=None` means every failed one. Returns the ids
    set back, so the caller can tell their outcome from that of other deliveries processed with them."""
    cond = [_INBOX.c.state == INBOX_FAILED]
    if ids is not None:
        cond.append(_INBOX.c.id.in_(ids))
    with Session(engine) as s:
        found = list(s.execute(select(_INBOX.c.id).where(*cond).order_by(_INBOX.c.id)).scalars())
        for part in range(0, len(found), 500):
            s.execute(update(_INBOX).where(_INBOX.c.id.in_(found[part:part + 500]), _INBOX.c.state == INBOX_FAILED)
                      .values(state=INBOX_NEW))
        s.commit()
    return found


def inbox_states(engine: Engine, ids: list[int]) -> dict[str, int]:
    """How many of the deliveries `ids` are in each state."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for part in range(0, len(ids), 500):
            for state, n in conn.execute(select(_INBOX.c.state, func.count()).where(_INBOX.c.id.in_(ids[part:part + 500]))
                                         .group_by(_INBOX.c.state)):
                counts[state] = counts.get(state, 0) + n
    return counts


# ---- polling -------------------------------------------------------------------------------

def poll_shops(rt: Runtime) -> dict[str, int | str]:
    """Poll every shop whose platform has a poller and whose credentials are set; one shop's error never stops another."""
    results: dict[str, int | str] = {}
    for shop in rt.config.shops:
        if rt.stop.is_set():
            break
        poller = _poller(shop.platform)
        if poller is None or not poller.has_credentials(shop):
            continue
        try:
            results[shop.name] = poller.poll(rt.engine, shop)
        except Exception as e:   # noqa: BLE001 - logged per shop; the next poll tries again
            # a database error's own text carries the SQL and its parameters: its first line says enough
            why = (f"the connector database cannot be used: {database.unavailable_reason(e)}"
                   if database.is_unavailable(e) else f"{type(e).__name__}: {e}")
            log.warning("poll %s (%s) failed: %s", shop.name, shop.platform, why)
            results[shop.name] = why
    return results


def polled_shops(config) -> list[str]:
    """The shops the poll job takes: a platform with a poller, its API credentials set."""
    return [shop.name for shop in config.shops
            if (poller := _poller(shop.platform)) is not None and poller.has_credentials(shop)]


def _poller(platform: str):
    try:
        return importlib.import_module(f"adapters.{platform}.poller")
    except ModuleNotFoundError as e:
        if e.name == f"adapters.{platform}.poller":
            return None
        raise


# ---- one full cycle (daemon --once, tests) -------------------------------------------------

@dataclass
class CycleReport:
    swept: int
    inbox: InboxReport
    polled: dict
    flush: FlushReport


def run_cycle(rt: Runtime, progress=None) -> CycleReport:
    """Sweep leases, process the inbox, poll the shops, then flush until nothing is due."""
    swept = sweep_leases(rt)
    inbox = process_inbox(rt)
    polled = poll_shops(rt)
    return CycleReport(swept, inbox, polled, flush(rt, progress))
