"""The outbox: order versions in (deduplicated by hash, older versions refused), claimed, settled, repaired.

`enqueue` works inside the caller's transaction, so a poller can advance its cursor in the same
commit that enqueues what it read (DESIGN.md section 2: nothing is lost).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, NamedTuple, Sequence

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from connector import database
from connector.format import Order, canonical_json, order_to_wire, utf8
from connector.retry import next_attempt_at
from connector.store import FAILED, IN_FLIGHT, PENDING, SENT, OrderHead, OutboxRow, utcnow

_HEADS = OrderHead.__table__
_OUTBOX = OutboxRow.__table__
_CHUNK = 500   # rows per IN (...) look-up; well under SQLite's variable limit
LOCK_SPACE = 1  # database.advisory_locks: the connector store's keys (the backend's contacts use 0)


@dataclass(frozen=True)
class Version:
    """One order version to enqueue: its wire form and where it came from."""

    shop: str
    wire: dict
    source: str = ""
    source_updated_at: datetime | None = None   # the platform's updated_at, when it has one

    @classmethod
    def of(cls, shop: str, order: Order, **kw) -> "Version":
        return cls(shop, order_to_wire(order), **kw)


@dataclass
class EnqueueResult:
    enqueued: int = 0
    unchanged: int = 0      # identical to the last version enqueued for that order
    stale: int = 0          # older (by the platform's updated_at) than the last version enqueued
    ids: list[int] = field(default_factory=list)

    def __iadd__(self, other: "EnqueueResult") -> "EnqueueResult":
        self.enqueued += other.enqueued
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.ids += other.ids
        return self


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything we store is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def enqueue(session: Session, versions: Iterable[Version]) -> EnqueueResult:
    """Enqueue order versions; the caller commits. Safe to call with duplicates in one call."""
    return enqueue_prepared(session, (PreparedVersion.of(v) for v in versions))


class PreparedVersion(NamedTuple):
    """A version whose canonical JSON and hash are computed already (the CSV import's worker processes
    do it): enqueue_prepared stores them as they are."""

    shop: str
    external_order_id: str
    canonical: str                          # canonical_json of the wire order
    digest: str                             # sha256 hex of `canonical` (content_hash)
    source: str = ""
    source_updated_at: datetime | None = None

    @classmethod
    def of(cls, v: Version) -> "PreparedVersion":
        text = canonical_json(v.wire)
        return cls(v.shop, str(v.wire["externalOrderId"]), text, _hash_text(text), v.source, v.source_updated_at)


def enqueue_prepared(session: Session, versions: Iterable[PreparedVersion]) -> EnqueueResult:
    """enqueue() for versions prepared elsewhere; the caller commits."""
    result = EnqueueResult()
    batch: list[PreparedVersion] = []
    for v in versions:
        batch.append(v)
        if len(batch) >= _CHUNK:
            result += _enqueue_chunk(session, batch)
            batch = []
    if batch:
        result += _enqueue_chunk(session, batch)
    return result


def _hash_text(text: str) -> str:
    # content_hash(wire) is sha256 of canonical_json(wire): the text is already at hand here.
    return hashlib.sha256(utf8(text)).hexdigest()


def _enqueue_chunk(session: Session, batch: Sequence[PreparedVersion]) -> EnqueueResult:
    dialect = session.get_bind().dialect.name
    sqlite = dialect == "sqlite"
    keys = {(v.shop, v.external_order_id) for v in batch}
    if sqlite:
        database.take_write_lock(session)    # the heads read below stay true until this commits
    else:
        # Two transactions enqueuing one new order at once (the poll and the inbox, two daemons) would both
        # find no head and both insert one: the second failed on the key, and its webhook delivery with it.
        # With a lock per order the second waits, then reads the first's head and compares as usual.
        database.advisory_locks(session, (f"{len(shop)}:{shop}:{oid}" for shop, oid in keys), LOCK_SPACE)
    heads = _read_heads(session, keys, sqlite)
    result, now, new_heads, rows = EnqueueResult(), utcnow(), {}, []
    for v in batch:
        key = (v.shop, v.external_order_id)
        h = v.digest
        old = new_heads.get(key) or heads.get(key)
        if old and old[0] == h:
            result.unchanged += 1
            continue
        src = _aware(v.source_updated_at)
        if old and old[1] and src and src < old[1]:
            result.stale += 1
            continue
        rows.append((v.shop, key[1], v.canonical, h, v.source))
        new_heads[key] = (h, src or (old[1] if old else None), len(rows) - 1)
    if rows:
        ids = (_insert_sqlite if sqlite else _insert_core)(session, rows, now)
        result.enqueued, result.ids = len(ids), ids
    _write_heads(session, heads, new_heads, result.ids, now)
    return result


def known_orders(session: Session, shop: str, external_order_ids: Iterable[str]) -> set[str]:
    """Which of these orders of `shop` have had a version enqueued (sent, on its way, or failed)."""
    ids, found = list(dict.fromkeys(external_order_ids)), set()
    for start in range(0, len(ids), 500):
        found.update(session.execute(select(_HEADS.c.external_order_id).where(
            _HEADS.c.shop == shop, _HEADS.c.external_order_id.in_(ids[start:start + 500]))).scalars())
    return found


def _read_heads(session: Session, keys: set[tuple[str, str]], sqlite: bool) -> dict:
    """(shop, order id) → (content hash, source_updated_at, True) of the heads that exist among `keys`."""
    heads = {}
    for shop in {k[0] for k in keys}:
        ids = [k[1] for k in keys if k[0] == shop]
        if sqlite:
            # through the driver, as the writes below: SQLAlchemy's per-value processing cost more than SQLite
            cur = session.connection().connection.driver_connection.cursor()
            try:
                rows = cur.execute(f"SELECT external_order_id, content_hash, source_updated_at FROM order_heads "
                                   f"WHERE shop = ? AND external_order_id IN ({','.join('?' * len(ids))})",
                                   [shop, *ids]).fetchall()
            finally:
                cur.close()
            rows = [(oid, h, _from_sqlite(src)) for oid, h, src in rows]
        else:
            rows = session.execute(select(_HEADS.c.external_order_id, _HEADS.c.content_hash, _HEADS.c.source_updated_at)
                                   .where(_HEADS.c.shop == shop, _HEADS.c.external_order_id.in_(ids)))
        heads.update({(shop, r[0]): (r[1], _aware(r[2]), True) for r in rows})
    return heads


def _insert_core(session: Session, rows: list[tuple], now: datetime) -> list[int]:
    """One multi-row INSERT ... RETURNING (in parameter order) instead of a statement per row."""
    params = [dict(shop=shop, external_order_id=oid, payload=text, content_hash=h, source=source, state=PENDING,
                   attempts=0, next_attempt_at=now, created_at=now, updated_at=now)
              for shop, oid, text, h, source in rows]
    return list(session.execute(insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True), params).scalars())


_SQLITE_INSERT = ("INSERT INTO outbox (shop, external_order_id, payload, content_hash, source, state, attempts, "
                  "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)")


def _insert_sqlite(session: Session, rows: list[tuple], now: datetime) -> list[int]:
    """SQLite cannot order RETURNING, so SQLAlchemy would send one INSERT per row (most of an import's
    database time). One executemany instead: the transaction holds SQLite's write lock from the first
    insert, and a table without AUTOINCREMENT numbers new rows max(id) + 1, so they get consecutive ids.
    The count over that id range checks it (SQLite picks random ids once the largest rowid is used):
    then the chunk fails, and the caller's transaction with it, rather than link heads to wrong rows."""
    when = _sqlite_datetimes(session)(now)
    cur = session.connection().connection.driver_connection.cursor()
    try:
        cur.executemany(_SQLITE_INSERT, [(*r, PENDING, when, when, when) for r in rows])
        last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(rows) + 1
        n = cur.execute("SELECT count(*) FROM outbox WHERE id BETWEEN ? AND ?", (first, last)).fetchone()[0]
    finally:
        cur.close()
    if n != len(rows):
        raise RuntimeError(f"outbox ids are not consecutive ({n} rows in {first}..{last} for {len(rows)} inserted)")
    return list(range(first, last + 1))


