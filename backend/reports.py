"""Reports from DELIVERED orders: the RFM grid and revenue attributed to workflow messages.

Every function takes an open SQLAlchemy connection or session and the moment to report at
(`now` / `at`), so a report is reproducible. Orders count by their own `date`, never by the
time they arrived. Money is summed per currency and rounded to its minor unit.
"""
from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import OrderedDict, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import sqlalchemy as sa

from backend.storage import Contact, Event, StoredOrder
from backend.workflows import storage as wf_storage
from connector.money import round_money

DELIVERED = "DELIVERED"
MONTH = timedelta(days=30)        # DESIGN.md section 5: months are 30 days

# (label, lower edge of recency). A bin holds its lower edge: exactly 2 weeks is "2w-1m".
RECENCY_BINS = (("<2w", timedelta(0)), ("2w-1m", timedelta(days=14)), ("1m-3m", MONTH),
                ("3m-6m", 3 * MONTH), ("6m-12m", 6 * MONTH), (">12m", 12 * MONTH))
# (label, lowest number of delivered orders). Contacts with none are counted in `noPurchase`.
FREQUENCY_BINS = (("1", 1), ("2", 2), ("3-4", 3), ("5+", 5))

DEFAULT_WINDOW_DAYS = 5
# Message states that mean "it reached the channel" (`stored`: the store channel keeps it);
# a failed send, or one still in the air, earns no revenue.
SENT_MESSAGE_STATES = ("sent", "stored")

orders = StoredOrder.__table__
contacts = Contact.__table__


def messages_table() -> sa.Table:
    """The workflow engine's messages table (backend/workflows/storage.py)."""
    from backend.workflows.storage import messages
    return messages


def workflows_table() -> sa.Table:
    from backend.workflows.storage import definitions
    return definitions


# --- small helpers ---------------------------------------------------------------------------

