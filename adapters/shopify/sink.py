"""Translated Shopify orders into the outbox: sendable ones enqueued, unsendable ones kept as failed rows.

Webhooks, the poller and the backfill all end here, inside the caller's transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping

from sqlalchemy.orm import Session

from adapters.shopify.translate import Product, Translated, earlier_checkout_keys, translate_checkout, translate_order, validate
from connector.format import parse_date
from connector.outbox import Version, enqueue, enqueue_failed, known_orders

log = logging.getLogger(__name__)

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
            result.failed += enqueue_failed(session, shop.name, t.external_order_id, t.wire,
                                            f"not sendable: {t.error}", source=source) is not None
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
    items = [(translate_checkout(p, shop, products), p) for p in payloads]
    return store(session, shop, _earlier_keys(session, shop, items), source)


def _earlier_keys(session: Session, shop, items: list[tuple[Translated | None, Mapping]]) -> list:
    """A checkout sent before checkouts were keyed by id keeps its earlier key (its token, or its recovery
    URL's): under the new key it would be a second abandoned cart, and its buyer would get a second
    reminder. Only for checkouts with a version under an earlier key and none under the new one; once no
    checkout from before that upgrade is open (Shopify keeps them a few weeks), this finds nothing.
    One look-up for the page."""
    earlier = {id(t): [k for k in (f"{shop.order_id_prefix}checkout-{e}" for e in earlier_checkout_keys(p))
                       if k != t.external_order_id] for t, p in items if t is not None}
    wanted = [k for t, _ in items if t is not None and earlier[id(t)] for k in (t.external_order_id, *earlier[id(t)])]
    if not wanted:
        return items
    known = known_orders(session, shop.name, wanted)
    out = []
    for t, p in items:
        key = None if t is None or t.external_order_id in known else next(
            (k for k in earlier[id(t)] if k in known), None)
        out.append((t if key is None else validate({**t.wire, "externalOrderId": key}, bool(p.get("taxes_included"))), p))
    return out