def _sqlite_datetimes(session: Session):
    """Datetimes as SQLAlchemy stores them in SQLite (the same text, read back alike).

    Its bind processor costs several µs a value, which an import of a million orders pays for every
    head; the same text is written directly when a probe shows the two agree (else the processor runs)."""
    process = _OUTBOX.c.created_at.type._cached_bind_processor(session.get_bind().dialect)
    if process is None:
        return lambda dt: dt
    probe = datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    if process(probe) == _utc_text(probe):
        return lambda dt: None if dt is None else _utc_text(dt)
    return lambda dt: None if dt is None else process(dt)


def _utc_text(dt: datetime) -> str:
    # SQLAlchemy's own format for SQLite, of the UTC time (the fastest of the ways tried for a million heads)
    d = dt.astimezone(timezone.utc)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond)


def _from_sqlite(text: str | None) -> datetime | None:
    """A datetime as SQLAlchemy reads it back from SQLite (naive; _aware makes it UTC)."""
    return None if text is None else datetime.fromisoformat(text)


_SQLITE_HEAD_INSERT = ("INSERT INTO order_heads (shop, external_order_id, content_hash, source_updated_at, outbox_id, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?)")
_SQLITE_HEAD_UPDATE = ("UPDATE order_heads SET content_hash = ?3, source_updated_at = ?4, outbox_id = ?5, updated_at = ?6 "
                       "WHERE shop = ?1 AND external_order_id = ?2")


