"""Where a translated WooCommerce order goes: a new outbox version, a `failed` row with its reason, or nowhere (ignored)."""
from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.woocommerce.translate import Translation
from connector.outbox import Version, enqueue, enqueue_failed
from connector.store import OrderHead

log = logging.getLogger("adapters.woocommerce")
# Orders sent although their money does not add up (DESIGN.md section 3: "logged and counted").
COUNTS: Counter = Counter()


def store(session: Session, shop: str, t: Translation, source: str) -> tuple[int, str | None]:
    """Put one translation in the outbox (the caller commits).

    Returns how many versions were enqueued (0 or 1) and, when it was skipped on purpose, why.
    """
    for w in t.warnings:
        COUNTS["warnings"] += 1
        log.warning("shop %s order %s: %s", shop, t.external_order_id, w)
    if t.ignored:
        return 0, f"ignored: order {t.external_order_id}: {t.ignored}"
    if t.error:
        _fail_once(session, shop, t, source)
        return 0, None
    result = enqueue(session, [Version(shop, t.wire, source=source, source_updated_at=t.updated_at)])
    COUNTS["enqueued"] += result.enqueued
    return result.enqueued, None


def store_untranslatable(session: Session, shop: str, raw, error: str, source: str) -> None:
    """An order the API returned that is not an order at all: kept as a failed row with the raw JSON."""
    oid = str(raw.get("id")) if isinstance(raw, dict) else "?"
    _fail_once(session, shop, Translation(oid, wire=raw, error=error), source)


def _fail_once(session: Session, shop: str, t: Translation, source: str) -> None:
    if enqueue_failed(session, shop, t.external_order_id, t.wire, t.error, source=source) is not None:
        COUNTS["failed"] += 1
        log.warning("shop %s order %s cannot be sent: %s", shop, t.external_order_id, t.error)


def known(session: Session, shop: str, external_order_ids: list[str]) -> set[str]:
    """Which of these orders have had a version enqueued (sent or on its way)."""
    heads = OrderHead.__table__
    found: set[str] = set()
    for start in range(0, len(external_order_ids), 500):
        chunk = external_order_ids[start:start + 500]
        found.update(session.execute(select(heads.c.external_order_id).where(
            heads.c.shop == shop, heads.c.external_order_id.in_(chunk))).scalars())
    return found
