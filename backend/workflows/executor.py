"""Due steps: claim them atomically, execute each with the steps that follow at once, record the path.

Claim and execution share one transaction: a worker that dies mid-batch commits nothing and the
rows are due again. A message is recorded (`sending`) and the run advanced in that transaction;
the send itself happens after the commit (runner.deliver), so it is never repeated.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from backend.storage import StoredOrder
from backend.workflows import conditions, templates
from backend.workflows import storage as t
from backend.workflows.channels import ChannelSettings
from backend.workflows.intake import stop_event_id
from backend.workflows.model import Workflow, load_workflows, timer_due, utc, variables
from connector.errors import InvalidInput

log = logging.getLogger(__name__)
orders = StoredOrder.__table__
_ORDER = select(orders.c.payload).where(orders.c.external_order_id == bindparam("ext"))


@dataclass
class Run:
    id: int
    workflow_id: int
    event_id: int
    key: str
    contact_id: int | None
    state: str
    context: dict
    error: str | None = None
    dirty: bool = False


@dataclass
class Outcome:
    """What one step did: its row state and result, where the run goes next, and a message to record."""

    state: str = t.DONE
    result: dict = field(default_factory=dict)
    next: str | None = None
    error: str | None = None          # the run ends with an error
    stopped_by: int | None = None     # the run ends stopped by this event
    message: dict | None = None


@dataclass
class Delivery:
    message: dict
    step: dict


class Batch:
    """One worker's transaction over the steps it claimed."""

    def __init__(self, conn: Connection, now: datetime, settings: ChannelSettings):
        self.conn, self.now, self.settings = conn, now, settings
        self.deliveries: list[Delivery] = []
        self.executed = 0
        self.done_rows: list[dict] = []          # claimed rows, finished
        self.new_rows: list[dict] = []           # rows executed in a chain, and timers now pending
        self.messages: list[tuple] = []          # (row reference, message, step)
        self.run_values: dict[int, dict] = {}
        self.orders: dict[str, str] = {}         # prefetched payloads by externalOrderId

    # --- one step of each type -------------------------------------------------------------
    def get_order(self, step: dict, run: Run, wf: Workflow) -> Outcome:
        ext = run.key
        if step["by"] == "externalOrderId":
            ext = templates.render(step["externalOrderId"], variables(run.context))
        payload = self.orders.get(ext)
        if payload is None:
            payload = self.conn.execute(_ORDER, {"ext": ext}).scalar()
        if payload is None:
            return Outcome(state=t.FAILED, error=f"get_order: no order with externalOrderId {ext!r}")
        run.context["order"], run.dirty = json.loads(payload), True
        return Outcome(result={"externalOrderId": ext, "items": len(run.context["order"].get("items") or [])},
                       next=step["next"])

    def send_message(self, step: dict, run: Run, wf: Workflow) -> Outcome:
        v = variables(run.context)
        to, subject, body = (templates.render(step[k], v) for k in ("to", "subject", "body"))
        channel = self.settings.resolve(step["channel"])
        status, error = (t.STORED, None) if channel == "store" else (t.SENDING, None)
        if channel == "email" and not to.strip():
            status, error = t.MSG_FAILED, "no recipient: `to` rendered empty for this contact"
        message = {"workflowId": wf.id, "runId": run.id, "contactId": run.contact_id, "channel": channel,
                   "to": to.strip(), "subject": subject, "body": body, "status": status, "error": error}
        result = {"channel": channel, "to": to.strip(), "status": status}
        if error:
            # the run goes on (a later step may still reach the contact), and ends in error, saying why
            run.error = run.error or f"step {step['id']!r}: the message was not sent: {error}"
            return Outcome(state=t.FAILED, result=dict(result, error=error), next=step["next"], message=message)
        return Outcome(result=result, next=step["next"], message=message)

    def timer(self, step: dict, run: Run, wf: Workflow) -> Outcome:
        # Stop conditions are checked after every timer (Yespo): an ending event the intake has
        # not reached yet still counts.
        stopped = stop_event_id(self.conn, wf.stops, run.key, run.contact_id, after_id=run.event_id)
        if stopped:
            return Outcome(result={"stoppedBy": stopped}, stopped_by=stopped)
        return Outcome(result={}, next=step["next"])

    def condition(self, step: dict, run: Run, wf: Workflow) -> Outcome:
        try:
            ok = conditions.holds(step["condition"], variables(run.context), conditions.saved_segments(self.conn))
        except InvalidInput as e:     # InvalidSegment: a saved segment deleted since; the run says so
            return Outcome(state=t.FAILED, error=f"condition {step['id']!r}: {e}")
        return Outcome(result={"result": ok}, next=step["yes"] if ok else step["no"])

    # --- the chain ------------------------------------------------------------------------
    def run_chain(self, row, run: Run, wf: Workflow | None) -> None:
        """Execute the claimed row, then every step that is due at once, up to a timer or the end."""
        if run.state != t.IN_PROGRESS:
            self._finish_row(row.id, t.CANCELLED, {"reason": f"run is {run.state}"})
            return
        step = wf.steps.get(row.step_id) if wf else None
        if step is None:
            why = "the workflow was deleted" if wf is None else f"step {row.step_id!r} no longer exists in the workflow"
            self._finish_row(row.id, t.FAILED, {"error": why})
            self._end_run(run, t.ERROR, why)
            return
        row_id: int | None = row.id
        for _ in range(len(wf.steps) + 1):      # definitions have no loops; this only bounds a bad edit
            outcome = self._execute(step, run, wf)
            self._record(row_id, run, step, outcome)
            step = self._advance(run, wf, outcome)
            if step is None:
                return
            row_id = None

    def _execute(self, step: dict, run: Run, wf: Workflow) -> Outcome:
        self.executed += 1
        try:
            return STEPS[step["type"]](self, step, run, wf)
        except templates.TemplateProblem as e:
            return Outcome(state=t.FAILED, error=f"{step['type']} {step['id']!r}: {e}")
        except SQLAlchemyError:
            raise                   # the batch rolls back and is retried; the run is not at fault
        except Exception as e:      # a bug must fail this run, not block the queue behind it forever
            log.exception("workflow %s run %s step %r failed", wf.id, run.id, step["id"])
            return Outcome(state=t.FAILED, error=f"{step['type']} {step['id']!r}: internal error "
                                                 f"({type(e).__name__}); the server log has the details")

    def _record(self, row_id: int | None, run: Run, step: dict, outcome: Outcome) -> None:
        result = json.dumps(dict(outcome.result, **({"error": outcome.error} if outcome.error else {})))
        now = utc(self.now)
        if row_id is None:
            self.new_rows.append({"run_id": run.id, "step_id": step["id"], "step_type": step["type"],
                                  "state": outcome.state, "due_at": now, "done_at": now, "result": result})
            ref = ("new", len(self.new_rows) - 1)
        else:
            self.done_rows.append({"b_id": row_id, "b_state": outcome.state, "b_done": now, "b_result": result})
            ref = ("claimed", row_id)
        if outcome.message is not None:
            self.messages.append((ref, outcome.message, step))

    def _advance(self, run: Run, wf: Workflow, outcome: Outcome) -> dict | None:
        """The next step to execute now, or None (the run waits on a timer or has ended)."""
        if outcome.error:
            self._end_run(run, t.ERROR, outcome.error)
            return None
        if outcome.stopped_by:
            self._end_run(run, t.STOPPED, f"stopped after a timer by event #{outcome.stopped_by}")
            return None
        if outcome.next is None:
            # a message of the run that was not sent (or may not have been) puts it with the runs with errors
            self._end_run(run, t.ERROR if run.error else t.COMPLETED, run.error)
            return None
        nxt = wf.steps[outcome.next]
        if nxt["type"] != "timer":
            return nxt
        due, why = timer_due(nxt, variables(run.context), self.now)
        if why:
            self._record(None, run, nxt, Outcome(state=t.FAILED, error=why))
            self._end_run(run, t.ERROR, why)
            return None
        self.new_rows.append({"run_id": run.id, "step_id": nxt["id"], "step_type": "timer", "state": t.PENDING,
                              "due_at": utc(due), "done_at": None, "result": None})
        self._save_run(run)
        return None

    def _finish_row(self, row_id: int, state: str, result: dict) -> None:
        self.done_rows.append({"b_id": row_id, "b_state": state, "b_done": utc(self.now), "b_result": json.dumps(result)})

    def _end_run(self, run: Run, state: str, error: str | None) -> None:
        run.state, run.error = state, error
        self._save_run(run, finished=True)

    def _save_run(self, run: Run, finished: bool = False) -> None:
        values = self.run_values.setdefault(run.id, {})
        if run.dirty:
            values["b_context"] = json.dumps(run.context)
        if run.error:
            values["b_error"] = run.error
        if finished:
            values.update(b_state=run.state, b_error=run.error, b_finished=utc(self.now))

    # --- writing the batch: a few executemany statements --------------------------------------
    def flush(self) -> None:
        if self.done_rows:
            self.conn.execute(_FINISH_ROW, self.done_rows)
        new_ids = []
        if self.new_rows:
            new_ids = self.conn.execute(_INSERT_ROW, self.new_rows).scalars().all()
        self._flush_runs()
        if self.messages:
            self._flush_messages(new_ids)

    def _flush_runs(self) -> None:
        groups: dict[tuple, list] = {}
        for rid, values in self.run_values.items():
            if values:
                groups.setdefault(tuple(sorted(values)), []).append(dict(values, b_id=rid))
        for keys, rows in groups.items():
            cols = {k[2:]: bindparam(k) for k in keys}
            cols = {("finished_at" if k == "finished" else k): v for k, v in cols.items()}
            self.conn.execute(update(t.runs).where(t.runs.c.id == bindparam("b_id")).values(**cols), rows)

    def _flush_messages(self, new_ids: list[int]) -> None:
        rows = []
        for (kind, ref), m, _ in self.messages:
            rows.append({"workflow_id": m["workflowId"], "run_id": m["runId"],
                         "step_row_id": new_ids[ref] if kind == "new" else ref, "contact_id": m["contactId"],
                         "channel": m["channel"], "to_address": m["to"], "subject": m["subject"], "body": m["body"],
                         "status": m["status"], "error": m["error"], "created_at": utc(self.now)})
        ids = self.conn.execute(_INSERT_MESSAGE, rows).scalars().all()
        for mid, (_, m, step) in zip(ids, self.messages):
            if m["status"] == t.SENDING:
                self.deliveries.append(Delivery(dict(m, id=mid, createdAt=self.now.isoformat()), step))


