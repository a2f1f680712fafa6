"""The backend's HTTP API under /api/v1: Yespo's add-orders, account info and contact delete, plus our reads."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.routing import PathConverter
from sqlalchemy import func, select, update

from backend import contacts, intake
from backend.auth import protect
from backend.db import get_engine, iso, write_transaction
from backend.errors import ApiError
from backend.paging import MAX_ID, encode_cursor, int_arg, page_args
from backend.storage import Contact, Event, StoredOrder
from connector.format import parse_date

bp = protect(Blueprint("api", __name__, url_prefix="/api/v1"))
ORDERS, EVENTS, CONTACTS = StoredOrder.__table__, Event.__table__, Contact.__table__


# ---- Yespo-compatible ----------------------------------------------------------------------

@bp.post("/orders")
def post_orders():
    raw_orders = intake.parse_body(request.get_data(cache=False))
    versions, failed = intake.validate(raw_orders)
    if versions:
        intake.ingest(get_engine(), versions)
    return jsonify({"failedOrders": failed})


@bp.get("/account/info")
def account_info():
    cfg = current_app.config["ORDERBRIDGE"].backend
    return jsonify({"userEmail": cfg.user_email, "organisationName": cfg.organisation_name})


@bp.delete("/contact")
def delete_contact():
    """Delete a contact by externalCustomerId; with erase=true, erase its personal data everywhere.

    erase=true: the contact's identifiers and names are blanked (the row stays, anonymous, so
    reports keep their counts), and so are its orders' personal fields, its events' personal
    params, what its workflow runs hold of them and the messages written to it. Without it: the
    contact record is deleted and its orders unlinked (a later order matches afresh); orders, the
    event history and the messages are kept as they are. Either way no workflow writes to it again:
    its runs in progress stop, and a message recorded but not yet on its way is not sent.
    """
    ext = (request.args.get("externalCustomerId") or "").strip()
    if not ext:
        raise ApiError(400, "externalCustomerId is required")
    erase = (request.args.get("erase") or "false").lower() == "true"
    with write_transaction(get_engine()) as conn:
        row = contacts.find_by_external_id(conn, ext)
        if row is None:
            raise ApiError(404, f"no contact with externalCustomerId {ext!r}")
        now = datetime.now(timezone.utc)
        summary = _erase(conn, row.id, now) if erase else _unlink(conn, row.id, now)
    return jsonify({"contactId": row.id, "erased": erase, **summary})


_ORDER_PERSONAL = ("externalCustomerId", "email", "phone", "firstName", "lastName", "deliveryAddress")
_EVENT_PERSONAL = ("externalCustomerId", "email", "EmailAddress", "phone", "SMS")


def _erase(conn, contact_id: int, now: datetime) -> dict:
    from backend.workflows import storage as wf
    # a message keeps what it said to whom: blanked with the rest
    _stop_runs(conn, contact_id, now, "erased", {"to_address": "", "subject": "", "body": ""})
    contacts.erase_personal(conn, contact_id, now)
    orders = conn.execute(select(ORDERS.c.id, ORDERS.c.payload).where(ORDERS.c.contact_id == contact_id)).all()
    for o in orders:
        wire = {k: v for k, v in json.loads(o.payload).items() if k not in _ORDER_PERSONAL}
        payload, digest = intake.canonical(wire)
        conn.execute(update(ORDERS).where(ORDERS.c.id == o.id).values(payload=payload, content_hash=digest, updated_at=now))
    events = conn.execute(select(EVENTS.c.id, EVENTS.c.params).where(EVENTS.c.contact_id == contact_id)).all()
    for e in events:
        params = {k: v for k, v in json.loads(e.params).items() if k not in _EVENT_PERSONAL}
        conn.execute(update(EVENTS).where(EVENTS.c.id == e.id).values(params=json.dumps(params)))
    # A run keeps a copy of its event's params and, after get_order, of the order: left there, the erased
    # person's address and name would still be shown and stored.
    runs, steps = wf.runs, wf.steps
    run_ids = []
    for r in conn.execute(select(runs.c.id, runs.c.context).where(runs.c.contact_id == contact_id)).all():
        run_ids.append(r.id)
        conn.execute(update(runs).where(runs.c.id == r.id).values(context=json.dumps(_erased_context(json.loads(r.context)))))
    for chunk in (run_ids[i:i + 500] for i in range(0, len(run_ids), 500)):
        sends = conn.execute(select(steps.c.id, steps.c.result).where(
            steps.c.run_id.in_(chunk), steps.c.step_type == "send_message", steps.c.result.is_not(None))).all()
        for st in sends:   # a send step's result names the address it wrote to
            result = json.loads(st.result)
            if isinstance(result, dict) and result.get("to"):
                conn.execute(update(steps).where(steps.c.id == st.id).values(result=json.dumps({**result, "to": ""})))
    return {"orders": len(orders), "events": len(events)}


def _erased_context(context: dict) -> dict:
    if isinstance(context.get("params"), dict):
        context["params"] = {k: v for k, v in context["params"].items() if k not in _EVENT_PERSONAL}
    if isinstance(context.get("order"), dict):
        context["order"] = {k: v for k, v in context["order"].items() if k not in _ORDER_PERSONAL}
    return context


def _stop_runs(conn, contact_id: int, now: datetime, what: str, messages: dict) -> None:
    """No workflow writes to a deleted or erased contact again: a message recorded but not yet on its way is
    failed (the runner sends only what is still `sending`), its runs in progress stop (their timers are
    cancelled), and its messages take `messages` (blanked or unlinked).

    First, its runs in progress are locked FOR KEY SHARE, in id order as the executor locks them: this waits
    for a worker's batch that holds one of them (FOR UPDATE) while it records a message, not yet committed,
    that the message update below could not see (it went out to the erased address), and keeps the next
    batch from recording one until this transaction ends. KEY SHARE, not a stronger lock: the runner's
    record_on_path (message → step → run, FOR NO KEY UPDATE) is not kept waiting by it, so the message
    update, which may wait for that runner, cannot close a circle (a deadlock on PostgreSQL).

    Then messages, then runs: the runner records a send's outcome in that order too, so the two never
    wait on each other."""
    from backend.workflows import storage as wf
    from backend.workflows.intake import cancel_pending
    from backend.workflows.runner import record_on_path
    runs, m = wf.runs, wf.messages
    conn.execute(select(runs.c.id).where(runs.c.contact_id == contact_id, runs.c.state == wf.IN_PROGRESS)
                 .order_by(runs.c.id).with_for_update(read=True, key_share=True)).all()   # FOR KEY SHARE
    note = f"not sent: the contact was {what} before it went out"
    unsent = conn.execute(update(m).where(m.c.contact_id == contact_id, m.c.status == wf.SENDING, m.c.sent_at.is_(None))
                          .values(status=wf.MSG_FAILED, error=note).returning(m.c.id)).scalars().all()
    conn.execute(update(m).where(m.c.contact_id == contact_id).values(**messages))
    ids = [x.id for x in conn.execute(
        update(runs).where(runs.c.contact_id == contact_id, runs.c.state == wf.IN_PROGRESS)
        .values(state=wf.STOPPED, finished_at=now, error=f"stopped: the contact was {what}").returning(runs.c.id)).all()]
    if ids:
        cancel_pending(conn, ids, now)
    for mid in unsent:
        record_on_path(conn, mid, wf.MSG_FAILED, note)


def _unlink(conn, contact_id: int, now: datetime) -> dict:
    """Delete the contact and every link to it. A link left behind would name the next contact given this id
    (SQLite gives a new row the largest id + 1): a stranger would inherit this contact's history."""
    from backend.workflows import storage as wf
    _stop_runs(conn, contact_id, now, "deleted", {"contact_id": None})
    n = conn.execute(update(ORDERS).where(ORDERS.c.contact_id == contact_id).values(contact_id=None, updated_at=now)).rowcount
    # An event's params and a run's context name the contact as well (`contactId`, the name templates and
    # the in_segment condition read): unlinked there too, or they would name the next holder of the id.
    events = conn.execute(select(EVENTS.c.id, EVENTS.c.params).where(EVENTS.c.contact_id == contact_id)).all()
    for e in events:
        conn.execute(update(EVENTS).where(EVENTS.c.id == e.id)
                     .values(contact_id=None, params=json.dumps(_without_contact(json.loads(e.params), contact_id))))
    runs = wf.runs
    for r in conn.execute(select(runs.c.id, runs.c.context).where(runs.c.contact_id == contact_id)).all():
        context = json.loads(r.context)
        if isinstance(context.get("params"), dict):
            context["params"] = _without_contact(context["params"], contact_id)
        conn.execute(update(runs).where(runs.c.id == r.id).values(contact_id=None, context=json.dumps(context)))
    conn.execute(CONTACTS.delete().where(CONTACTS.c.id == contact_id))
    return {"orders": n, "events": len(events)}


