"""The UI's pages: orders, event history, contacts, workflows and their runs, messages, reports."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, session,
                   url_for)
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from backend import reports, reports_api, segments, throttle
from backend.db import get_engine, write_transaction
from backend.paging import MAX_ID, whole_number
from backend.reports_api import (cached, report_options, revenue_cached, rfm_cached, rfm_erased_cached,
                                 rfm_members_cached)
from backend.segments import InvalidSegment, SegmentFilter
from backend.ui import present, queries
from backend.ui import session as auth
from backend.workflows.storage import RUN_STATES
from connector.format import parse_date
from connector.money import ISO_4217, minor_unit

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")

PUBLIC_ENDPOINTS = {"ui.login", "ui.static"}
RUN_TABS = (("in_progress", "In progress"), ("completed", "Completed"), ("stopped", "Stopped"),
            ("error", "With errors"))
# Scripts and styles only from this site; message bodies render in a sandboxed frame.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")




@bp.before_request
def guard():
    if request.endpoint in PUBLIC_ENDPOINTS:
        auth.check_csrf()
        return None
    if not auth.logged_in():
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    auth.check_csrf()
    return None


@bp.before_request                     # after guard: a visitor who is not logged in goes to the login page
def ids_in_range():
    """An id beyond any column's range is a page that does not exist, not a database error."""
    if any(isinstance(v, int) and v > MAX_ID for v in (request.view_args or {}).values()):
        abort(404, description="no such record")


@bp.after_request
def headers(resp):
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "ui.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(HTTPException)
def http_error(e: HTTPException):
    return render_template("error.html", code=e.code, message=e.description), e.code or 500


@bp.app_context_processor
def template_helpers():
    return {"csrf_token": auth.csrf_token, "url_with": url_with, "fmt_dt": fmt_dt, "fmt_money": fmt_money,
            "nav_extra": current_app.config.get("UI_NAV_EXTRA", [])}


def url_with(**changes) -> str:
    """The current page's URL with some query arguments changed (None removes one)."""
    # url_for reads `_external`, `_anchor`, `_method`... as its own options: a query argument never is one
    args = {k: v for k, v in request.args.items() if v != "" and not k.startswith("_")}
    for k, v in changes.items():
        if v is None:
            args.pop(k, None)
        else:
            args[k] = v
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def fmt_money(amount, currency) -> str:
    """An amount with its currency's own decimals (12.345 KWD, 1500 JPY, 10.50 USD)."""
    if amount is None:
        return ""
    try:
        places = minor_unit(str(currency or ""))
    except (KeyError, ValueError):
        places = 2
    return f"{float(amount):.{places}f}"


def fmt_dt(value) -> str:
    if value is None:
        return ""
    return reports.as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- argument parsing: a bad value is a 400 that names it ------------------------------------

def int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if raw == "":
        return None
    value = whole_number(raw)
    if value is None:
        abort(400, description=f"{name}: expected a whole number, got {raw[:20]!r}")
    return value