_s = t.steps.c
_FINISH_ROW = (update(t.steps).where(_s.id == bindparam("b_id"))
               .values(state=bindparam("b_state"), done_at=bindparam("b_done"), result=bindparam("b_result")))
_INSERT_ROW = insert(t.steps).returning(_s.id, sort_by_parameter_order=True)
_INSERT_MESSAGE = insert(t.messages).returning(t.messages.c.id, sort_by_parameter_order=True)


STEPS: dict[str, Callable[[Batch, dict, Run, Workflow], Outcome]] = {
    "get_order": Batch.get_order,
    "send_message": Batch.send_message,
    "timer": Batch.timer,
    "condition": Batch.condition,
}


def claim(conn: Connection, now: datetime, worker: str, limit: int) -> list:
    """Atomically take up to `limit` due step rows (SKIP LOCKED on PostgreSQL; SQLite has one writer)."""
    s = t.steps.c
    due = (select(s.id).where(s.state == t.PENDING, s.due_at <= utc(now)).order_by(s.due_at, s.id)
           .limit(limit).with_for_update(skip_locked=True).scalar_subquery())
    rows = conn.execute(update(t.steps).where(s.id.in_(due)).values(state=t.RUNNING, claimed_by=worker)
                        .returning(s.id, s.run_id, s.step_id, s.due_at)).all()
    return sorted(rows, key=lambda r: (r.due_at, r.id))


