"""The workflow API: definitions (CRUD), launch history and messages, behind the same Basic auth."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from backend.auth import protect
from backend.db import get_engine, write_transaction
from backend.errors import ApiError
from backend.paging import MAX_ID, encode_cursor, int_arg, page_args
from backend.workflows import repo
from backend.workflows import storage as t
from backend.workflows.definition import DefinitionError

bp = protect(Blueprint("workflows", __name__, url_prefix="/api/v1"))


@bp.before_request                     # after protect's auth check: a stranger still gets 401
def _ids_in_range():
    """An id beyond any column's range names nothing: 404, not a database error."""
    if any(isinstance(v, int) and v > MAX_ID for v in (request.view_args or {}).values()):
        raise ApiError(404, "no such resource")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object: a workflow definition")
    return data


def _invalid(e: DefinitionError):
    message = f"invalid workflow: {e}"
    resp = jsonify({"message": message, "error": {"status": 400, "message": message, "errors": e.errors}})
    resp.status_code = 400
    return resp


def _not_found(wid: int) -> ApiError:
    return ApiError(404, f"no workflow with id {wid}")


@bp.get("/workflows")
def list_workflows():
    limit, after = page_args()
    with get_engine().connect() as conn:
        rows, last = repo.page(conn, repo.list_query(), t.definitions, after, limit)
    return jsonify({"workflows": [repo.workflow_json(r) for r in rows], "next": encode_cursor(last)})


@bp.post("/workflows")
def create_workflow():
    raw = _body()
    try:
        with write_transaction(get_engine()) as conn:
            wf = repo.create(conn, raw, _now())
    except DefinitionError as e:
        return _invalid(e)
    return jsonify(wf), 201


@bp.get("/workflows/<int:wid>")
def get_workflow(wid: int):
    with get_engine().connect() as conn:
        wf = repo.get(conn, wid)
    if wf is None:
        raise _not_found(wid)
    return jsonify(wf)


@bp.put("/workflows/<int:wid>")
def put_workflow(wid: int):
    raw = _body()
    try:
        with write_transaction(get_engine()) as conn:
            wf = repo.replace(conn, wid, raw, _now())
    except DefinitionError as e:
        return _invalid(e)
    if wf is None:
        raise _not_found(wid)
    return jsonify(wf)


@bp.delete("/workflows/<int:wid>")
def delete_workflow(wid: int):
    with write_transaction(get_engine()) as conn:
        if not repo.delete(conn, wid, _now()):
            raise _not_found(wid)
    return "", 204


@bp.get("/workflows/<int:wid>/runs")
def list_runs(wid: int):
    limit, after = page_args()
    state = request.args.get("state")
    if state is not None and state not in t.RUN_STATES:
        raise ApiError(400, f"state: expected one of {', '.join(t.RUN_STATES)}; got {state[:30]!r}")
    q = select(t.runs).where(t.runs.c.workflow_id == wid)
    if state:
        q = q.where(t.runs.c.state == state)
    with get_engine().connect() as conn:
        if repo.get(conn, wid) is None:
            raise _not_found(wid)
        rows, last = repo.page(conn, q, t.runs, after, limit)
        paths = repo.paths(conn, [r.id for r in rows])
    return jsonify({"runs": [repo.run_json(r, paths[r.id]) for r in rows], "next": encode_cursor(last)})


@bp.get("/messages")
def list_messages():
    limit, after = page_args()
    m = t.messages.c
    q = select(t.messages)
    for arg, col in (("workflowId", m.workflow_id), ("runId", m.run_id), ("contactId", m.contact_id)):
        value = int_arg(arg)
        if value is not None:
            q = q.where(col == value)
    status = request.args.get("status")
    if status is not None:
        if status not in t.MESSAGE_STATES:
            raise ApiError(400, f"status: expected one of {', '.join(t.MESSAGE_STATES)}; got {status[:30]!r}")
        q = q.where(m.status == status)
    with get_engine().connect() as conn:
        rows, last = repo.page(conn, q, t.messages, after, limit)
    return jsonify({"messages": [repo.message_json(r) for r in rows], "next": encode_cursor(last)})
