"""Translated Shopify orders into the outbox: sendable ones enqueued, unsendable ones kept as failed rows.

Webhooks, the poller and the backfill all end here, inside the caller's transaction.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.translate import Product, Translated, translate_checkout, translate_order
from connector.format import parse_date
from connector.outbox import Version, enqueue, enqueue_failed
from connector.store import FAILED, OutboxRow

log = logging.getLogger(__name__)
_OUTBOX = OutboxRow.__table__

# Orders sent although their money does not add up (DESIGN.md section 3: logged and counted).
STATS = {"unreconciled": 0}


@dataclass
class SinkResult:
    enqueued: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: int = 0
    skipped: int = 0       # completed checkouts (the order itself arrives through orders/*)


def updated_at(payload: Mapping):
    """The platform's `updated_at` of a payload, as an aware datetime (None when absent or bad)."""
    try:
        return parse_date(payload.get("updated_at"))
    except (ValueError, TypeError):
        return None


def _keep_failed(session: Session, shop: str, t: Translated, source: str) -> bool:
    """Record an unsendable order once per distinct payload (polls and retries repeat it)."""
    text = json.dumps(t.wire, sort_keys=True, default=str)
    seen = session.execute(select(_OUTBOX.c.id).where(
        _OUTBOX.c.shop == shop, _OUTBOX.c.external_order_id == t.external_order_id, _OUTBOX.c.state == FAILED,
        _OUTBOX.c.payload == text).limit(1)).first()
    if seen:
        return False
    enqueue_failed(session, shop, t.external_order_id, text, f"not sendable: {t.error}", source=source)
    return True


def store(session: Session, shop, items: Iterable[tuple[Translated | None, Mapping]], source: str) -> SinkResult:
    """Enqueue translated orders (each with the payload it came from); the caller commits."""
    result, versions = SinkResult(), []
    for t, payload in items:
        if t is None:
            result.skipped += 1
            continue
        if t.mismatch is not None:
            STATS["unreconciled"] += 1
            log.warning("shop %s order %s: totalCost differs from items + shipping (+ taxes) by %s; sent anyway",
                        shop.name, t.external_order_id, t.mismatch)
        if t.order is None:
            result.failed += int(_keep_failed(session, shop.name, t, source))
            continue
        versions.append(Version(shop.name, t.wire, source=source, source_updated_at=updated_at(payload)))
    if versions:
        r = enqueue(session, versions)
        result.enqueued, result.unchanged, result.stale = r.enqueued, r.unchanged, r.stale
    return result


def store_orders(session: Session, shop, payloads: Iterable[Mapping], source: str,
                 products: Mapping[str, Product] | None = None) -> SinkResult:
    return store(session, shop, ((translate_order(p, shop, products), p) for p in payloads), source)


def store_checkouts(session: Session, shop, payloads: Iterable[Mapping], source: str,
                    products: Mapping[str, Product] | None = None) -> SinkResult:
    return store(session, shop, ((translate_checkout(p, shop, products), p) for p in payloads), source)