def _load_runs(conn: Connection, ids: set[int]) -> dict[int, Run]:
    # FOR UPDATE, not NO KEY UPDATE: a contact's delete/erase (backend.api._stop_runs) waits on it with KEY
    # SHARE for the messages this batch records, and keeps the next batch from recording one meanwhile.
    r = t.runs.c
    rows = conn.execute(select(r.id, r.workflow_id, r.event_id, r.key, r.contact_id, r.state, r.context, r.error)
                        .where(r.id.in_(sorted(ids))).order_by(r.id).with_for_update()).all()
    return {x.id: Run(x.id, x.workflow_id, x.event_id, x.key, x.contact_id, x.state, json.loads(x.context), x.error)
            for x in rows}


def execute_due(conn: Connection, now: datetime, worker: str, settings: ChannelSettings,
                limit: int = 200) -> tuple[int, list[Delivery], list]:
    """Claim and execute due steps; returns (steps executed, sends to make after commit, claimed rows)."""
    rows = claim(conn, now, worker, limit)
    if not rows:
        return 0, [], []
    workflows = load_workflows(conn)
    runs = _load_runs(conn, {r.run_id for r in rows})
    batch = Batch(conn, now, settings)
    batch.orders = _prefetch_orders(conn, runs.values(), workflows)
    for row in rows:
        run = runs[row.run_id]
        try:
            batch.run_chain(row, run, workflows.get(run.workflow_id))
        except SQLAlchemyError:
            raise                   # the batch rolls back and is retried
        except Exception as e:      # one run's trouble must not hold up every due step behind it, tick after tick
            log.exception("workflow run %s step row %s failed", run.id, row.id)
            why = f"internal error ({type(e).__name__}); the server log has the details"
            batch._finish_row(row.id, t.FAILED, {"error": why})
            batch._end_run(run, t.ERROR, why)
    batch.flush()
    return batch.executed, batch.deliveries, rows


def _prefetch_orders(conn: Connection, runs, workflows: dict[int, Workflow]) -> dict[str, str]:
    """Order payloads the batch's get_order steps will most likely ask for (by event key), in one query."""
    keys = {r.key for r in runs if r.workflow_id in workflows and r.state == t.IN_PROGRESS
            and "order" not in r.context and any(s["type"] == "get_order" for s in workflows[r.workflow_id].definition["steps"])}
    if not keys:
        return {}
    return dict(conn.execute(select(orders.c.external_order_id, orders.c.payload)
                             .where(orders.c.external_order_id.in_(sorted(keys)))).all())


def has_due_steps(conn: Connection, now: datetime) -> bool:
    s = t.steps.c
    return conn.execute(select(s.id).where(s.state == t.PENDING, s.due_at <= utc(now)).limit(1)).first() is not None
