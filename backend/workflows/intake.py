"""Events in, runs out: read the events table after the stored cursor, stop the runs an event ends,
start the runs it triggers. The cursor row is locked for the whole batch, so with several workers
each event is handled exactly once, in id order. New runs are buffered and written with one
executemany per batch; the buffer is written first whenever an event could stop one of them.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection

from backend.storage import Event, StoredOrder
from backend.workflows import conditions
from backend.workflows import storage as t
from backend.workflows.model import Workflow, load_workflows, seconds, timer_due, type_matches, utc, variables
from connector.errors import InvalidInput

CURSOR = "events"
# PostgreSQL hands out ids before commit, so a lower id can become visible after a higher one.
# A missing id is waited for this long before it is taken for a rolled-back insert and skipped.
GAP_WAIT_SECONDS = 10.0

ev = Event.__table__
orders = StoredOrder.__table__
# The names an order event's params hold (backend.intake.event_params) and those variables() adds: a start
# condition that reads only these needs no order; any other name (totalCost, status, items, ...) is an order's.
PARAM_NAMES = frozenset(("eventKey", "orderId", "contactId", "externalCustomerId", "email", "EmailAddress",
                         "phone", "SMS", "key", "params"))
_r = t.runs.c
_SAME_KEY = select(_r.id).where(_r.workflow_id == bindparam("wf"), _r.key == bindparam("key")).limit(1)
_SAME_KEY_SINCE = (select(_r.id).where(_r.workflow_id == bindparam("wf"), _r.key == bindparam("key"),
                                       _r.started_at > bindparam("since")).limit(1))
_RUNNING_FOR_CONTACT = (select(_r.id).where(_r.workflow_id == bindparam("wf"), _r.contact_id == bindparam("contact"),
                                            _r.state == t.IN_PROGRESS).limit(1))
_INSERT_RUN = insert(t.runs).returning(_r.id, sort_by_parameter_order=True)

log = logging.getLogger(__name__)


def ensure_cursor(conn: Connection) -> None:
    """Create the cursor row if missing (call inside a write transaction)."""
    if conn.execute(select(t.cursor.c.name).where(t.cursor.c.name == CURSOR)).first() is None:
        conn.execute(insert(t.cursor).values(name=CURSOR, position=0))


def has_new_events(conn: Connection) -> bool:
    """Whether events exist past the cursor (a plain read, no lock)."""
    position = conn.execute(select(t.cursor.c.position).where(t.cursor.c.name == CURSOR)).scalar() or 0
    return conn.execute(select(ev.c.id).where(ev.c.id > position).limit(1)).first() is not None


def _lock_cursor(conn: Connection, now: datetime):
    """(position, gap_seen_at) with the cursor row locked for this transaction; None if another worker holds it."""
    c = t.cursor.c
    locked = select(c.name).where(c.name == CURSOR).with_for_update(skip_locked=True).scalar_subquery()
    return conn.execute(update(t.cursor).where(c.name.in_(locked)).values(updated_at=utc(now))
                        .returning(c.position, c.gap_seen_at)).first()


def _contiguous(rows: list, position: int, gap_seen_at, now: datetime, wait_gaps: bool):
    """The events that may be handled now, and the new gap_seen_at."""
    if not wait_gaps:
        return rows, None
    take, expected = [], position + 1
    for r in rows:
        if r.id != expected:
            if gap_seen_at is None:
                return take, utc(now)
            if utc(now) - utc(gap_seen_at) < seconds(GAP_WAIT_SECONDS):
                return take, gap_seen_at
            gap_seen_at = None      # waited long enough: the missing ids were rolled back
        take.append(r)
        expected = r.id + 1
    return take, gap_seen_at


def consume(conn: Connection, now: datetime, limit: int = 1000) -> int:
    """Handle up to `limit` new events; returns how many (0 when none, or another worker reads)."""
    locked = _lock_cursor(conn, now)
    if locked is None:
        return 0
    position, gap_seen_at = locked
    workflows = load_workflows(conn)
    # With no workflow defined there is nothing to start or stop: only move past the ids (reading
    # whole event rows back cost the backend's intake ~8% of its CPU in bench/ingest.py).
    columns = ((ev.c.id, ev.c.type, ev.c.key, ev.c.contact_id, ev.c.order_id, ev.c.params, ev.c.created_at)
               if workflows else (ev.c.id,))
    rows = conn.execute(select(*columns).where(ev.c.id > position).order_by(ev.c.id).limit(limit)).all()
    take, gap_seen_at = _contiguous(rows, position, gap_seen_at, now, conn.dialect.name == "postgresql")
    if take and workflows:
        batch = Intake(conn, now, workflows)
        batch.prefetch_orders(take)
        for event in take:
            batch.handle(event)
        batch.flush()
    values = {"gap_seen_at": gap_seen_at}
    if take:
        values["position"] = take[-1].id
    conn.execute(update(t.cursor).where(t.cursor.c.name == CURSOR).values(**values))
    return len(take)


class Intake:
    """One batch of events: stops applied at once, new runs buffered until `flush`."""

    def __init__(self, conn: Connection, now: datetime, workflows: dict[int, Workflow]):
        self.conn, self.now, self.workflows = conn, now, workflows
        self.runs: list[dict] = []               # run rows to insert, in event order
        self.first_steps: list[dict | None] = []
        self.keys: set[tuple[int, str]] = set()  # (workflow, key) started in this batch
        self.contacts: set[tuple[int, int]] = set()
        self.orders: dict[int, dict] = {}       # order payloads by id, for start conditions on order fields

    def prefetch_orders(self, events) -> None:
        """The orders of the events whose workflows' start conditions read order fields, in one query per 500."""
        types = {wf.definition["start"]["event"] for wf in self.workflows.values() if wf.active and needs_order(wf)}
        ids = sorted({e.order_id for e in events if e.type in types and e.order_id is not None})
        for start in range(0, len(ids), 500):
            rows = self.conn.execute(select(orders.c.id, orders.c.payload)
                                     .where(orders.c.id.in_(ids[start:start + 500]))).all()
            self.orders.update((i, json.loads(p)) for i, p in rows)

    def handle(self, event) -> None:
        """Stops first, then starts: a run is never stopped by the event that started it."""
        for wf in self.workflows.values():
            rules = [r for r in wf.stops if any(type_matches(p, event.type) for p in r["events"])]
            if rules:
                if any(r["workflow_id"] == wf.id for r in self.runs):
                    self.flush()
                stop_runs(self.conn, wf, rules, event, self.now)
        if event.contact_id is None:
            return      # its contact was deleted (DELETE /api/v1/contact) before the event was read: no one to write to
        params = None
        for wf in self.workflows.values():
            if wf.active and wf.definition["start"]["event"] == event.type:
                params = params if params is not None else json.loads(event.params or "{}")
                try:
                    self.maybe_start(wf, event, params)
                except (OverflowError, ValueError) as e:
                    # One definition that cannot be computed (a date past year 9999, say) must not hold
                    # up every event behind it: the log names it; the other workflows go on.
                    log.error("workflow %s cannot start for event %s: %s: %s; fix its definition",
                              wf.id, event.id, type(e).__name__, e)

    def maybe_start(self, wf: Workflow, event, params: dict) -> None:
        """Start a run of `wf` for `event` unless its conditions, unique mode or skip-if-running say no."""
        d, now = wf.definition, self.now
        context = {"params": params, "key": event.key}
        # A start condition may read the order's fields (`totalCost greater_than 100`) as well as the event's
        # params: it sees the order as stored when the event is read. The run's context keeps the params only
        # (its get_order step loads the order when the run reaches it).
        seen = {**context, "order": self.orders.get(event.order_id) or {}} if needs_order(wf) else context
        try:
            started = conditions.holds(d["start"]["conditions"], variables(seen), conditions.saved_segments(self.conn))
        except InvalidInput as e:     # InvalidSegment: no run to record it on; the log names the workflow
            log.warning("workflow %s: start condition not met for event %s: %s", wf.id, event.id, e)
            started = False
        if not started:
            return
        if not self._unique_allows(wf, event) or self._running_for_contact(wf, event):
            return
        stopped_by = stop_event_id(self.conn, wf.stops, event.key, event.contact_id, before_id=event.id,
                                   since_of=lambda rule: utc(event.created_at) - seconds(rule["before"]),
                                   only_before=True)
        first = wf.first_step
        due, why = timer_due(first, variables(context), now) if first["type"] == "timer" else (now, None)
        state, note = t.IN_PROGRESS, None
        if stopped_by:
            state, note = t.STOPPED, f"stopped at start by event #{stopped_by}"
        elif why:
            state, note = t.ERROR, why
        # both rows are built before either list grows: flush() pairs runs and first steps by position
        run = {"workflow_id": wf.id, "event_id": event.id, "key": event.key, "contact_id": event.contact_id,
               "state": state, "context": json.dumps(context), "started_at": utc(now),
               "finished_at": None if state == t.IN_PROGRESS else utc(now), "error": note}
        step = ({"step_id": first["id"], "step_type": first["type"], "state": t.PENDING, "due_at": utc(due)}
                if state == t.IN_PROGRESS else None)
        self.runs.append(run)
        self.first_steps.append(step)
        self.keys.add((wf.id, event.key))
        if state == t.IN_PROGRESS and event.contact_id is not None:
            self.contacts.add((wf.id, event.contact_id))

    def flush(self) -> None:
        """Write the buffered runs and their first steps (two executemany statements)."""
        if not self.runs:
            return
        ids = self.conn.execute(_INSERT_RUN, self.runs).scalars().all()
        steps = [dict(s, run_id=rid) for rid, s in zip(ids, self.first_steps) if s is not None]
        if steps:
            self.conn.execute(insert(t.steps), steps)
        self.runs, self.first_steps = [], []
        self.keys.clear()
        self.contacts.clear()

    def _unique_allows(self, wf: Workflow, event) -> bool:
        mode = wf.definition["unique"]["mode"]
        if mode == "every":
            return True
        if (wf.id, event.key) in self.keys:
            return False
        if mode == "once_per_key":
            return self.conn.execute(_SAME_KEY, {"wf": wf.id, "key": event.key}).first() is None
        since = utc(self.now) - seconds(wf.definition["unique"]["days"] * 86400)
        return self.conn.execute(_SAME_KEY_SINCE, {"wf": wf.id, "key": event.key, "since": since}).first() is None

    def _running_for_contact(self, wf: Workflow, event) -> bool:
        if not wf.definition["skipIfRunning"] or event.contact_id is None:
            return False
        if (wf.id, event.contact_id) in self.contacts:
            return True
        return self.conn.execute(_RUNNING_FOR_CONTACT, {"wf": wf.id, "contact": event.contact_id}).first() is not None


