"""Translated Shopify orders into the outbox: sendable ones enqueued, unsendable ones kept as failed rows.

Webhooks, the poller and the backfill all end here, inside the caller's transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.translate import Product, Translated, earlier_checkout_keys, translate_checkout, translate_order, validate
from connector.format import parse_date
from connector.outbox import Version, enqueue, enqueue_failed
from connector.store import OrderHead

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
    items = []
    for p in payloads:
        t = translate_checkout(p, shop, products)
        items.append((t if t is None else _earlier_key(session, shop, p, t), p))
    return store(session, shop, items, source)


def _earlier_key(session: Session, shop, payload: Mapping, t: Translated) -> Translated:
    """A checkout sent before checkouts were keyed by id keeps its earlier key (its token, or its recovery
    URL's): under the new key it would be a second abandoned cart, and its buyer would get a second
    reminder. Only for checkouts with a version under an earlier key and none under the new one; once no
    checkout from before that upgrade is open (Shopify keeps them a few weeks), this finds nothing."""
    earlier = [f"{shop.order_id_prefix}checkout-{k}" for k in earlier_checkout_keys(payload)]
    earlier = [k for k in earlier if k != t.external_order_id]
    if not earlier:
        return t
    heads = OrderHead.__table__
    known = set(session.execute(select(heads.c.external_order_id).where(
        heads.c.shop == shop.name, heads.c.external_order_id.in_([t.external_order_id, *earlier]))).scalars())
    key = next((k for k in earlier if k in known), None)
    if key is None or t.external_order_id in known:
        return t
    return validate({**t.wire, "externalOrderId": key}, bool(payload.get("taxes_included")))