def _write_heads(session: Session, heads: dict, new_heads: dict, ids: list[int], now: datetime) -> None:
    """new_heads: (shop, order id) → (content hash, source_updated_at, index of its row in `ids`)."""
    if not new_heads:
        return
    if session.get_bind().dialect.name == "sqlite":
        return _write_heads_sqlite(session, heads, new_heads, ids, now)
    ins, upd = [], []
    for (shop, oid), (h, src, i) in new_heads.items():
        row = {"k_shop": shop, "k_oid": oid, "content_hash": h, "source_updated_at": src, "outbox_id": ids[i], "updated_at": now}
        (upd if (shop, oid) in heads else ins).append(row)
    if ins:
        session.execute(insert(_HEADS), [{"shop": r.pop("k_shop"), "external_order_id": r.pop("k_oid"), **r} for r in ins])
    if upd:
        session.execute(update(_HEADS).where(_HEADS.c.shop == bindparam("k_shop"),
                                             _HEADS.c.external_order_id == bindparam("k_oid")), upd)


def _write_heads_sqlite(session: Session, heads: dict, new_heads: dict, ids: list[int], now: datetime) -> None:
    """_write_heads through the driver: the per-value type processing cost more than SQLite's work.
    One row shape serves both statements (the UPDATE numbers its parameters), built in one comprehension."""
    as_text = _sqlite_datetimes(session)
    when = as_text(now)
    rows = [(shop, oid, h, as_text(src), ids[i], when) for (shop, oid), (h, src, i) in new_heads.items()]
    upd = [r for r in rows if r[:2] in heads] if heads else []
    ins = [r for r in rows if r[:2] not in heads] if upd else rows
    cur = session.connection().connection.driver_connection.cursor()
    try:
        if ins:
            cur.executemany(_SQLITE_HEAD_INSERT, ins)
        if upd:
            cur.executemany(_SQLITE_HEAD_UPDATE, upd)
    finally:
        cur.close()


