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
    body = _json(delivery.body)
    error = rest_error(body)
    if error is not None:
        return _refused(error)
    payload = unwrap(body)
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


def rest_error(payload) -> tuple[str, str, object] | None:
    """(code, message, status) when a delivery carries a WordPress REST error instead of an order.

    WooCommerce builds an order webhook's body at delivery time with GET /wc/v3/orders/<id>, run as the
    webhook's owner, and delivers whatever comes back, a WP_Error included (woocommerce/woocommerce#37806).
    """
    if not isinstance(payload, dict) or "id" in payload:
        return None
    code, data = payload.get("code"), payload.get("data")
    if not isinstance(code, str) or "message" not in payload or not isinstance(data, dict):
        return None
    return code, str(payload.get("message") or ""), data.get("status")


def _refused(error: tuple[str, str, object]) -> str:
    code, message, status = error
    said = f'{code} ({status}): "{message}"'
    if code.endswith("_invalid_id"):
        # The order was deleted between the change and the delivery: there is nothing left to send.
        return f"ignored: the order no longer exists in WooCommerce ({said} when WooCommerce built this delivery)"
    if code == "woocommerce_rest_cannot_view":
        raise InvalidInput(
            f"WooCommerce delivered an error instead of the order, {said}: the webhook's owner (the WordPress "
            "user who created it) was deleted or may not read orders, and every order delivery of this webhook "
            "fails the same way. Log in as an administrator, delete the webhook in WooCommerce → Settings → "
            "Advanced → Webhooks and add it again; meanwhile the REST API poll (if configured) catches the "
            "orders up")
    raise InvalidInput(f"WooCommerce delivered an error instead of the order: {said}")


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