def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime, as the date columns take them (a naive value is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """A stored (naive UTC) or aware datetime as ISO 8601 with the UTC offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def money(total, currency: str) -> float:
    """A SQL sum as a JSON number rounded to the currency's minor unit."""
    return float(round_money(Decimal(repr(float(total or 0))), currency))


def money_map(sums: dict[str, float]) -> dict[str, float]:
    return {cur: money(v, cur) for cur, v in sorted(sums.items())}


def average_map(sums: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    return {cur: money(sums[cur] / counts[cur], cur) for cur in sorted(sums) if counts.get(cur)}


def dialect_of(conn) -> str:
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    return bind.dialect.name


def delivered_until(at: datetime):
    """The WHERE clause of every report: delivered orders dated no later than `at`."""
    return sa.and_(orders.c.status == DELIVERED, orders.c.date <= at)


# --- RFM -------------------------------------------------------------------------------------

# Index-only scans for the reports and segments: delivered orders by contact, with the columns
# they sum and compare (the orders rows themselves are wide: they hold the JSON payload).
# The UI's and the revenue report's reads of the workflow engine's tables get theirs here too.
REPORT_INDEXES = (
    sa.Index("ix_orders_report", orders.c.status, orders.c.contact_id, orders.c.currency,
             orders.c.date, orders.c.total_cost),
    sa.Index("ix_messages_attribution", wf_storage.messages.c.contact_id, wf_storage.messages.c.created_at,
             wf_storage.messages.c.status, wf_storage.messages.c.workflow_id),
    # the revenue report's messages-sent count per workflow: by workflow and status, not every message row
    sa.Index("ix_messages_sent_count", wf_storage.messages.c.workflow_id, wf_storage.messages.c.status,
             wf_storage.messages.c.created_at),
    sa.Index("ix_workflow_runs_tab", wf_storage.runs.c.workflow_id, wf_storage.runs.c.state, wf_storage.runs.c.id),
    # data_version's count of erased contacts: a range of this index, not a pass over every contact
    sa.Index("ix_contacts_erased", contacts.c.erased_at),
)


def comparable(moment: datetime, sample):
    """`moment` in the form a stored date comes back in: SQLite's text, or the driver's datetime."""
    if isinstance(sample, str):
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment if getattr(sample, "tzinfo", None) is not None else moment.replace(tzinfo=None)


# frequency index by order count (5 and more: the last bin)
_FREQ = [next(i for i, (_, low) in reversed(list(enumerate(FREQUENCY_BINS))) if n >= low) if n else 0
         for n in range(FREQUENCY_BINS[-1][1])]


class Binner:
    """Places a contact's (last order date, order count) in its RFM cell (recency, frequency) indexes."""

    def __init__(self, at: datetime, sample):
        # recency < edge ⇔ last > at - edge; ascending limits, so a bin holds its lower edge
        self.limits = [comparable(at - edge, sample) for _, edge in reversed(RECENCY_BINS[1:])]
        self.top = len(RECENCY_BINS) - 1

    def cell(self, last, n: int) -> tuple[int, int]:
        r = self.top - bisect_left(self.limits, last)
        return r, (_FREQ[n] if n < len(_FREQ) else len(FREQUENCY_BINS) - 1)


def recency_index(last, at: datetime):
    """SQL: the recency bin of a last-order date, the same edges as Binner (a bin holds its lower edge)."""
    return sa.case(*((last > at - edge, i - 1) for i, (_, edge) in enumerate(RECENCY_BINS) if i),
                   else_=len(RECENCY_BINS) - 1)


def frequency_index(n):
    """SQL: the frequency bin of an order count."""
    return sa.case(*((n >= low, i) for i, (_, low) in reversed(list(enumerate(FREQUENCY_BINS))) if i), else_=0)


def per_contact(at: datetime, *columns):
    """SELECT grouped by contact over the delivered orders up to `at`: an index-only pass over
    ix_orders_report, with the contact's RFM cell as columns `r` and `f`."""
    last, n = sa.func.max(orders.c.date), sa.func.count()
    return (sa.select(recency_index(last, at).label("r"), frequency_index(n).label("f"), *columns)
            .where(delivered_until(at), orders.c.contact_id.is_not(None))
            .group_by(orders.c.contact_id))


def delivered_currencies(conn) -> list[str]:
    """Every currency of a delivered order (index-only; a currency absent from a cell is skipped later)."""
    return list(conn.execute(sa.select(orders.c.currency).where(orders.c.status == DELIVERED).distinct()).scalars())


def _cell(at: datetime, recency: int, frequency: int):
    """SELECT the contact ids of one RFM cell."""
    cells = per_contact(as_utc(at), orders.c.contact_id.label("cid")).subquery("per_contact")
    return sa.select(cells.c.cid).where(cells.c.r == recency, cells.c.f == frequency)


def rfm_cell_members(conn, at: datetime, recency: int, frequency: int) -> list[int]:
    """The ids of the contacts in one RFM cell, ascending (the UI's "contacts of this cell")."""
    q = _cell(at, recency, frequency)
    return list(conn.execute(q.order_by(q.selected_columns.cid)).scalars())


def rfm_cell_erased(conn, at: datetime, recency: int, frequency: int) -> int:
    """How many contacts of one RFM cell are erased: the cell counts them (anonymous), lists cannot show them."""
    ids = _cell(at, recency, frequency).subquery("cell")
    return conn.execute(sa.select(sa.func.count()).select_from(contacts).join(ids, contacts.c.id == ids.c.cid)
                        .where(contacts.c.erased_at.is_not(None))).scalar_one()


def rfm_cells(conn, at: datetime) -> dict:
    """(recency, frequency) → [contacts, {currency: revenue}, {currency: orders}], binned in SQL:
    one grouped pass by contact, then by cell; Python only sees a few dozen rows."""
    currencies = delivered_currencies(conn)
    sums = []
    for k, cur in enumerate(currencies):
        is_cur = orders.c.currency == cur
        sums += [sa.func.sum(sa.case((is_cur, orders.c.total_cost))).label(f"s{k}"),
                 sa.func.sum(sa.case((is_cur, 1), else_=0)).label(f"n{k}")]
    pc = per_contact(at, *sums).subquery("per_contact")
    q = (sa.select(pc.c.r, pc.c.f, sa.func.count(),
                   *(sa.func.sum(pc.c[f"{x}{k}"]) for k in range(len(currencies)) for x in "sn"))
         .group_by(pc.c.r, pc.c.f))
    grid: dict = {}
    for r, f, contacts_n, *per_currency in conn.execute(q):
        revenue_of, orders_of = {}, {}
        for k, cur in enumerate(currencies):
            total, n = per_currency[2 * k], per_currency[2 * k + 1]
            if n:
                revenue_of[cur], orders_of[cur] = float(total or 0), int(n)   # PG sums ints as numeric
        grid[(r, f)] = [contacts_n, revenue_of, orders_of]
    return grid


def cell_json(r: int, f: int, acc: list | None) -> dict:
    contacts_n, sums, counts = acc or (0, {}, {})
    return {"recency": RECENCY_BINS[r][0], "frequency": FREQUENCY_BINS[f][0], "contacts": contacts_n,
            "revenue": money_map(sums), "averageCheck": average_map(sums, counts)}


def rfm(conn, at: datetime | None = None) -> dict:
    """The RFM grid at `at` (default now): contacts, revenue and average check per cell."""
    at = as_utc(at or datetime.now(timezone.utc))
    grid = rfm_cells(conn, at)
    # erased contacts stay (anonymous) so that counts do not change when a person is forgotten
    everyone = conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one()
    return {"at": iso_utc(at), "recencyBins": [b for b, _ in RECENCY_BINS],
            "frequencyBins": [b for b, _ in FREQUENCY_BINS],
            "cells": [cell_json(r, f, grid.get((r, f))) for f in range(len(FREQUENCY_BINS))
                      for r in range(len(RECENCY_BINS))],
            "noPurchase": everyone - sum(acc[0] for acc in grid.values())}


def rfm_cell_of(conn, contact_id: int, at: datetime | None = None) -> dict | None:
    """The RFM cell one contact sits in (None without a delivered order), for the contact card."""
    at = as_utc(at or datetime.now(timezone.utc))
    row = conn.execute(sa.select(sa.func.max(orders.c.date), sa.func.count())
                       .where(delivered_until(at), orders.c.contact_id == contact_id)).one()
    last, n = row
    if not n:
        return None
    r, f = Binner(at, last).cell(last, n)
    return {"recency": RECENCY_BINS[r][0], "frequency": FREQUENCY_BINS[f][0], "r": r, "f": f,
            "orders": n, "lastOrderAt": iso_utc(last)}


# --- revenue from workflows ------------------------------------------------------------------

def window_start(conn, order_date, window: timedelta):
    """SQL: the order's date minus the window, in the dialect's own date arithmetic."""
    if dialect_of(conn) == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime keeps milliseconds so the edge is inclusive.
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", order_date, f"-{int(window.total_seconds())} seconds")
    return order_date - sa.literal(window, sa.Interval())


def last_message_workflow(conn, window: timedelta):
    """Correlated subquery: the workflow of the last message sent to the order's contact within
    the window before the order's date (a sale is always credited to the last interaction)."""
    m = messages_table()
    return (sa.select(m.c.workflow_id)
            .where(m.c.contact_id == orders.c.contact_id, m.c.created_at <= orders.c.date,
                   m.c.created_at >= window_start(conn, orders.c.date, window),
                   m.c.status.in_(SENT_MESSAGE_STATES))
            .order_by(m.c.created_at.desc(), m.c.id.desc()).limit(1)
            .correlate(orders).scalar_subquery())


def day_of(conn, column):
    """SQL: the UTC calendar day of a stored date (PostgreSQL would use the session's time zone)."""
    if dialect_of(conn) == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", column))
    return sa.func.date(column)


def attributed_orders(conn, currency: str, window: timedelta, since=None, until=None):
    """Subquery: delivered orders in `currency` with the workflow they are credited to."""
    m = messages_table()
    wf = last_message_workflow(conn, window).label("workflow_id")
    q = (sa.select(orders.c.id, orders.c.date, orders.c.total_cost, wf)
         .where(orders.c.status == DELIVERED, orders.c.currency == currency,
                # only contacts ever messaged can be credited: skips most orders cheaply
                orders.c.contact_id.in_(sa.select(m.c.contact_id).distinct())))
    if since is not None:
        q = q.where(orders.c.date >= as_utc(since))
    if until is not None:
        q = q.where(orders.c.date <= as_utc(until))
    return q.subquery("att")


def revenue(conn, currency: str, window_days: float = DEFAULT_WINDOW_DAYS,
            since: datetime | None = None, until: datetime | None = None) -> dict:
    """Per workflow: messages sent, purchases credited, revenue and average check; plus a
    per-day series of credited revenue for the chart."""
    window = timedelta(days=window_days)
    att = attributed_orders(conn, currency, window, since, until)
    day = day_of(conn, att.c.date).label("day")
    rows = conn.execute(sa.select(att.c.workflow_id, day, sa.func.count(), sa.func.sum(att.c.total_cost))
                        .where(att.c.workflow_id.is_not(None)).group_by(att.c.workflow_id, day))
    per_wf: dict = defaultdict(lambda: [0, 0.0])
    per_day: dict = defaultdict(lambda: [0, 0.0])
    for wf_id, d, n, total in rows:
        per_wf[wf_id][0] += n
        per_wf[wf_id][1] += total or 0
        key = d if isinstance(d, str) else d.isoformat()
        per_day[key][0] += n
        per_day[key][1] += total or 0
    workflows = [workflow_line(wid, name, sent, per_wf.get(wid, (0, 0.0)), currency)
                 for wid, name, sent in workflow_message_counts(conn, since, until)]
    series = [{"date": d, "purchases": n, "revenue": money(t, currency)} for d, (n, t) in sorted(per_day.items())]
    return {"currency": currency, "windowDays": window_days, "workflows": workflows, "series": series}


def workflow_line(wid, name, sent: int, credited, currency: str) -> dict:
    purchases, total = credited
    return {"workflowId": wid, "name": name, "messages": sent, "purchases": purchases,
            "revenue": money(total, currency),
            "averageCheck": money(total / purchases, currency) if purchases else 0.0}


def workflow_message_counts(conn, since=None, until=None):
    """(workflow id, name, messages sent) for every workflow, those without messages included."""
    m, w = messages_table(), workflows_table()
    cond = [m.c.workflow_id == w.c.id, m.c.status.in_(SENT_MESSAGE_STATES)]
    if since is not None:
        cond.append(m.c.created_at >= as_utc(since))
    if until is not None:
        cond.append(m.c.created_at <= as_utc(until))
    sent = sa.func.count(m.c.id)
    q = (sa.select(w.c.id, w.c.name, sent)
         .select_from(w.outerjoin(m, sa.and_(*cond))).group_by(w.c.id, w.c.name)
         # a deleted workflow stays in the report while its messages do
         .having(sa.or_(sa.func.max(w.c.deleted_at).is_(None), sent > 0)).order_by(w.c.id))
    return list(conn.execute(q))


# --- reuse -----------------------------------------------------------------------------------

# Ids are handed out when a row is inserted, not when its transaction commits: on PostgreSQL two
# requests can commit out of order, and an event can appear below the highest id already seen. The
# events of this many ids below the top are counted too, which such a late commit changes.
RECENT_EVENT_IDS = 10_000


def data_version(conn) -> tuple:
    """What the reports read, in five index-only lookups: every accepted order version adds an event
    (the highest id, and how many events the last RECENT_EVENT_IDS ids hold), contacts come and go or are
    erased (an RFM cell's page says how many of its contacts are), workflows add messages. Equal versions
    → equal reports."""
    m, ev = messages_table(), Event.__table__
    top = conn.execute(sa.select(sa.func.max(ev.c.id))).scalar()
    recent = conn.execute(sa.select(sa.func.count()).select_from(ev).where(
        ev.c.id > (top or 0) - RECENT_EVENT_IDS)).scalar()
    erased = conn.execute(sa.select(sa.func.count()).select_from(contacts).where(contacts.c.erased_at.is_not(None))).scalar()
    return (top, recent, conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar(), erased,
            conn.execute(sa.select(sa.func.max(m.c.id))).scalar())


class ReportCache:
    """Finished reports, reused while `data_version` is unchanged, for `ttl` seconds at most
    (a message's status may change without a new row; "now" moves on)."""

    def __init__(self, ttl: float = 60.0, size: int = 64, clock=time.monotonic):
        self.ttl, self.size, self.clock = ttl, size, clock
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, version, compute):
        now = self.clock()
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None and hit[0] == version and now - hit[1] < self.ttl:
                return hit[2]
        value = compute()
        with self.lock:
            self.entries[key] = (version, now, value)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return value

