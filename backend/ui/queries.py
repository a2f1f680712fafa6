"""The UI's reads: one query per list (keyset pages, newest first, joins instead of N+1)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from backend.reports import as_utc
from backend.storage import Contact, Event, StoredOrder
from backend.workflows import storage as wf

ORDERS, EVENTS, CONTACTS = StoredOrder.__table__, Event.__table__, Contact.__table__
PAGE = 50
CARD_ROWS = 20


@dataclass
class Page:
    """Rows of one page and the id to continue from (`before`), None on the last page."""

    rows: list
    next_before: int | None = None
    filters: dict = field(default_factory=dict)


def keyset(conn, q, id_col, before: int | None, limit: int = PAGE) -> Page:
    """Newest first, `limit` rows older than `before`; fetches one more to know if a next page exists."""
    if before is not None:
        q = q.where(id_col < before)
    rows = conn.execute(q.order_by(id_col.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)


# --- events ----------------------------------------------------------------------------------

def events(conn, type_: str | None, key: str | None, contact_id: int | None,
           since: datetime | None, until: datetime | None, before: int | None) -> Page:
    q = sa.select(EVENTS)
    if type_:
        q = q.where(EVENTS.c.type == type_)
    if key:
        q = q.where(EVENTS.c.key == key)
    if contact_id is not None:
        q = q.where(EVENTS.c.contact_id == contact_id)
    if since is None and until is None:
        return keyset(conn, q, EVENTS.c.id, before)
    if since is not None:
        q = q.where(EVENTS.c.created_at >= as_utc(since))
    if until is not None:
        q = q.where(EVENTS.c.created_at < as_utc(until))
    return keyset_by_time(conn, q, before)


def keyset_by_time(conn, q, before: int | None, limit: int = PAGE) -> Page:
    """A time range pages by (created_at, id) on the created_at index instead of walking ids."""
    c = EVENTS.c
    if before is not None:
        t = conn.execute(sa.select(c.created_at).where(c.id == before)).scalar()
        if t is not None:
            q = q.where(sa.or_(c.created_at < t, sa.and_(c.created_at == t, c.id < before)))
    rows = conn.execute(q.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)


def event_types(conn) -> list[str]:
    """The distinct event types, for the filter's choices (index-only on (type, id))."""
    return [r[0] for r in conn.execute(sa.select(EVENTS.c.type).distinct().order_by(EVENTS.c.type))]


# --- orders ----------------------------------------------------------------------------------

ORDER_COLUMNS = (ORDERS.c.id, ORDERS.c.external_order_id, ORDERS.c.status, ORDERS.c.total_cost,
                 ORDERS.c.currency, ORDERS.c.date, ORDERS.c.payload, ORDERS.c.contact_id)
CONTACT_COLUMNS = (CONTACTS.c.external_customer_id.label("c_ext"), CONTACTS.c.email.label("c_email"),
                   CONTACTS.c.phone.label("c_phone"), CONTACTS.c.first_name.label("c_first"),
                   CONTACTS.c.last_name.label("c_last"))


def orders_with_contacts():
    return (sa.select(*ORDER_COLUMNS, *CONTACT_COLUMNS)
            .select_from(ORDERS.outerjoin(CONTACTS, CONTACTS.c.id == ORDERS.c.contact_id)))


def orders(conn, external_id: str | None, status: str | None, currency: str | None,
           contact_id: int | None, before: int | None, limit: int = PAGE) -> Page:
    q = orders_with_contacts()
    if external_id:
        q = q.where(ORDERS.c.external_order_id == external_id)
    if status:
        q = q.where(ORDERS.c.status == status)
    if currency:
        q = q.where(ORDERS.c.currency == currency)
    if contact_id is not None:
        q = q.where(ORDERS.c.contact_id == contact_id)
    return keyset(conn, q, ORDERS.c.id, before, limit)


def order(conn, order_id: int):
    return conn.execute(orders_with_contacts().where(ORDERS.c.id == order_id)).first()


