"""Putting order versions into the outbox: deduplicated by content hash, older versions refused.

`enqueue` works inside the caller's transaction, so a poller can advance its cursor in the same
commit that enqueues what it read (DESIGN.md section 2: nothing is lost).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from connector.format import Order, canonical_json, content_hash, order_to_wire
from connector.store import FAILED, PENDING, OrderHead, OutboxRow, utcnow

_HEADS = OrderHead.__table__
_OUTBOX = OutboxRow.__table__
_CHUNK = 500   # rows per IN (...) look-up; well under SQLite's variable limit


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
    result = EnqueueResult()
    batch: list[Version] = []
    for v in versions:
        batch.append(v)
        if len(batch) >= _CHUNK:
            result += _enqueue_chunk(session, batch)
            batch = []
    if batch:
        result += _enqueue_chunk(session, batch)
    return result


def _enqueue_chunk(session: Session, batch: Sequence[Version]) -> EnqueueResult:
    keys = {(v.shop, str(v.wire["externalOrderId"])) for v in batch}
    heads = {}
    for shop in {k[0] for k in keys}:
        ids = [k[1] for k in keys if k[0] == shop]
        rows = session.execute(select(_HEADS.c.external_order_id, _HEADS.c.content_hash, _HEADS.c.source_updated_at)
                               .where(_HEADS.c.shop == shop, _HEADS.c.external_order_id.in_(ids)))
        heads.update({(shop, r[0]): (r[1], _aware(r[2]), True) for r in rows})
    result, now, new_heads = EnqueueResult(), utcnow(), {}
    for v in batch:
        key = (v.shop, str(v.wire["externalOrderId"]))
        h = content_hash(v.wire)
        old = new_heads.get(key) or heads.get(key)
        if old and old[0] == h:
            result.unchanged += 1
            continue
        if old and old[1] and v.source_updated_at and _aware(v.source_updated_at) < old[1]:
            result.stale += 1
            continue
        new_id = session.execute(insert(_OUTBOX).values(
            shop=v.shop, external_order_id=key[1], payload=canonical_json(v.wire), content_hash=h,
            source=v.source, state=PENDING, attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
        )).inserted_primary_key[0]
        result.enqueued += 1
        result.ids.append(new_id)
        new_heads[key] = (h, _aware(v.source_updated_at) or (old[1] if old else None), new_id)
    _write_heads(session, heads, new_heads, now)
    return result


def _write_heads(session: Session, heads: dict, new_heads: dict, now: datetime) -> None:
    ins, upd = [], []
    for (shop, oid), (h, src, outbox_id) in new_heads.items():
        row = {"k_shop": shop, "k_oid": oid, "content_hash": h, "source_updated_at": src, "outbox_id": outbox_id, "updated_at": now}
        (upd if (shop, oid) in heads else ins).append(row)
    if ins:
        session.execute(insert(_HEADS), [{"shop": r.pop("k_shop"), "external_order_id": r.pop("k_oid"), **r} for r in ins])
    if upd:
        session.execute(update(_HEADS).where(_HEADS.c.shop == bindparam("k_shop"),
                                             _HEADS.c.external_order_id == bindparam("k_oid")), upd)


def enqueue_failed(session: Session, shop: str, external_order_id: str, payload, error: str, *, source: str = "") -> int:
    """Keep an order that translated but cannot be sent as a `failed` row with its reason."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    now = utcnow()
    return session.execute(insert(_OUTBOX).values(
        shop=shop, external_order_id=str(external_order_id), payload=text, content_hash="", source=source,
        state=FAILED, attempts=0, next_attempt_at=now, last_error=error, created_at=now, updated_at=now,
    )).inserted_primary_key[0]
