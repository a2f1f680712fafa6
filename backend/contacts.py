"""Contact matching (bulk, per request) and the contact's personal data: match, enrich, erase.

Rules, as Yespo documents them (reference/yespo-api.md §3.3), plus our choices:
- a known `externalCustomerId` wins;
- otherwise email (case-insensitive), then phone (digits); an order that brings a new
  `externalCustomerId` only joins a contact found that way if that contact has no
  `externalCustomerId` of its own (two different customer ids are two people), and gives it its id;
- otherwise a new contact. The order → contact link is sticky (decided in intake).
A matched contact gains the identifiers and names it lacked; nothing it has is overwritten.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from backend.db import insert_many, select_in
from backend.storage import Contact
from connector import database
from connector.format import Order

T = Contact.__table__
_PERSONAL = ("email", "email_lc", "phone", "first_name", "last_name")
_COLUMNS = ("id", "external_customer_id", *_PERSONAL)   # ContactRow's fields, in its order


@dataclass(eq=False)
class ContactRow:
    """A contact as one request sees it; `id` is None until a new contact is inserted."""

    id: int | None = None
    external_customer_id: str | None = None
    email: str | None = None
    email_lc: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    loaded: bool = True        # False: a linked contact we must not touch (erased)
    dirty: bool = False

    def fill_from(self, order: Order) -> None:
        """Take the identifiers and names this contact lacks from `order`."""
        if not self.loaded:
            return
        for attr, value in (("email", order.email), ("phone", order.phone),
                            ("first_name", order.firstName), ("last_name", order.lastName)):
            if value and getattr(self, attr) is None:
                setattr(self, attr, value)
                self.dirty = True
        if self.email and self.email_lc is None:
            self.email_lc = self.email.lower()

    def values(self) -> dict:
        return {"external_customer_id": self.external_customer_id, **{k: getattr(self, k) for k in _PERSONAL}}


class ContactBook:
    """The contacts one request can match, fetched in bulk, and those it creates."""

    def __init__(self) -> None:
        self.by_id: dict[int, ContactRow] = {}
        self.by_ext: dict[str, ContactRow] = {}
        self.by_email: dict[str, ContactRow] = {}
        self.by_phone: dict[str, ContactRow] = {}
        self.new: list[ContactRow] = []

    @staticmethod
    def lock_identifiers(conn: Connection, orders: list[Order]) -> None:
        """PostgreSQL: hold, until the transaction ends, a lock per customer id, email and phone these orders
        carry (in one order: no deadlock), so two workers never both create a contact for one person.
        SQLite has one writer at a time already."""
        database.advisory_locks(conn, [*(f"x:{o.externalCustomerId}" for o in orders if o.externalCustomerId),
                                       *(f"e:{o.email.lower()}" for o in orders if o.email),
                                       *(f"p:{o.phone}" for o in orders if o.phone)], space=0)

    def load(self, conn: Connection, orders: list[Order], ids: set[int]) -> None:
        """Fetch the contacts `orders` may match, and those with `ids` (linked to existing orders).

        One query per identifier kind (an OR of the IN lists is ~4x slower on SQLite), and email
        and phone only for orders whose externalCustomerId is not known: that one wins anyway.
        """
        rows = {r[0]: r for r in self._fetch(conn, "id", ids)}
        exts = {o.externalCustomerId for o in orders if o.externalCustomerId}
        rows.update((r[0], r) for r in self._fetch(conn, "external_customer_id", exts))
        known = {r[1] for r in rows.values() if r[1]}
        rest = [o for o in orders if not o.externalCustomerId or o.externalCustomerId not in known]
        rows.update((r[0], r) for r in self._fetch(conn, "email_lc", {o.email.lower() for o in rest if o.email}))
        rows.update((r[0], r) for r in self._fetch(conn, "phone", {o.phone for o in rest if o.phone}))
        for i in sorted(rows):   # the oldest contact wins a shared email or phone
            self._index(ContactRow(*rows[i]))

    @staticmethod
    def _fetch(conn: Connection, key: str, values: set) -> list:
        """(id, external_customer_id, *_PERSONAL) of the live contacts whose `key` is in `values`."""
        return select_in(conn, T, _COLUMNS, key, values, where="erased_at IS NULL")

    def _index(self, c: ContactRow) -> None:
        if c.id is not None:
            self.by_id[c.id] = c
        if c.external_customer_id:
            self.by_ext.setdefault(c.external_customer_id, c)
        if c.email_lc:
            self.by_email.setdefault(c.email_lc, c)
        if c.phone:
            self.by_phone.setdefault(c.phone, c)

    def linked(self, contact_id: int) -> ContactRow:
        """The contact an existing order is linked to (a stub when erased or gone)."""
        return self.by_id.get(contact_id) or ContactRow(id=contact_id, loaded=False)

    def match(self, order: Order) -> ContactRow:
        ext = order.externalCustomerId
        c = self.by_ext.get(ext) if ext else None
        if c is None:
            c = self._by_email_or_phone(order)
            if c is not None and ext:
                if c.external_customer_id is not None:
                    c = None
                else:
                    c.external_customer_id, c.dirty = ext, True
        if c is None:
            c = ContactRow(external_customer_id=ext)
            self.new.append(c)
        c.fill_from(order)
        self._index(c)
        return c

    def enrich(self, c: ContactRow, order: Order) -> None:
        """A linked contact takes what a new version of its order adds (an email, a phone), and is found by
        it at once: a later order of the same request with only that email matches it, as it would in
        the next request."""
        c.fill_from(order)
        self._index(c)

    def _by_email_or_phone(self, order: Order) -> ContactRow | None:
        if order.email and (c := self.by_email.get(order.email.lower())):
            return c
        if order.phone:
            return self.by_phone.get(order.phone)
        return None

    def write(self, conn: Connection, now: datetime) -> None:
        """Insert the new contacts (their ids come back in order) and update the enriched ones."""
        if self.new:
            rows = [c.values() for c in self.new]
            for c, i in zip(self.new, insert_many(conn, T, rows, {"created_at": now, "updated_at": now})):
                c.id, c.dirty = i, False
        changed = sorted((c for c in self.by_id.values() if c.dirty), key=lambda c: c.id)   # one lock order
        if changed:
            # Only what the row still lacks is written (nothing a contact has is overwritten): a request that
            # added the phone meanwhile keeps it while this one adds the email.
            stmt = update(T).where(T.c.id == bindparam("b_id")).values(
                {**{k: func.coalesce(T.c[k], bindparam(k)) for k in ("external_customer_id", *_PERSONAL)},
                 "updated_at": bindparam("updated_at")})
            conn.execute(stmt, [{**c.values(), "b_id": c.id, "updated_at": now} for c in changed])


def find_by_external_id(conn: Connection, external_customer_id: str):
    return conn.execute(select(T).where(T.c.external_customer_id == external_customer_id)).first()


def get(conn: Connection, contact_id: int):
    return conn.execute(select(T).where(T.c.id == contact_id)).first()


def erase_personal(conn: Connection, contact_id: int, now: datetime) -> None:
    """Blank every identifier and name of a contact, keeping the row (its orders still count)."""
    conn.execute(update(T).where(T.c.id == contact_id).values(
        external_customer_id=None, **dict.fromkeys(_PERSONAL), erased_at=now, updated_at=now))