def pretty_json(text: str) -> str:
    """Indented JSON for display (the template escapes it)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        return text


# --- contacts --------------------------------------------------------------------------------

def contact(conn, contact_id: int):
    return conn.execute(sa.select(CONTACTS).where(CONTACTS.c.id == contact_id)).first()


def contact_orders(conn, contact_id: int) -> Page:
    return orders(conn, None, None, None, contact_id, None, CARD_ROWS)


def contact_events(conn, contact_id: int) -> Page:
    return keyset(conn, sa.select(EVENTS).where(EVENTS.c.contact_id == contact_id), EVENTS.c.id, None, CARD_ROWS)


def contact_messages(conn, contact_id: int) -> Page:
    m = wf.messages
    return keyset(conn, message_list_query().where(m.c.contact_id == contact_id), m.c.id, None, CARD_ROWS)


# --- workflows, runs, messages ---------------------------------------------------------------

def workflows(conn) -> list:
    d = wf.definitions
    return conn.execute(sa.select(d).where(d.c.deleted_at.is_(None)).order_by(d.c.id)).all()


def run_counts(conn, workflow_id: int | None = None) -> dict:
    """{workflow_id: {state: n}} in one grouped query."""
    r = wf.runs
    q = sa.select(r.c.workflow_id, r.c.state, sa.func.count()).group_by(r.c.workflow_id, r.c.state)
    if workflow_id is not None:
        q = q.where(r.c.workflow_id == workflow_id)
    out: dict = {}
    for wid, state, n in conn.execute(q):
        out.setdefault(wid, {})[state] = n
    return out


def workflow(conn, workflow_id: int):
    d = wf.definitions
    return conn.execute(sa.select(d).where(d.c.id == workflow_id)).first()


def runs(conn, workflow_id: int, state: str, before: int | None) -> Page:
    r = wf.runs
    q = (sa.select(r.c.id, r.c.key, r.c.contact_id, r.c.state, r.c.error, r.c.started_at, r.c.finished_at)
         .where(r.c.workflow_id == workflow_id, r.c.state == state))
    return keyset(conn, q, r.c.id, before)


def run(conn, run_id: int):
    r = wf.runs
    return conn.execute(sa.select(r).where(r.c.id == run_id)).first()


def run_steps(conn, run_id: int) -> list:
    s = wf.steps
    return conn.execute(sa.select(s).where(s.c.run_id == run_id).order_by(s.c.id)).all()


def message_list_query():
    m, d = wf.messages, wf.definitions
    return (sa.select(m.c.id, m.c.workflow_id, m.c.run_id, m.c.contact_id, m.c.channel, m.c.to_address,
                      m.c.subject, m.c.status, m.c.error, m.c.created_at, d.c.name.label("workflow_name"))
            .select_from(m.outerjoin(d, d.c.id == m.c.workflow_id)))


def messages(conn, workflow_id: int | None, contact_id: int | None, status: str | None,
             before: int | None) -> Page:
    m = wf.messages
    q = message_list_query()
    if workflow_id is not None:
        q = q.where(m.c.workflow_id == workflow_id)
    if contact_id is not None:
        q = q.where(m.c.contact_id == contact_id)
    if status:
        q = q.where(m.c.status == status)
    return keyset(conn, q, m.c.id, before)


def message(conn, message_id: int):
    m, d = wf.messages, wf.definitions
    return conn.execute(sa.select(m, d.c.name.label("workflow_name"))
                        .select_from(m.outerjoin(d, d.c.id == m.c.workflow_id))
                        .where(m.c.id == message_id)).first()


def saved_segments(conn, limit: int = 200) -> list:
    """The saved segments by name (a short list: people name them by hand)."""
    from backend.segments import SavedSegment
    t = SavedSegment.__table__
    return conn.execute(sa.select(t).order_by(t.c.name).limit(limit)).all()


def delivered_currencies(conn) -> list[str]:
    """Currencies of delivered orders, most used first (the revenue report's default)."""
    n = sa.func.count()
    q = (sa.select(ORDERS.c.currency, n).where(ORDERS.c.status == "DELIVERED")
         .group_by(ORDERS.c.currency).order_by(n.desc()))
    return [r[0] for r in conn.execute(q)]
