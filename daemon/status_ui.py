"""The connector status page under `orderbridge up`: outbox counts, failed orders (requeue), last push and polls.

It reads the connector store, so it lives on the connector side and is mounted on the backend
app by `up` (`register_status_ui`), behind the backend UI's login and CSRF checks.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from flask import (Blueprint, Flask, current_app, flash, redirect, render_template, request,
                   url_for)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backend.paging import whole_number
from backend.ui import add_nav
from backend.ui import session as ui_session
from backend.ui import views as ui_views
from connector import outbox as outbox_ops
from connector.flush import PAUSE_NAME, PAUSE_SHOP, paused_until
from connector.store import (FAILED, INBOX_DONE, INBOX_FAILED, INBOX_IGNORED, INBOX_NEW, OUTBOX_STATES,
                             Cursor, InboxDelivery, OutboxRow, PushAttempt)

OUTBOX, INBOX = OutboxRow.__table__, InboxDelivery.__table__
CURSORS, PUSHES = Cursor.__table__, PushAttempt.__table__
INBOX_STATES = (INBOX_NEW, INBOX_DONE, INBOX_IGNORED, INBOX_FAILED)
PAGE = 50
ENGINE_KEY = "orderbridge.connector_engine"

bp = Blueprint("connector_status", __name__, url_prefix="/ui/connector", template_folder="templates")


# The UI's own headers (CSP, nosniff, no-store): this page shows shop cursors and error texts too.
bp.after_request(ui_views.headers)


@bp.before_request
def guard():
    if not ui_session.logged_in():
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    ui_session.check_csrf()
    return None


def engine() -> Engine:
    return current_app.extensions[ENGINE_KEY]


def register_status_ui(app: Flask, config, engine: Engine | None = None) -> None:
    """Mount the page on the backend app; opens the connector store of `config` unless given one."""
    if engine is None:
        from connector.store import init_db, make_engine
        engine = make_engine(config.database)
        init_db(engine)
    app.extensions[ENGINE_KEY] = engine
    app.extensions["orderbridge.connector_shops"] = [s.name for s in config.shops]
    app.register_blueprint(bp)
    add_nav(app, "Connector", "connector_status.status")


# --- reads -----------------------------------------------------------------------------------

def counts(conn, table, states) -> dict:
    found = dict(conn.execute(sa.select(table.c.state, sa.func.count()).group_by(table.c.state)).all())
    return {s: found.get(s, 0) for s in states} | {k: v for k, v in found.items() if k not in states}


def failed_rows(conn, before: int | None):
    q = (sa.select(OUTBOX.c.id, OUTBOX.c.shop, OUTBOX.c.external_order_id, OUTBOX.c.attempts,
                   OUTBOX.c.last_error, OUTBOX.c.source, OUTBOX.c.updated_at)
         .where(OUTBOX.c.state == FAILED))
    if before is not None:
        q = q.where(OUTBOX.c.id < before)
    rows = conn.execute(q.order_by(OUTBOX.c.id.desc()).limit(PAGE + 1)).all()
    return rows[:PAGE], (rows[PAGE - 1].id if len(rows) > PAGE else None)


def last_push(conn):
    return conn.execute(sa.select(PUSHES).order_by(PUSHES.c.id.desc()).limit(1)).first()


def last_polls(conn, shops: list[str]) -> list[dict]:
    """Every cursor (one per shop and stream), and configured shops never polled yet."""
    rows = conn.execute(sa.select(CURSORS).where(sa.not_(sa.and_(CURSORS.c.shop == PAUSE_SHOP, CURSORS.c.name == PAUSE_NAME)))
                        .order_by(CURSORS.c.shop, CURSORS.c.name)).all()
    out = [{"shop": r.shop, "name": r.name, "value": r.value, "updated_at": r.updated_at} for r in rows]
    polled = {r.shop for r in rows}
    return out + [{"shop": s, "name": "", "value": None, "updated_at": None} for s in shops if s not in polled]


# --- pages -----------------------------------------------------------------------------------

@bp.get("/")
def status():
    raw_before = request.args.get("before", "")
    before = whole_number(raw_before)
    with engine().connect() as conn:
        data = {"outbox": counts(conn, OUTBOX, OUTBOX_STATES), "inbox": counts(conn, INBOX, INBOX_STATES),
                "push": last_push(conn), "polls": last_polls(conn, current_app.extensions.get(
                    "orderbridge.connector_shops", []))}
        data["failed"], data["next_before"] = failed_rows(conn, before)
    data["paused_until"] = paused_until(engine(), datetime.now(timezone.utc))
    return render_template("connector_status.html", **data)


@bp.post("/requeue")
def requeue():
    """Failed rows back to pending: the ids ticked, or every failed row with `all`."""
    if request.form.get("all"):
        ids = None
    else:
        ids = [i for i in map(whole_number, request.form.getlist("id")) if i is not None]
        if not ids:
            flash("Nothing to requeue: tick a failed order first.", "error")
            return redirect(url_for("connector_status.status"))
    with Session(engine()) as s:
        result = outbox_ops.requeue(s, ids, datetime.now(timezone.utc))
        s.commit()
    flash(summary(result), "info")
    return redirect(url_for("connector_status.status"))


def summary(result) -> str:
    parts = [f"{len(result.requeued)} order version(s) requeued"]
    if result.superseded:
        parts.append(f"{len(result.superseded)} not re-sent because a newer version exists")
    if result.not_failed:
        parts.append(f"{len(result.not_failed)} were not failed any more")
    return "; ".join(parts) + "."
