"""Segments from DELIVERED orders: contacts by average check, order count and last order date.

A segment is a set of ranges (`SegmentFilter`); it runs as a query (`find_contacts`) or is saved
by name (table `segments`) so that a workflow condition can test a contact against it
(`contact_matches`). Ranges are inclusive, except `lastOrderBefore`, which is exclusive.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Mapping, Optional

import sqlalchemy as sa
from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from backend import reports  # noqa: F401  (attaches the report indexes before the schema is created)
from backend.storage import Contact, StoredOrder, utcnow
from connector.errors import InvalidInput
from connector.format import parse_date
from connector.money import ISO_4217

DELIVERED = "DELIVERED"
orders = StoredOrder.__table__
contacts = Contact.__table__


class SavedSegment(SQLModel, table=True):
    """A named segment: its filter as JSON (the query's parameter names)."""

    __tablename__ = "segments"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    filters: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


TABLES = (SavedSegment,)


class InvalidSegment(InvalidInput):
    """A segment parameter the caller must correct; the message names it."""


# query parameter name -> (attribute, parser)
def _number(name: str, raw) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidSegment(f"{name}: expected a number, got {str(raw)[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise InvalidSegment(f"{name}: expected a non-negative number, got {str(raw)[:40]!r}")
    return value


def _count(name: str, raw) -> int:
    value = _number(name, raw)
    if value != int(value) or value > 2 ** 53:
        raise InvalidSegment(f"{name}: expected a whole number (at most 2^53), got {str(raw)[:40]!r}")
    return int(value)


def _date(name: str, raw) -> datetime:
    text = str(raw).strip()
    try:
        return parse_date(text, naive_as_utc=True)   # a bare date means midnight UTC
    except ValueError:
        raise InvalidSegment(f"{name}: expected an ISO 8601 date such as 2026-01-31 or "
                             f"2026-01-31T10:00:00+02:00, got {text[:40]!r}") from None


def _currency(name: str, raw) -> str:
    code = str(raw).strip().upper()
    if code not in ISO_4217:
        raise InvalidSegment(f"{name}: {str(raw)[:10]!r} is not an ISO 4217 currency code")
    return code


PARAMS = {
    "avgCheckMin": ("avg_check_min", _number), "avgCheckMax": ("avg_check_max", _number),
    "orderCountMin": ("order_count_min", _count), "orderCountMax": ("order_count_max", _count),
    "lastOrderAfter": ("last_order_after", _date), "lastOrderBefore": ("last_order_before", _date),
    "currency": ("currency", _currency),
}


@dataclass(frozen=True)
class SegmentFilter:
    """Ranges over a contact's DELIVERED orders (in `currency` when given, else all of them)."""

    avg_check_min: Optional[float] = None
    avg_check_max: Optional[float] = None
    order_count_min: Optional[int] = None
    order_count_max: Optional[int] = None
    last_order_after: Optional[datetime] = None
    last_order_before: Optional[datetime] = None
    currency: Optional[str] = None

    @classmethod
    def from_params(cls, params: Mapping, strict: bool = False) -> "SegmentFilter":
        """From query parameters or a saved JSON object; blanks are ignored. `strict` refuses
        unknown names (a saved segment must not silently lose a condition)."""
        if strict:
            unknown = sorted(set(params) - set(PARAMS))
            if unknown:
                raise InvalidSegment(f"{unknown[0]}: unknown filter (known: {', '.join(PARAMS)})")
        values = {}
        for name, (attr, parse) in PARAMS.items():
            raw = params.get(name)
            if raw is not None and str(raw).strip() != "":
                values[attr] = parse(name, raw)
        seg = cls(**values)
        seg.check_ranges()
        return seg

    def check_ranges(self) -> None:
        # an average check is money: averaging USD with JPY orders would put a contact in or out of the
        # segment by exchange-rate nonsense, so the filter names the currency it compares in
        if self.currency is None:
            for attr, name in (("avg_check_min", "avgCheckMin"), ("avg_check_max", "avgCheckMax")):
                if getattr(self, attr) is not None:
                    raise InvalidSegment(f"{name}: an average check is in one currency; add currency "
                                         "(e.g. currency=USD)")
        for low, high, name in (("avg_check_min", "avg_check_max", "avgCheck"),
                                ("order_count_min", "order_count_max", "orderCount"),
                                ("last_order_after", "last_order_before", "lastOrder")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise InvalidSegment(f"{name}: the lower bound is above the upper bound")

    def to_params(self) -> dict:
        """The parameter names and values, as saved and as put back into a URL."""
        out = {}
        for name, (attr, _) in PARAMS.items():
            value = getattr(self, attr)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _utc(moment: datetime) -> datetime:
    from backend.reports import as_utc
    return as_utc(moment)


def aggregate(seg: SegmentFilter):
    """SELECT contact, delivered order count, revenue and last order date, filtered by `seg`.

    Contacts with no delivered order take part (count 0), so `orderCountMax=0` finds them.
    """
    on = [orders.c.contact_id == contacts.c.id, orders.c.status == DELIVERED]
    if seg.currency:
        on.append(orders.c.currency == seg.currency)
    n = sa.func.count(orders.c.id)
    total = sa.func.coalesce(sa.func.sum(orders.c.total_cost), 0)
    last = sa.func.max(orders.c.date)
    q = (sa.select(contacts.c.id, contacts.c.external_customer_id, contacts.c.email, contacts.c.phone,
                   contacts.c.first_name, contacts.c.last_name,
                   n.label("order_count"), total.label("revenue"), last.label("last_order"), *_currencies())
         .select_from(contacts.outerjoin(orders, sa.and_(*on)))
         .where(contacts.c.erased_at.is_(None)).group_by(contacts.c.id))
    return q.having(sa.and_(sa.true(), *having(seg, n, total, last)))


def having(seg: SegmentFilter, n, total, last) -> list:
    conds = []
    if seg.order_count_min is not None:
        conds.append(n >= seg.order_count_min)
    if seg.order_count_max is not None:
        conds.append(n <= seg.order_count_max)
    # an average check exists only with at least one order; compare sums to avoid dividing
    if seg.avg_check_min is not None:
        conds += [n > 0, total >= n * seg.avg_check_min]
    if seg.avg_check_max is not None:
        conds += [n > 0, total <= n * seg.avg_check_max]
    if seg.last_order_after is not None:
        conds.append(last >= _utc(seg.last_order_after))
    if seg.last_order_before is not None:
        conds.append(last < _utc(seg.last_order_before))
    return conds


def _currencies() -> tuple:
    """How many currencies a contact's delivered orders are in, and one of them (the only one, when one)."""
    return (sa.func.count(sa.distinct(orders.c.currency)).label("currencies"),
            sa.func.max(orders.c.currency).label("some_currency"))


def contact_json(row, currency: Optional[str], person=None) -> dict:
    """A contact in a segment. `revenue` and `averageCheck` are in `currency`: the filter's, else the one
    currency of the contact's delivered orders; they are null when those orders are in several
    currencies and the filter names none (a sum across currencies means nothing)."""
    from backend.reports import iso_utc, money
    person = person or row
    n = row.order_count
    cur = currency or (row.some_currency if row.currencies == 1 else None)
    total = float(row.revenue or 0)
    mixed = n and cur is None
    return {"id": row.id, "externalCustomerId": person.external_customer_id, "email": person.email,
            "phone": person.phone, "firstName": person.first_name, "lastName": person.last_name,
            "orderCount": n, "currency": cur,
            "revenue": None if mixed else money(total, cur or "USD"),
            "averageCheck": money(total / n, cur) if n and not mixed else None,
            "lastOrderAt": iso_utc(row.last_order) if row.last_order else None}


def needs_an_order(seg: SegmentFilter) -> bool:
    bounds = (seg.avg_check_min, seg.avg_check_max, seg.last_order_after, seg.last_order_before)
    return any(v is not None for v in bounds) or (seg.order_count_min or 0) >= 1


def by_orders(seg: SegmentFilter, cursor: Optional[int]):
    """Contacts with delivered orders, grouped straight off the orders index in contact order, so a
    page stops as soon as it is full (no pass over every contact)."""
    n, total, last = sa.func.count(orders.c.id), sa.func.sum(orders.c.total_cost), sa.func.max(orders.c.date)
    q = (sa.select(orders.c.contact_id.label("id"), n.label("order_count"), total.label("revenue"),
                   last.label("last_order"), *_currencies())
         .where(orders.c.status == DELIVERED, orders.c.contact_id.is_not(None))
         .group_by(orders.c.contact_id).having(sa.and_(sa.true(), *having(seg, n, total, last))))
    if seg.currency:
        q = q.where(orders.c.currency == seg.currency)
    if cursor is not None:
        q = q.where(orders.c.contact_id > cursor)
    return q.order_by(orders.c.contact_id)


def people(conn, ids: list[int]) -> dict:
    """The contacts (not erased) with these ids, in one query."""
    if not ids:
        return {}
    q = sa.select(contacts).where(contacts.c.id.in_(ids), contacts.c.erased_at.is_(None))
    return {r.id: r for r in conn.execute(q)}


def page_by_orders(conn, seg: SegmentFilter, limit: int, cursor: Optional[int]):
    rows = conn.execute(by_orders(seg, cursor).limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    found = people(conn, [r.id for r in rows])
    # an erased contact leaves the page a row short; the cursor still moves on correctly
    out = [contact_json(r, seg.currency, found[r.id]) for r in rows if r.id in found]
    return out, (rows[-1].id if more else None)


def page_by_contacts(conn, seg: SegmentFilter, limit: int, cursor: Optional[int], ids=None):
    q = aggregate(seg)
    if cursor is not None:
        q = q.where(contacts.c.id > cursor)
    if ids is not None:
        q = q.where(contacts.c.id.in_(ids))
    rows = conn.execute(q.order_by(contacts.c.id).limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    return [contact_json(r, seg.currency) for r in rows], (rows[-1].id if more else None)


def page_within(conn, seg: SegmentFilter, limit: int, cursor: Optional[int], within: list[int]):
    """A page of the segment among the contacts `within` (ascending ids), checked 500 at a time."""
    todo = [i for i in within if cursor is None or i > cursor]
    out: list = []
    for start in range(0, len(todo), 500):
        chunk = todo[start:start + 500]
        found, _ = page_by_contacts(conn, seg, len(chunk), None, chunk)
        for c in found:
            if len(out) == limit:
                return out, out[-1]["id"]
            out.append(c)
    return out, None


def find_contacts(conn, seg: SegmentFilter, limit: int = 50, cursor: Optional[int] = None,
                  within: Optional[list[int]] = None) -> tuple[list[dict], Optional[int]]:
    """One page of the segment's contacts by id (keyset); returns (contacts, next cursor).

    `within` is an optional ascending list of contact ids to keep to (e.g. an RFM cell).
    """
    if within is not None:
        return page_within(conn, seg, limit, cursor, within)
    if needs_an_order(seg):
        return page_by_orders(conn, seg, limit, cursor)
    return page_by_contacts(conn, seg, limit, cursor)


def contact_matches(conn, seg: SegmentFilter, contact_id: int) -> bool:
    """Whether one contact is in the segment now (for workflow conditions)."""
    q = aggregate(seg).where(contacts.c.id == contact_id)
    return conn.execute(q).first() is not None


# --- saved segments --------------------------------------------------------------------------

def segment_json(row: SavedSegment) -> dict:
    from backend.reports import iso_utc
    return {"id": row.id, "name": row.name, "filters": json.loads(row.filters),
            "createdAt": iso_utc(row.created_at), "updatedAt": iso_utc(row.updated_at)}


def parse_saved(body) -> tuple[str, SegmentFilter]:
    """Validate a saved segment's JSON body: {"name": ..., "filters": {...}}."""
    if not isinstance(body, dict):
        raise InvalidSegment("body: expected a JSON object {\"name\": ..., \"filters\": {...}}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidSegment("name: expected a non-empty string of at most 200 characters")
    filters = body.get("filters", {})
    if not isinstance(filters, dict):
        raise InvalidSegment("filters: expected a JSON object of segment parameters")
    return name.strip(), SegmentFilter.from_params(filters, strict=True)


def saved_filter(seg_row) -> SegmentFilter:
    """The filter of a saved segment; one saved by an earlier release that no longer holds (an average
    check with no currency) is named, so the run or page that uses it says which segment to fix."""
    try:
        return SegmentFilter.from_params(json.loads(seg_row.filters), strict=True)
    except InvalidSegment as e:
        raise InvalidSegment(f"saved segment {seg_row.name!r} (id {seg_row.id}): {e}") from None


def load_saved(conn, ref):
    """A saved segment row by id (int or digits) or by name; works on a Connection or a Session."""
    t = SavedSegment.__table__
    by_id = isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit())
    return conn.execute(sa.select(t).where(t.c.id == int(ref) if by_id else t.c.name == ref)).first()


def contact_in_saved_segment(conn, ref, contact_id: int) -> bool:
    """For workflow conditions: is the contact in the saved segment `ref` (id or name)?

    Raises InvalidSegment when no such segment exists, so the run records a clear error.
    """
    row = load_saved(conn, ref)
    if row is None:
        raise InvalidSegment(f"segment: no saved segment {ref!r}")
    return contact_matches(conn, saved_filter(row), contact_id)


__all__ = ["SavedSegment", "SegmentFilter", "InvalidSegment", "find_contacts", "contact_matches",
           "contact_in_saved_segment", "parse_saved", "segment_json", "load_saved", "TABLES"]