def enqueue_failed(session: Session, shop: str, external_order_id: str, payload, error: str, *,
                   source: str = "") -> int | None:
    """Keep an order that translated but cannot be sent as a `failed` row with its reason.

    Poll overlaps and webhook retries bring the same unsendable order again: one failed row is
    kept per distinct payload, so None is returned when an identical one is already there.
    """
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    oid = str(external_order_id)
    seen = session.execute(select(_OUTBOX.c.id).where(
        _OUTBOX.c.external_order_id == oid, _OUTBOX.c.shop == shop, _OUTBOX.c.state == FAILED,
        _OUTBOX.c.content_hash == digest).limit(1)).first()
    if seen is not None:
        return None
    now = utcnow()
    return session.execute(insert(_OUTBOX).values(
        shop=shop, external_order_id=oid, payload=text, content_hash=digest, source=source,
        state=FAILED, attempts=0, next_attempt_at=now, last_error=error, created_at=now, updated_at=now,
    )).inserted_primary_key[0]


# ---- the queue side: claim, outcomes, leases, repair ------------------------------------------
# Every function below takes `now` (time is passed in) and works inside the caller's transaction.

@dataclass(frozen=True)
class Claimed:
    """A row claimed for one push, as RETURNING gave it."""

    id: int
    shop: str
    external_order_id: str
    payload: str
    attempts: int       # including the attempt this claim starts


def _due_ids(session: Session, now: datetime, limit: int):
    """Due rows, oldest first, and only the oldest open version of each order.

    A version is due only when no older version of the same order is pending or in flight, so a
    batch never holds two versions of one order and versions go out in the order they came in.
    """
    older = _OUTBOX.alias("older")
    older_open = (select(older.c.id).where(older.c.external_order_id == _OUTBOX.c.external_order_id,
                                           older.c.id < _OUTBOX.c.id, older.c.state.in_((PENDING, IN_FLIGHT)))
                  .exists())
    q = (select(_OUTBOX.c.id).where(_OUTBOX.c.state == PENDING, _OUTBOX.c.next_attempt_at <= now, ~older_open)
         .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        # SQLite has no row locks (SQLAlchemy silently drops the clause there); it serialises writers instead.
        q = q.with_for_update(skip_locked=True)
    return q


def claim(session: Session, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[Claimed]:
    """Claim up to `limit` due rows for `owner` in ONE atomic UPDATE ... RETURNING; commit at once."""
    stmt = (update(_OUTBOX).where(_OUTBOX.c.id.in_(_due_ids(session, now, limit).scalar_subquery()))
            .values(state=IN_FLIGHT, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=_OUTBOX.c.attempts + 1, updated_at=now)
            .returning(_OUTBOX.c.id, _OUTBOX.c.shop, _OUTBOX.c.external_order_id, _OUTBOX.c.payload, _OUTBOX.c.attempts))
    rows = [Claimed(*r) for r in session.execute(stmt)]
    rows.sort(key=lambda r: r.id)
    return rows


def _mine(ids: Sequence[int], owner: str):
    # Outcomes only land on rows this owner still holds: a lease that expired was swept and may
    # belong to someone else now.
    return (_OUTBOX.c.id.in_(list(ids)), _OUTBOX.c.lease_owner == owner, _OUTBOX.c.state == IN_FLIGHT)


def renew(session: Session, ids: Sequence[int], owner: str, lease_seconds: float, now: datetime) -> set[int]:
    """Extend the lease of the rows among `ids` this owner still holds; returns their ids (a row missing
    from the answer was swept back to pending meanwhile and may belong to another daemon now)."""
    if not ids:
        return set()
    session.execute(update(_OUTBOX).where(*_mine(ids, owner)).values(lease_until=now + timedelta(seconds=lease_seconds)))
    return set(session.execute(select(_OUTBOX.c.id).where(*_mine(ids, owner))).scalars())


def mark_sent(session: Session, ids: Sequence[int], owner: str, now: datetime) -> int:
    if not ids:
        return 0
    return session.execute(update(_OUTBOX).where(*_mine(ids, owner)).values(
        state=SENT, sent_at=now, updated_at=now, lease_owner=None, lease_until=None, last_error=None)).rowcount


def mark_failed(session: Session, errors: dict[int, str], owner: str, now: datetime) -> int:
    """Fail rows for a data reason (listed in failedOrders, isolated by splitting): never retried."""
    if not errors:
        return 0
    stmt = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("k_id"), _OUTBOX.c.lease_owner == owner,
                                  _OUTBOX.c.state == IN_FLIGHT)
            .values(state=FAILED, last_error=bindparam("k_error"), updated_at=now, lease_owner=None, lease_until=None))
    return session.execute(stmt, [{"k_id": i, "k_error": e[:4000]} for i, e in errors.items()]).rowcount