def date_arg(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if raw == "":
        return None
    try:
        return reports_api.query_date(name, raw)
    except ValueError as e:
        abort(400, description=str(e))


def text_arg(name: str) -> str | None:
    raw = request.args.get(name, "").strip()
    return raw or None


# --- login -----------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    wait = throttle.take_try() if request.method == "POST" else 0
    if wait:                           # the password is not even looked at
        error = f"Too many failed attempts from your address: try again in {wait} seconds."
        page = render_template("login.html", error=error, next=request.values.get("next", ""))
        return page, 429, {"Retry-After": str(wait)}
    if request.method == "POST":
        password = request.form.get("password", "")
        wrong = False
        try:
            ok = auth.credentials_ok(password)
            wrong = not ok and bool(password)       # an empty form tried nothing
        finally:
            throttle.end_try(wrong, "UI login")     # the try is given back unless a password was wrong
        if ok:
            target = auth.safe_next(request.form.get("next"))
            auth.log_in(password)
            return redirect(target)
        error = "That password or API key is not valid."
    return render_template("login.html", error=error, next=request.values.get("next", "")), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/")
def home():
    return redirect(url_for("ui.orders"))


# --- orders and events -----------------------------------------------------------------------

@bp.get("/orders")
def orders():
    f = {"q": text_arg("q"), "status": text_arg("status"), "currency": text_arg("currency"),
         "contact": int_arg("contact")}
    with get_engine().connect() as conn:
        page = queries.orders(conn, f["q"], f["status"] and f["status"].upper(),
                              f["currency"] and f["currency"].upper(), f["contact"], int_arg("before"))
    return render_template("orders.html", page=page, f=f, pretty=queries.pretty_json,
                           statuses=("INITIALIZED", "IN_PROGRESS", "DELIVERED", "CANCELLED",
                                     "ABANDONED_SHOPPING_CART"))


@bp.get("/orders/<int:order_id>")
def order(order_id: int):
    with get_engine().connect() as conn:
        row = queries.order(conn, order_id)
    if row is None:
        abort(404, description=f"no order with id {order_id}")
    return render_template("order.html", o=row, pretty=queries.pretty_json)


@bp.get("/events")
def events():
    f = {"type": text_arg("type"), "key": text_arg("key"), "contact": int_arg("contact"),
         "since": request.args.get("since", ""), "until": request.args.get("until", "")}
    with get_engine().connect() as conn:
        page = queries.events(conn, f["type"], f["key"], f["contact"], date_arg("since"), date_arg("until"),
                              int_arg("before"))
        types = queries.event_types(conn)
    return render_template("events.html", page=page, f=f, types=types)


# --- contacts --------------------------------------------------------------------------------

def rfm_arg() -> tuple[int, int] | None:
    raw = text_arg("rfm")
    if raw is None:
        return None
    parts = raw.split("-")
    if len(parts) != 2 or not all(whole_number(p) is not None for p in parts) \
            or int(parts[0]) >= len(reports.RECENCY_BINS) or int(parts[1]) >= len(reports.FREQUENCY_BINS):
        abort(400, description=f"rfm: expected <recency bin>-<frequency bin> such as 0-1, got {raw[:20]!r}")
    return int(parts[0]), int(parts[1])


@bp.get("/contacts")
def contacts():
    params = {k: v for k, v in request.args.items() if k in segments.PARAMS}
    try:
        seg = SegmentFilter.from_params(params)
    except InvalidSegment as e:
        abort(400, description=str(e))
    cell, at = rfm_arg(), date_arg("at")
    with get_engine().connect() as conn:
        within = rfm_members_cached(conn, at, *cell) if cell else None
        found, nxt = segments.find_contacts(conn, seg, queries.PAGE, int_arg("after"), within)
        saved = queries.saved_segments(conn)
        # the report's cell counts erased contacts (anonymous, so counts stay put); the list cannot show them
        erased = rfm_erased_cached(conn, at, *cell) if cell else 0
    cell_label = (reports.RECENCY_BINS[cell[0]][0], reports.FREQUENCY_BINS[cell[1]][0]) if cell else None
    return render_template("contacts.html", contacts=found, next_after=nxt, params=request.args,
                           cell_label=cell_label, fields=segments.PARAMS, seg=seg, saved=saved,
                           saved_params=saved_params, erased=erased)


def saved_params(row) -> dict:
    return json.loads(row.filters)


@bp.post("/segments")
def save_segment():
    """Save the filters of the contacts page as a named segment (for workflow conditions)."""
    filters = {k: v for k, v in request.form.items() if k in segments.PARAMS and v.strip()}
    try:
        name, seg = segments.parse_saved({"name": request.form.get("name", ""), "filters": filters})
    except InvalidSegment as e:
        abort(400, description=str(e))
    if seg.is_empty():
        abort(400, description="filters: set at least one condition before saving a segment")
    stamp = now()
    try:
        with write_transaction(get_engine()) as conn:
            conn.execute(segments.SavedSegment.__table__.insert().values(
                name=name, filters=json.dumps(seg.to_params(), sort_keys=True), created_at=stamp, updated_at=stamp))
    except IntegrityError:
        abort(409, description=f"name: a saved segment named {name!r} already exists")
    flash(f"Segment {name!r} saved.", "info")
    return redirect(url_for("ui.contacts", **seg.to_params()))


@bp.post("/segments/<int:segment_id>/delete")
def delete_segment(segment_id: int):
    with write_transaction(get_engine()) as conn:
        gone = conn.execute(segments.SavedSegment.__table__.delete()
                            .where(segments.SavedSegment.__table__.c.id == segment_id)).rowcount
    flash("Segment deleted." if gone else "That segment was already gone.", "info")
    return redirect(url_for("ui.contacts"))


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int):
    with get_engine().connect() as conn:
        c = queries.contact(conn, contact_id)
        if c is None:
            abort(404, description=f"no contact with id {contact_id}")
        card = {"orders": queries.contact_orders(conn, contact_id),
                "events": queries.contact_events(conn, contact_id),
                "messages": queries.contact_messages(conn, contact_id),
                "rfm": reports.rfm_cell_of(conn, contact_id, now())}
    return render_template("contact.html", c=c, **card)


