"""Flushing the outbox: claim due rows, push them in one request, settle each order's outcome.

Outcomes per batch: accepted (each order sent, or failed when listed in failedOrders), already applied
(sent), rejected as a whole (split in halves until the bad order is alone, then failed with the
response text), target busy or down (back to pending on the retry schedule, the flush stops), and
credentials refused (rows given back untouched, the flush stops). Every HTTP request leaves a
push_attempts row.

Orders that failed to go through twice are sent in smaller requests, halved with each further failure
(`chunk_size`): one order the target always answers with a 5xx (a bug of its own) is then soon
alone, and the others are delivered instead of waiting with it through the retry schedule (weeks)
and failing with it. When a request fails so, only its own orders count an attempt; the orders
behind it, not tried, go back to pending untouched, and go first next time.

While a flush runs, a heartbeat renews the lease of every row it holds (the batch on the wire, the
halves of a split, the batch claimed ahead) every third of a lease: a slow target or a long split
must not let the sweep hand those rows to the next claim, which would send them twice. A row the
heartbeat finds gone (it could not renew for a whole lease) is not sent by this flush.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector import cursors, database, outbox
from connector.client import AddOrdersClient, AddOrdersResult, Attempt, BatchRejected, CredentialsRefused, Stopped
from connector.errors import RetriableAPIError
from connector.store import PushAttempt, utcnow

log = logging.getLogger(__name__)
_ATTEMPTS = PushAttempt.__table__


def new_owner() -> str:
    """A lease owner id: host and pid (so a dead local owner can be recognised) plus a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_local_owners(owners: Sequence[str], host: str | None = None) -> list[str]:
    """Owners on this host whose process is gone: their leases can be returned without waiting."""
    host = host or socket.gethostname()
    dead = []
    for owner in owners:
        h, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if h == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            dead.append(owner)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class FlushReport:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    unreachable: str | None = None      # the target was busy or down: the flush stopped
    refused: str | None = None          # credentials refused / wrong URL: the flush stopped
    paused: str | None = None           # the target's Retry-After is not over: nothing was claimed
    errors: list[str] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return bool(self.unreachable or self.refused)

    def __iadd__(self, other: "FlushReport") -> "FlushReport":
        self.batches += other.batches
        self.sent += other.sent
        self.failed += other.failed
        self.retried += other.retried
        self.unreachable = other.unreachable or self.unreachable
        self.refused = other.refused or self.refused
        self.paused = other.paused or self.paused
        self.errors += other.errors
        return self


# A target's Retry-After holds for every order, not only the batch it answered: it is kept in the store
# (a cursors row), so the next flush tick, another daemon on the same database and the next
# `daemon --once` from cron all wait until then.
PAUSE_SHOP, PAUSE_NAME = "", "target-retry-after"


def clear_pause(engine: Engine) -> None:
    """Forget the target's Retry-After (an operator who knows the target is back: push --retry-now)."""
    with Session(engine) as s:
        cursors.clear(s, PAUSE_SHOP, PAUSE_NAME)
        s.commit()


def paused_until(engine: Engine, now: datetime) -> datetime | None:
    """When the target said it will take orders again, if that is still ahead of `now`."""
    with Session(engine) as s:
        value = cursors.read(s, PAUSE_SHOP, PAUSE_NAME)
    until = datetime.fromisoformat(value["until"]) if value else None
    return until if until is not None and until > now else None


def chunk_size(batch_size: int, attempts: int) -> int:
    """Orders per request for rows on their `attempts`-th try: the whole batch on the first two, then
    half as many with each try (a poisonous order is alone after about log2(batch_size) more)."""
    return max(1, batch_size >> max(0, attempts - 2))


def requests_of(rows: list[outbox.Claimed], batch_size: int) -> list[list[outbox.Claimed]]:
    """A claimed batch cut into requests: one, unless some of its orders failed before; then the least-failed
    go first, each request no larger than chunk_size allows for the most-failed order in it. Orders that
    came back untried are not held up again by the request that keeps failing, and after an outage
    only the orders that were tried meanwhile go in small requests. (One version per order is due at a
    time, so this never reorders an order's versions.)"""
    if chunk_size(batch_size, max(r.attempts for r in rows)) >= len(rows):
        return [rows]
    out: list[list[outbox.Claimed]] = []
    current: list[outbox.Claimed] = []
    for r in sorted(rows, key=lambda r: (r.attempts, r.id)):
        if current and len(current) >= chunk_size(batch_size, r.attempts):     # r: the most-failed so far
            out.append(current)
            current = []
        current.append(r)
    out.append(current)
    return out


class LeaseLost(Exception):
    """Rows of the batch about to be sent are no longer this flusher's (their lease ran out)."""


