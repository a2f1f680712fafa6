"""Order intake: validate each order, match its contact, upsert it and log an `order<STATUS>` event.

One request is one transaction: the orders and contacts it touches are fetched in bulk, decided
in memory (in request order, so two versions of one order apply in turn), then written with
executemany. An order identical to the stored one (same content hash) is acknowledged and
neither written nor logged: that makes retries after a timeout safe.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from backend.contacts import ContactBook, ContactRow
from backend.db import insert_many, insert_rows, select_in, write_transaction
from backend.errors import ApiError
from backend.storage import Event, StoredOrder
from connector.format import MAX_ORDERS_PER_REQUEST, InvalidOrder, Order, canonical_json, order_to_wire, parse_order, utf8

log = logging.getLogger(__name__)
ORDERS = StoredOrder.__table__
EVENTS = Event.__table__
RETRIES = 3   # a concurrent writer inserting the same new order or contact (PostgreSQL) → redo
_RETRY_SQLSTATES = ("40P01", "40001")     # deadlock detected, serialization failure


# ---- the request body ----------------------------------------------------------------------

def _no_constants(name: str):
    # Python's parser accepts NaN and Infinity; JSON does not, and echoing them back in
    # failedOrders would hand strict clients a body they cannot parse.
    raise ValueError(f"{name} is not a JSON number")


def _number(text: str) -> float | Decimal:
    # 1e400 is a JSON number that no float holds: as a float it would be echoed back as Infinity. Kept
    # exact, validation refuses it as an amount too large, and the echo writes it as it came. A number
    # written with more digits than a double keeps (1.0049999999999999 is the double 1.005) is kept as
    # written too, so it rounds to cents as the connector rounds it (1.00), not as its double (1.01).
    if len(text) > 15:
        return Decimal(text)
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


def parse_body(raw: bytes) -> list:
    """The `orders` list of a request body, or a 400 that says what is wrong with the body."""
    try:
        body = json.loads(raw, parse_constant=_no_constants, parse_float=_number)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "the body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object: {"orders": [...]}')
    orders = body.get("orders")
    if not isinstance(orders, list):
        raise ApiError(400, 'the body has no "orders" list')
    if len(orders) > MAX_ORDERS_PER_REQUEST:
        raise ApiError(400, f"{len(orders)} orders in one request; the limit is {MAX_ORDERS_PER_REQUEST}")
    return orders


# ---- validation (outside the transaction) --------------------------------------------------

@dataclass(eq=False)
class Version:
    """One valid order as received: the domain order and its canonical wire text."""

    order: Order
    payload: str
    hash: str


def canonical(wire: dict) -> tuple[str, str]:
    """The stored text of a wire order and its content hash (= connector.format.content_hash)."""
    payload = canonical_json(wire)
    return payload, hashlib.sha256(utf8(payload)).hexdigest()


def validate(raw_orders: list) -> tuple[list[Version], list[dict]]:
    """Split a request into valid versions and `failedOrders` entries (the order as sent + why)."""
    ok, failed = [], []
    for raw in raw_orders:
        try:
            order = parse_order(raw, naive_dates_as_utc=True)
            ok.append(Version(order, *canonical(order_to_wire(order))))
        except InvalidOrder as e:
            failed.append({"order": raw, "error": e.message})
    return ok, failed


# ---- the transaction -----------------------------------------------------------------------

@dataclass(eq=False)
class OrderState:
    """An order as the request leaves it: the stored row, then each accepted version on top."""

    id: int | None
    contact: ContactRow | None
    hash: str
    version: Version | None = None
    events: list[Version] = field(default_factory=list)


@dataclass
class Outcome:
    accepted: int = 0
    unchanged: int = 0
    events: int = 0


def ingest(engine: Engine, versions: list[Version], now: datetime | None = None) -> Outcome:
    """Store the versions in one transaction; redo it when a concurrent writer won a unique key."""
    now = now or datetime.now(timezone.utc)
    for attempt in range(RETRIES):
        try:
            with write_transaction(engine) as conn:
                return _apply(conn, versions, now)
        except (IntegrityError, OperationalError) as e:
            # a concurrent writer won a unique key, or PostgreSQL chose this transaction to end a deadlock
            retry = isinstance(e, IntegrityError) or getattr(e.orig, "sqlstate", None) in _RETRY_SQLSTATES
            if not retry or attempt == RETRIES - 1:
                raise
            log.info("intake: %s with a concurrent request; retrying the request", type(e).__name__)
    raise AssertionError("unreachable")


def _apply(conn: Connection, versions: list[Version], now: datetime) -> Outcome:
    states = _load_orders(conn, {v.order.externalOrderId for v in versions})
    book = ContactBook()
    book.lock_identifiers(conn, [v.order for v in versions])
    book.load(conn, [v.order for v in versions], {s.contact.id for s in states.values() if s.contact})
    for s in states.values():
        if s.contact is not None:
            s.contact = book.linked(s.contact.id)
    out = Outcome()
    for v in versions:
        _decide(states, book, v, out)
    book.write(conn, now)
    _write_orders(conn, [s for s in states.values() if s.version], now)
    out.events = _write_events(conn, states, versions, now)
    return out


def _load_orders(conn: Connection, ext_ids: set[str]) -> dict[str, OrderState]:
    # for_update (PostgreSQL): concurrent requests lock shared orders in one order (no deadlock)
    rows = select_in(conn, ORDERS, ("id", "external_order_id", "contact_id", "content_hash"), "external_order_id",
                     ext_ids, order_by="id", for_update=True)
    return {ext: OrderState(i, ContactRow(id=cid, loaded=False) if cid else None, h) for i, ext, cid, h in rows}


def _decide(states: dict[str, OrderState], book: ContactBook, v: Version, out: Outcome) -> None:
    ext = v.order.externalOrderId
    s = states.get(ext)
    if s is not None and s.hash == v.hash:
        if s.contact is None or not s.contact.loaded:
            # Its contact was deleted (DELETE /api/v1/contact): it is matched afresh, as a changed version
            # would be, but an identical re-send is still no news: no event.
            s.contact, s.version = book.match(v.order), v
        out.unchanged += 1
        return
    if s is None:
        s = states[ext] = OrderState(id=None, contact=None, hash=v.hash)
    if s.contact is None or not s.contact.loaded:
        # No contact, or an erased one (anonymous, kept for the counts): the identifiers this version brings
        # are matched afresh. Linked to the erased contact they would name it again, out of reach of any
        # further erase (it has no externalCustomerId left), and its workflows would write to it.
        s.contact = book.match(v.order)
    else:
        book.enrich(s.contact, v.order)
    s.hash, s.version = v.hash, v
    s.events.append(v)
    out.accepted += 1


def _order_values(s: OrderState) -> dict[str, Any]:
    o = s.version.order
    return {"contact_id": s.contact.id, "status": o.status, "total_cost": float(o.totalCost), "currency": o.currency,
            "date": o.date, "content_hash": s.hash, "payload": s.version.payload}


def _write_orders(conn: Connection, changed: list[OrderState], now: datetime) -> None:
    # new orders in one order of keys: two requests inserting X and Y, and Y and X, would wait on each
    # other's unique-key entries (a deadlock on PostgreSQL)
    new = sorted((s for s in changed if s.id is None), key=lambda s: s.version.order.externalOrderId)
    old = [s for s in changed if s.id is not None]
    if new:
        rows = [{**_order_values(s), "external_order_id": s.version.order.externalOrderId} for s in new]
        for s, i in zip(new, insert_many(conn, ORDERS, rows, {"created_at": now, "updated_at": now})):
            s.id = i
    if old:
        cols = ("contact_id", "status", "total_cost", "currency", "date", "content_hash", "payload", "updated_at")
        stmt = update(ORDERS).where(ORDERS.c.id == bindparam("b_id")).values({k: bindparam(k) for k in cols})
        conn.execute(stmt, [{**_order_values(s), "b_id": s.id, "updated_at": now} for s in old])


def event_params(order: Order, order_id: int, contact_id: int | None) -> dict[str, Any]:
    """An order event's params, under the names Yespo's templates use (reference §3.2)."""
    p: dict[str, Any] = {"eventKey": order.externalOrderId, "orderId": order_id, "contactId": contact_id}
    if order.externalCustomerId:
        p["externalCustomerId"] = order.externalCustomerId
    if order.email:
        p["email"] = p["EmailAddress"] = order.email
    if order.phone:
        p["phone"] = p["SMS"] = order.phone
    return p


def _write_events(conn: Connection, states: dict[str, OrderState], versions: list[Version], now: datetime) -> int:
    rows = []
    for v in versions:   # request order, so the event history reads as the orders came
        s = states[v.order.externalOrderId]
        if v in s.events:
            o = v.order
            rows.append({"type": "order" + o.status, "key": o.externalOrderId, "contact_id": s.contact.id,
                         "order_id": s.id, "params": json.dumps(event_params(o, s.id, s.contact.id))})
    insert_rows(conn, EVENTS, rows, {"created_at": now})
    return len(rows)