# --- workflows and messages ------------------------------------------------------------------

@bp.get("/workflows")
def workflows():
    with get_engine().connect() as conn:
        rows, counts = queries.workflows(conn), queries.run_counts(conn)
    return render_template("workflows.html", workflows=rows, counts=counts, tabs=RUN_TABS)


@bp.get("/workflows/<int:workflow_id>")
def workflow(workflow_id: int):
    tab = request.args.get("tab", "in_progress")
    if tab not in RUN_STATES:
        abort(400, description=f"tab: expected one of {', '.join(RUN_STATES)}")
    with get_engine().connect() as conn:
        w = queries.workflow(conn, workflow_id)
        if w is None:
            abort(404, description=f"no workflow with id {workflow_id}")
        counts = queries.run_counts(conn, workflow_id).get(workflow_id, {})
        page = queries.runs(conn, workflow_id, tab, int_arg("before"))
    return render_template("workflow.html", w=w, counts=counts, page=page, tab=tab, tabs=RUN_TABS,
                           pretty=queries.pretty_json)


@bp.get("/runs/<int:run_id>")
def run(run_id: int):
    with get_engine().connect() as conn:
        r = queries.run(conn, run_id)
        if r is None:
            abort(404, description=f"no workflow run with id {run_id}")
        steps, w = queries.run_steps(conn, run_id), queries.workflow(conn, r.workflow_id)
    return render_template("run.html", r=r, steps=steps, w=w, pretty=queries.pretty_json)


@bp.get("/messages")
def messages():
    f = {"workflow": int_arg("workflow"), "contact": int_arg("contact"), "status": text_arg("status")}
    with get_engine().connect() as conn:
        page = queries.messages(conn, f["workflow"], f["contact"], f["status"], int_arg("before"))
    return render_template("messages.html", page=page, f=f)


@bp.get("/messages/<int:message_id>")
def message(message_id: int):
    with get_engine().connect() as conn:
        m = queries.message(conn, message_id)
    if m is None:
        abort(404, description=f"no message with id {message_id}")
    return render_template("message.html", m=m)


# --- reports ---------------------------------------------------------------------------------

def now() -> datetime:
    return datetime.now(timezone.utc)


def report_currency(conn) -> str:
    raw = text_arg("currency")
    if raw:
        if raw.upper() not in ISO_4217:
            abort(400, description=f"currency: {raw[:10]!r} is not an ISO 4217 currency code")
        return raw.upper()
    configured = report_options().get("currency")
    used = cached(conn, ("currencies",), lambda: queries.delivered_currencies(conn))
    return configured or next(iter(used), "USD")


def window_days() -> float:
    try:
        return reports_api.window_days(request.args.get("windowDays"))
    except ValueError as e:
        abort(400, description=str(e))


def through_arg(name: str) -> datetime | None:
    """An end date the page reads as 'to DATE': a bare date (2026-05-31) counts that whole day."""
    return reports_api.through(request.args.get(name, ""), date_arg(name))


@bp.get("/reports")
def reports_page():
    # The chart shows the last CHART_DAYS days; the page counts the same period unless asked otherwise.
    since_text = request.args.get("since") or (now().date() - timedelta(days=present.CHART_DAYS - 1)).isoformat()
    with get_engine().connect() as conn:
        rfm = rfm_cached(conn, date_arg("at"))
        currency, window = report_currency(conn), window_days()
        since = date_arg("since") if request.args.get("since") else parse_date(since_text, naive_as_utc=True)
        revenue = revenue_cached(conn, currency, window, since, through_arg("until"))
        currencies = cached(conn, ("currencies",), lambda: queries.delivered_currencies(conn))
    return render_template("reports.html", rfm=rfm, grid=present.rfm_grid(rfm),
                           recency_labels=present.recency_labels_left_to_right(),
                           revenue=revenue, chart=present.revenue_chart(revenue["series"]),
                           currencies=currencies, at_param=request.args.get("at", ""), since_text=since_text)