class Held:
    """The rows a flush holds, and a heartbeat thread that renews their leases every third of a lease."""

    def __init__(self, flusher: "Flusher"):
        self.flusher = flusher
        self.ids: set[int] = set()
        self.lost: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def add(self, rows: Sequence[outbox.Claimed]) -> list[outbox.Claimed]:
        with self._lock:
            self.ids.update(r.id for r in rows)
        return list(rows)

    def drop(self, ids) -> None:
        with self._lock:
            self.ids.difference_update(ids)
            self.lost.difference_update(ids)

    def keep(self, rows: Sequence[outbox.Claimed]) -> list[outbox.Claimed]:
        """The rows still held (a lost row is forgotten: it is someone else's now)."""
        with self._lock:
            gone = {r.id for r in rows} & self.lost
        if gone:
            log.warning("%d orders left this flush: their lease ran out before they were sent", len(gone))
            self.drop(gone)
        return [r for r in rows if r.id not in gone]

    def check(self, rows: Sequence[outbox.Claimed]) -> None:
        """Before a request (and each in-request retry): refuse to send rows that are no longer held."""
        with self._lock:
            if any(r.id in self.lost for r in rows):
                raise LeaseLost()

    def renew(self) -> None:
        with self._lock:
            ids = list(self.ids)
        if not ids:
            return
        f = self.flusher
        with Session(f.engine) as s:
            still = outbox.renew(s, ids, f.owner, f.lease, f.clock())
            s.commit()
        with self._lock:
            self.lost.update(i for i in ids if i not in still and i in self.ids)

    def _beat(self) -> None:
        while not self._stop.wait(self.flusher.lease / 3):
            try:
                self.renew()
            except Exception as e:       # noqa: BLE001 - a busy database: the next beat tries again
                if database.is_unavailable(e):      # one line, every third of a lease while it lasts
                    log.warning("could not renew the leases of %d orders: %s", len(self.ids),
                                database.unavailable_reason(e))
                else:
                    log.warning("could not renew the leases of %d orders", len(self.ids), exc_info=True)

    def __enter__(self) -> "Held":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Flusher:
    """Pushes the outbox of one engine to one target. Holds no queue state: the database does."""

    def __init__(self, engine: Engine, client: AddOrdersClient, *, batch_size: int = 1000, lease: float = 60.0,
                 schedule: Sequence[float] = (30,), max_attempts: int = 30, owner: str | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.engine, self.client = engine, client
        self.batch_size, self.lease = batch_size, lease
        self.schedule, self.max_attempts = tuple(schedule), max_attempts
        self.owner = owner or new_owner()
        self.clock = clock
        self._attempts: list[Attempt] = []
        client.on_attempt = self._attempts.append

    @classmethod
    def from_config(cls, engine: Engine, config, client: AddOrdersClient | None = None, **kw) -> "Flusher":
        d = config.daemon
        return cls(engine, client or AddOrdersClient.from_config(config), batch_size=config.target.batch_size,
                   lease=d.lease, schedule=d.retry_schedule, max_attempts=d.max_attempts, **kw)

    def flush(self, stop: threading.Event | None = None, progress: Callable[[FlushReport], None] | None = None,
              max_batches: int | None = None) -> FlushReport:
        """Push batch after batch until nothing is due, the target stops us, or `stop` is set.

        The next batch is claimed while the current one is on the wire, so the store's work hides
        behind the target's; a prefetched batch that is not sent is given back at once.
        """
        total = FlushReport()
        if (paused := self._paused()) is not None:
            return paused
        with Held(self) as held, ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim") as prefetch:
            rows = self._claim(held)
            while rows:
                if (stop is not None and stop.is_set()) or (max_batches is not None and total.batches >= max_batches):
                    self._give_back(held, rows)
                    break
                upcoming = prefetch.submit(self._claim, held)
                report = FlushReport(batches=1)
                try:
                    self._push(held, rows, report, batch_id=uuid.uuid4().hex[:16], stop=stop)
                except BaseException:
                    self._give_back(held, upcoming.result())   # the batch that failed waits for its lease
                    raise
                rows = held.keep(upcoming.result())
                total += report
                if not rows and not report.stopped:
                    # The prefetch ran while this batch was in flight: later versions of its orders
                    # were not due yet. They may be now.
                    rows = self._claim(held)
                if progress is not None:
                    progress(report)
                if report.stopped:
                    self._give_back(held, rows)
                    break
        return total

    def flush_batch(self) -> FlushReport:
        """Claim one batch and push it; a report with batches=0 means nothing was due."""
        if (paused := self._paused()) is not None:
            return paused
        with Held(self) as held:
            rows = self._claim(held)
            if not rows:
                return FlushReport()
            report = FlushReport(batches=1)
            self._push(held, rows, report, batch_id=uuid.uuid4().hex[:16])
            return report

    def _paused(self) -> FlushReport | None:
        until = paused_until(self.engine, self.clock())
        if until is None:
            return None
        return FlushReport(paused=f"the target asked to wait (Retry-After) until "
                                  f"{until.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")

    def _claim(self, held: Held) -> list[outbox.Claimed]:
        with Session(self.engine) as s:
            rows = outbox.claim(s, self.owner, self.batch_size, self.lease, self.clock())
            s.commit()
        return held.add(rows)

    def _give_back(self, held: Held, rows: list[outbox.Claimed]) -> None:
        if rows:
            with Session(self.engine) as s:
                outbox.release(s, [r.id for r in rows], self.owner, self.clock())
                s.commit()
            held.drop(r.id for r in rows)

    def _push(self, held: Held, rows: list[outbox.Claimed], report: FlushReport, batch_id: str,
              stop: threading.Event | None = None) -> None:
        queue = requests_of(rows, self.batch_size)
        while queue:
            part = held.keep(queue.pop(0))
            if not part:
                continue
            try:
                result = self.client.add_orders([r.payload for r in part], before_attempt=lambda: held.check(part),
                                                stop=stop)
            except Stopped:
                rest = part + [r for q in queue for r in q]
                with Session(self.engine) as s:     # the requests made before the stop are logged all the same
                    self._write_attempts(s, batch_id)
                    s.commit()
                self._give_back(held, rest)     # untouched: no attempt counted, due again at once
                log.info("flush stopped for shutdown; %d orders go back to pending", len(rest))
                return
            except LeaseLost:
                queue.insert(0, part)       # sent without the rows that left (kept out by keep)
                continue
            except BatchRejected as e:
                if len(part) == 1:
                    self._settle(batch_id, report, failed={part[0].id: f"rejected by the target ({e.status}): {e.body[:1000]}"})
                    held.drop([part[0].id])
                else:   # halve it: the good halves go through, the bad order ends up alone
                    mid = len(part) // 2
                    queue[0:0] = [part[:mid], part[mid:]]
                    self._settle(batch_id, report)
                continue
            except RetriableAPIError as e:
                # This request's orders count the attempt; those behind it were not tried: back untouched
                untried = [r for q in queue for r in q]
                self._settle(batch_id, report, retry=part, release=untried, error=str(e), retry_after=e.retry_after)
                report.retried += len(untried)
                held.drop(r.id for r in part + untried)
                report.unreachable = str(e)
                log.warning("flush paused: %s (%d orders rescheduled)", e, len(part) + len(untried))
                return
            except CredentialsRefused as e:
                rest = part + [r for q in queue for r in q]
                self._settle(batch_id, report, release=rest, error=str(e))
                held.drop(r.id for r in rest)
                report.refused = str(e)
                log.error("flush stopped: %s; %d orders stay pending", e, len(rest))
                return
            self._settle_accepted(batch_id, report, part, result)
            held.drop(r.id for r in part)

    def _settle_accepted(self, batch_id: str, report: FlushReport, part: list[outbox.Claimed],
                         result: AddOrdersResult) -> None:
        by_oid = {r.external_order_id: r.id for r in part}
        failed: dict[int, str] = {}
        for f in result.failed:
            row_id = by_oid.get(f.external_order_id) if f.external_order_id is not None else None
            if row_id is None and len(part) == 1:
                row_id = part[0].id
            if row_id is None:
                # Nothing is dropped silently: an unmatchable failure is logged and kept in push_attempts.
                msg = f"failedOrders names an order not in the batch ({f.external_order_id!r}): {f.error}"
                log.warning(msg)
                report.errors.append(msg)
                continue
            failed[row_id] = f.error
        sent = [r.id for r in part if r.id not in failed]
        self._settle(batch_id, report, sent=sent, failed=failed)

    def _settle(self, batch_id: str, report: FlushReport, *, sent: Sequence[int] = (), failed: dict[int, str] | None = None,
                retry: Sequence[outbox.Claimed] = (), release: Sequence[outbox.Claimed] = (), error: str = "",
                retry_after: float | None = None) -> None:
        """Record outcomes and the HTTP attempts behind them in one transaction."""
        now = self.clock()
        with Session(self.engine) as s:
            report.sent += outbox.mark_sent(s, sent, self.owner, now)
            report.failed += outbox.mark_failed(s, failed or {}, self.owner, now)
            if retry_after:
                until = now + timedelta(seconds=retry_after)
                cursors.write(s, PAUSE_SHOP, PAUSE_NAME, {"until": until.isoformat()})
            if retry:
                back, gave_up = outbox.mark_retry(s, retry, self.owner, now, error, schedule=self.schedule,
                                                  max_attempts=self.max_attempts, retry_after=retry_after)
                report.retried += back
                report.failed += gave_up
            if release:
                outbox.release(s, [r.id for r in release], self.owner, now, error, delay=min(self.schedule or (0,)))
            self._write_attempts(s, batch_id)
            s.commit()

    def _write_attempts(self, s: Session, batch_id: str) -> None:
        if not self._attempts:
            return
        s.execute(insert(_ATTEMPTS), [dict(batch_id=batch_id, started_at=a.started_at, duration_ms=a.duration_ms,
                                           orders=a.orders, status_code=a.status_code,
                                           response_excerpt=a.response_excerpt, error=a.error) for a in self._attempts])
        self._attempts.clear()


def sweep(engine: Engine, now: datetime, max_attempts: int) -> int:
    """Return expired leases, and the leases of dead daemons on this host, to pending."""
    with Session(engine) as s:
        n = outbox.release_owners(s, dead_local_owners(outbox.lease_owners(s)), now)
        n += outbox.sweep_expired(s, now, max_attempts)
        s.commit()
    return n
