"""Processing of stored WooCommerce deliveries (called by the daemon's inbox job, one delivery at a time)."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.woocommerce import client, sink
from adapters.woocommerce.translate import options_of, translate, unwrap
from connector.errors import InvalidInput
from connector.outbox import Version, enqueue
from connector.store import OrderHead, OutboxRow

ORDER_TOPICS = ("order.created", "order.updated", "order.restored")


def process(session: Session, delivery, shop) -> str | None:
    """Translate one delivery into the outbox (the caller commits). None when done, else why it was ignored.

    Raises InvalidInput when the body is not JSON or not an order, so the delivery is marked failed
    and kept for a replay after a fix.
    """
    topic = (delivery.topic or "").strip().lower()
    source = f"webhook:{delivery.delivery_id}"
    if topic == "order.deleted":
        return cancel(session, shop, _json(delivery.body), source)
    if topic not in ORDER_TOPICS:
        return f"ignored: topic {topic or '(none)'!r} is not an order topic"
    payload = unwrap(_json(delivery.body))
    t = translate(payload, options_of(shop), client.products_for(shop, [payload]))
    return sink.store(session, shop.name, t, source)[1]


def cancel(session: Session, shop, payload, source: str) -> str | None:
    """order.deleted is a move to the trash and carries only {"id": N}: cancel the last version we sent."""
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
        raise InvalidInput('order.deleted: expected a body {"id": <order id>}')
    oid = f"{shop.order_id_prefix}{payload['id']}"
    wire = last_version(session, shop.name, oid)
    if wire is None:
        return f"ignored: order {oid} was deleted but never enqueued here"
    wire.update(status="CANCELLED", statusDescription="trash")
    # No source_updated_at: the trash time is unknown, and a later restore must not look stale.
    enqueue(session, [Version(shop.name, wire, source=source)])
    return None


def last_version(session: Session, shop: str, external_order_id: str) -> dict | None:
    """The wire form of the last version enqueued for an order, or None."""
    row = session.execute(
        select(OutboxRow.__table__.c.payload)
        .join(OrderHead.__table__, OrderHead.__table__.c.outbox_id == OutboxRow.__table__.c.id)
        .where(OrderHead.__table__.c.shop == shop, OrderHead.__table__.c.external_order_id == external_order_id)
    ).first()
    return json.loads(row[0]) if row else None


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"webhook body is not JSON: {e}") from None