def _without_contact(params: dict, contact_id: int) -> dict:
    return {**params, "contactId": None} if params.get("contactId") == contact_id else params


# ---- our read extensions -------------------------------------------------------------------

def _listing(q, table, name: str, to_json):
    limit, after = page_args()
    with get_engine().connect() as conn:
        rows = conn.execute(q.where(table.c.id > after).order_by(table.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({name: [to_json(r) for r in rows], "next": encode_cursor(rows[-1].id) if more else None})


def _order_json(r) -> dict:
    return {**json.loads(r.payload), "id": r.id, "contactId": r.contact_id}


@bp.get("/orders")
def list_orders():
    q = select(ORDERS.c.id, ORDERS.c.contact_id, ORDERS.c.payload)
    if status := request.args.get("status"):
        q = q.where(ORDERS.c.status == status.upper())
    if (cid := int_arg("contactId")) is not None:
        q = q.where(ORDERS.c.contact_id == cid)
    return _listing(q, ORDERS, "orders", _order_json)


class AnyPath(PathConverter):
    """A path segment that may itself start with, or be, a slash: an externalOrderId is any string, and a client
    that quotes `/A-1` as %2F sends `/orders//A-1` (the path converter needs a first character that is not `/`)."""

    regex = ".+?"
    part_isolating = False      # spans several path segments (Werkzeug guesses True: the regex has no '/')


@bp.record_once
def _converter(state) -> None:
    state.app.url_map.converters.setdefault("anypath", AnyPath)


# merge_slashes off: `//A-1` would be redirected to `/A-1`, another order's id
@bp.get("/orders/<anypath:external_order_id>", merge_slashes=False)
def get_order(external_order_id: str):
    """The stored order exactly as an add-orders object; our ids travel in headers."""
    with get_engine().connect() as conn:
        r = conn.execute(select(ORDERS.c.id, ORDERS.c.contact_id, ORDERS.c.payload)
                         .where(ORDERS.c.external_order_id == external_order_id)).first()
    if r is None:
        raise ApiError(404, f"no order with externalOrderId {external_order_id!r}")
    resp = Response(r.payload, mimetype="application/json")
    resp.headers["X-Order-Id"] = str(r.id)
    if r.contact_id is not None:
        resp.headers["X-Contact-Id"] = str(r.contact_id)
    return resp


def event_json(r) -> dict:
    return {"id": r.id, "type": r.type, "key": r.key, "contactId": r.contact_id, "orderId": r.order_id,
            "params": json.loads(r.params), "createdAt": iso(r.created_at)}


@bp.get("/events")
def list_events():
    q = select(EVENTS)
    if t := request.args.get("type"):
        q = q.where(EVENTS.c.type == t)
    if k := request.args.get("key"):
        q = q.where(EVENTS.c.key == k)
    if (cid := int_arg("contactId")) is not None:
        q = q.where(EVENTS.c.contact_id == cid)
    if since := request.args.get("since"):
        try:
            q = q.where(EVENTS.c.created_at >= parse_date(since, naive_as_utc=True))
        except ValueError as e:
            raise ApiError(400, f"since: {e}") from None
    return _listing(q, EVENTS, "events", event_json)


@bp.get("/contacts/<int:contact_id>")
def get_contact(contact_id: int):
    if contact_id > MAX_ID:
        raise ApiError(404, f"no contact with id {contact_id}")
    with get_engine().connect() as conn:
        c = contacts.get(conn, contact_id)
        if c is None:
            raise ApiError(404, f"no contact with id {contact_id}")
        count, last = conn.execute(select(func.count(), func.max(ORDERS.c.date))
                                   .where(ORDERS.c.contact_id == contact_id)).one()
    return jsonify({"id": c.id, "externalCustomerId": c.external_customer_id, "email": c.email,
                    "phone": c.phone, "firstName": c.first_name, "lastName": c.last_name,
                    "createdAt": iso(c.created_at), "updatedAt": iso(c.updated_at), "erasedAt": iso(c.erased_at),
                    "ordersInfo": {"count": count, "lastDate": iso(last)}})