def needs_order(wf: Workflow) -> bool:
    """Whether the workflow's start condition reads a name that only the order holds."""
    return bool(conditions.names(wf.definition["start"]["conditions"]) - PARAM_NAMES)


def _match(rule: dict, key: str, contact_id, key_col, contact_col):
    """The SQL condition tying a stop rule to a run or an event; False when it cannot match."""
    by_key = key_col == key
    by_contact = (contact_col == contact_id) if contact_id is not None else None
    if rule["match"] == "key":
        return by_key
    if rule["match"] == "contact":
        return by_contact if by_contact is not None else False
    return or_(by_key, by_contact) if by_contact is not None else by_key


def stop_runs(conn: Connection, wf: Workflow, rules: list[dict], event, now: datetime) -> list[int]:
    r = t.runs.c
    matches = [m for m in (_match(rule, event.key, event.contact_id, r.key, r.contact_id) for rule in rules) if m is not False]
    if not matches:
        return []
    ids = [x.id for x in conn.execute(
        update(t.runs).where(r.workflow_id == wf.id, r.state == t.IN_PROGRESS, r.event_id < event.id, or_(*matches))
        .values(state=t.STOPPED, finished_at=utc(now), error=f"stopped by event {event.type} #{event.id}")
        .returning(r.id)).all()]
    if ids:
        cancel_pending(conn, ids, now)
    return ids


