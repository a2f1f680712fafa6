"""Workflow definitions in the database: create, replace, delete (soft), read; runs and messages as JSON."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from backend.workflows import definition as wfdef
from backend.workflows import storage as t
from backend.workflows.intake import cancel_pending
from backend.workflows.model import aware, utc


def _iso(dt: datetime | None) -> str | None:
    dt = aware(dt)
    return dt.isoformat() if dt else None


def workflow_json(r) -> dict:
    d = json.loads(r.definition)
    return {"id": r.id, **d, "active": bool(r.active), "version": r.version,
            "createdAt": _iso(r.created_at), "updatedAt": _iso(r.updated_at)}


def create(conn: Connection, raw: dict, now: datetime) -> dict:
    """Validate and store a new workflow (raises DefinitionError)."""
    d = wfdef.validate(raw)
    wid = conn.execute(insert(t.definitions).values(
        name=d["name"], active=d["active"], start_event=d["start"]["event"],
        definition=json.dumps(wfdef.stored_form(raw)), version=1, created_at=utc(now), updated_at=utc(now)).returning(t.definitions.c.id)).scalar_one()
    return get(conn, wid)


def replace(conn: Connection, wid: int, raw: dict, now: datetime) -> dict | None:
    """Replace a workflow's definition; runs in progress go on with the new version of their steps."""
    d = wfdef.validate(raw)
    c = t.definitions.c
    n = conn.execute(update(t.definitions).where(c.id == wid, c.deleted_at.is_(None)).values(
        name=d["name"], active=d["active"], start_event=d["start"]["event"],
        definition=json.dumps(wfdef.stored_form(raw)), version=c.version + 1, updated_at=utc(now))).rowcount
    return get(conn, wid) if n else None


def delete(conn: Connection, wid: int, now: datetime) -> bool:
    """Delete a workflow: its runs in progress stop; history (runs, messages) stays."""
    c = t.definitions.c
    if not conn.execute(update(t.definitions).where(c.id == wid, c.deleted_at.is_(None))
                        .values(deleted_at=utc(now), active=False)).rowcount:
        return False
    r = t.runs.c
    ids = [x.id for x in conn.execute(update(t.runs).where(r.workflow_id == wid, r.state == t.IN_PROGRESS)
                                      .values(state=t.STOPPED, finished_at=utc(now), error="the workflow was deleted")
                                      .returning(r.id)).all()]
    if ids:
        cancel_pending(conn, ids, now)
    return True


def get(conn: Connection, wid: int) -> dict | None:
    c = t.definitions.c
    r = conn.execute(select(t.definitions).where(c.id == wid, c.deleted_at.is_(None))).first()
    return workflow_json(r) if r else None


def count_all(conn: Connection) -> int:
    """Every workflow ever stored, deleted ones included (starters are installed only into an empty table)."""
    return conn.execute(select(func.count()).select_from(t.definitions)).scalar_one()


def page(conn: Connection, query, table, after: int, limit: int) -> tuple[list, int | None]:
    """Rows after id `after`, and the last id when more follow."""
    rows = conn.execute(query.where(table.c.id > after).order_by(table.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def list_query():
    return select(t.definitions).where(t.definitions.c.deleted_at.is_(None))


def run_json(r, path: list) -> dict:
    return {"id": r.id, "workflowId": r.workflow_id, "eventId": r.event_id, "key": r.key, "contactId": r.contact_id,
            "state": r.state, "error": r.error, "startedAt": _iso(r.started_at), "finishedAt": _iso(r.finished_at),
            "path": path}


def paths(conn: Connection, run_ids: list[int]) -> dict[int, list]:
    """Each run's step rows in order: the path taken, with each step's result and its message."""
    s, m = t.steps.c, t.messages.c
    out: dict[int, list] = {i: [] for i in run_ids}
    if not run_ids:
        return out
    q = (select(s.id, s.run_id, s.step_id, s.step_type, s.state, s.due_at, s.done_at, s.result, m.id.label("message_id"))
         .select_from(t.steps.outerjoin(t.messages, m.step_row_id == s.id))
         .where(s.run_id.in_(run_ids)).order_by(s.run_id, s.id))
    for r in conn.execute(q):
        item = {"step": r.step_id, "type": r.step_type, "state": r.state, "dueAt": _iso(r.due_at),
                "doneAt": _iso(r.done_at), "result": json.loads(r.result) if r.result else None}
        if r.message_id is not None:
            item["messageId"] = r.message_id
        out[r.run_id].append(item)
    return out


def message_json(r) -> dict:
    return {"id": r.id, "workflowId": r.workflow_id, "runId": r.run_id, "contactId": r.contact_id,
            "channel": r.channel, "to": r.to_address, "subject": r.subject, "body": r.body, "status": r.status,
            "error": r.error, "createdAt": _iso(r.created_at), "sentAt": _iso(r.sent_at)}
