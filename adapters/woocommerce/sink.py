"""Where a translated WooCommerce order goes: a new outbox version, a `failed` row with its reason, or nowhere (ignored)."""
from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy.orm import Session

from adapters.woocommerce.translate import Translation
from connector.outbox import Version, enqueue, enqueue_failed

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