def cancel_pending(conn: Connection, run_ids: list[int], now: datetime) -> None:
    # SKIP LOCKED: a step another worker is executing right now finds its run stopped and cancels itself.
    s = t.steps.c
    due = (select(s.id).where(s.run_id.in_(run_ids), s.state == t.PENDING)
           .with_for_update(skip_locked=True).scalar_subquery())
    conn.execute(update(t.steps).where(s.id.in_(due)).values(state=t.CANCELLED, done_at=utc(now)))


def stop_event_id(conn: Connection, rules: list[dict], key: str, contact_id, *, after_id: int | None = None,
                  before_id: int | None = None, since_of=None, only_before: bool = False) -> int | None:
    """The id of an event that ends the run (by the workflow's stop rules), or None.

    At start (`only_before`): rules with a `before` window look back that far from the trigger.
    After a timer: any matching event after the trigger (`after_id`).
    """
    e = ev.c
    for rule in rules:
        if only_before and not rule["before"]:
            continue
        m = _match(rule, key, contact_id, e.key, e.contact_id)
        if m is False:
            continue
        types = or_(*[e.type.like(p[:-1] + "%") if p.endswith("*") else e.type == p for p in rule["events"]])
        q = select(e.id).where(types, m)
        if after_id is not None:
            q = q.where(e.id > after_id)
        if before_id is not None:
            q = q.where(e.id < before_id)
        if since_of is not None:
            q = q.where(e.created_at >= since_of(rule))
        found = conn.execute(q.order_by(e.id).limit(1)).scalar()
        if found is not None:
            return found
    return None