def mark_retry(session: Session, rows: Sequence[Claimed], owner: str, now: datetime, error: str, *,
               schedule: Sequence[float], max_attempts: int, retry_after: float | None = None) -> tuple[int, int]:
    """The target was busy or down: back to pending on the schedule, or failed after max_attempts."""
    give_up = [r.id for r in rows if r.attempts >= max_attempts]
    by_attempts: dict[int, list[int]] = {}
    for r in rows:
        if r.attempts < max_attempts:
            by_attempts.setdefault(r.attempts, []).append(r.id)
    for attempts, ids in by_attempts.items():
        session.execute(update(_OUTBOX).where(*_mine(ids, owner)).values(
            state=PENDING, next_attempt_at=next_attempt_at(attempts, now, schedule, retry_after),
            last_error=error[:4000], updated_at=now, lease_owner=None, lease_until=None))
    if give_up:
        session.execute(update(_OUTBOX).where(*_mine(give_up, owner)).values(
            state=FAILED, last_error=f"gave up after {max_attempts} attempts: {error}"[:4000], updated_at=now,
            lease_owner=None, lease_until=None))
    return len(rows) - len(give_up), len(give_up)


def release(session: Session, ids: Sequence[int], owner: str, now: datetime, error: str | None = None,
            *, delay: float = 0.0) -> int:
    """Give claimed rows back untouched (credentials refused, shutting down): the attempt is not counted."""
    if not ids:
        return 0
    values = dict(state=PENDING, attempts=_OUTBOX.c.attempts - 1, next_attempt_at=now + timedelta(seconds=delay),
                  updated_at=now, lease_owner=None, lease_until=None)
    if error is not None:
        values["last_error"] = error[:4000]
    return session.execute(update(_OUTBOX).where(*_mine(ids, owner)).values(**values)).rowcount


def sweep_expired(session: Session, now: datetime, max_attempts: int) -> int:
    """Rows whose lease ran out (their daemon died or hung) go back to pending, or fail after max_attempts.

    The batch may have reached the target before the daemon died: re-sending it is safe because an
    identical re-send is a no-op for the target.
    """
    expired = (_OUTBOX.c.state == IN_FLIGHT, _OUTBOX.c.lease_until < now)
    failed = session.execute(update(_OUTBOX).where(*expired, _OUTBOX.c.attempts >= max_attempts).values(
        state=FAILED, last_error=f"gave up after {max_attempts} attempts (the last lease expired)",
        updated_at=now, lease_owner=None, lease_until=None)).rowcount
    back = session.execute(update(_OUTBOX).where(*expired).values(
        state=PENDING, next_attempt_at=now, updated_at=now, lease_owner=None, lease_until=None)).rowcount
    return back + failed


def release_owners(session: Session, owners: Iterable[str], now: datetime) -> int:
    """Return the leases of owners known to be dead (a crashed daemon on this host) without waiting."""
    owners = list(owners)
    if not owners:
        return 0
    return session.execute(update(_OUTBOX).where(_OUTBOX.c.state == IN_FLIGHT, _OUTBOX.c.lease_owner.in_(owners))
                           .values(state=PENDING, next_attempt_at=now, updated_at=now,
                                   lease_owner=None, lease_until=None)).rowcount


def lease_owners(session: Session) -> list[str]:
    return [r[0] for r in session.execute(select(_OUTBOX.c.lease_owner).where(
        _OUTBOX.c.state == IN_FLIGHT, _OUTBOX.c.lease_owner.is_not(None)).distinct())]


def has_due(session: Session, now: datetime) -> bool:
    return session.execute(_due_ids_plain(now).limit(1)).first() is not None


def _due_ids_plain(now: datetime):
    return select(_OUTBOX.c.id).where(_OUTBOX.c.state == PENDING, _OUTBOX.c.next_attempt_at <= now)


# ---- repair and inspection -------------------------------------------------------------------

@dataclass
class RequeueResult:
    requeued: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)   # a newer version of the order exists: not re-sent
    not_failed: list[int] = field(default_factory=list)   # unknown ids or rows that are not failed


def requeue(session: Session, ids: Sequence[int] | None, now: datetime) -> RequeueResult:
    """Failed rows back to pending (after a fix). `ids=None` means every failed row."""
    q = select(_OUTBOX.c.id, _OUTBOX.c.external_order_id, _OUTBOX.c.state)
    q = q.where(_OUTBOX.c.state == FAILED) if ids is None else q.where(_OUTBOX.c.id.in_(list(ids)))
    found = {r[0]: r for r in session.execute(q)}
    result = RequeueResult(not_failed=[i for i in (ids or []) if i not in found or found[i][2] != FAILED])
    for row_id, oid, state in sorted(found.values()):
        if state != FAILED:
            continue
        newer = session.execute(select(_OUTBOX.c.id).where(
            _OUTBOX.c.external_order_id == oid, _OUTBOX.c.id > row_id, _OUTBOX.c.state != FAILED).limit(1)).first()
        (result.superseded if newer else result.requeued).append(row_id)
    for part in range(0, len(result.requeued), _CHUNK):
        session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(result.requeued[part:part + _CHUNK])).values(
            state=PENDING, attempts=0, next_attempt_at=now, updated_at=now, lease_owner=None, lease_until=None))
    return result


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[str, int]
    due: int
    oldest_pending: datetime | None
    next_retry: datetime | None
    last_error: str | None


def status(session: Session, now: datetime) -> OutboxStatus:
    counts = {s: 0 for s in (PENDING, IN_FLIGHT, SENT, FAILED)}
    for state, n in session.execute(select(_OUTBOX.c.state, func.count()).group_by(_OUTBOX.c.state)):
        counts[state] = n
    due = session.execute(select(func.count()).select_from(_due_ids_plain(now).subquery())).scalar_one()
    oldest = session.execute(select(func.min(_OUTBOX.c.created_at)).where(_OUTBOX.c.state.in_((PENDING, IN_FLIGHT)))).scalar()
    nxt = session.execute(select(func.min(_OUTBOX.c.next_attempt_at)).where(
        _OUTBOX.c.state == PENDING, _OUTBOX.c.next_attempt_at > now)).scalar()
    err = session.execute(select(_OUTBOX.c.last_error).where(_OUTBOX.c.last_error.is_not(None))
                          .order_by(_OUTBOX.c.updated_at.desc()).limit(1)).scalar()
    return OutboxStatus(counts, due, _aware(oldest), _aware(nxt), err)


def failed_rows(session: Session, limit: int | None = None):
    """Failed rows, oldest first: (id, shop, externalOrderId, attempts, last_error, updated_at)."""
    q = (select(_OUTBOX.c.id, _OUTBOX.c.shop, _OUTBOX.c.external_order_id, _OUTBOX.c.attempts,
                _OUTBOX.c.last_error, _OUTBOX.c.updated_at).where(_OUTBOX.c.state == FAILED).order_by(_OUTBOX.c.id))
    if limit:
        q = q.limit(limit)
    return session.execute(q)
