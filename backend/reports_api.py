"""JSON routes for reports and segments: RFM, revenue from workflows, segment queries, saved segments."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend import reports, segments
from backend.auth import protect
from backend.db import get_engine as engine
from backend.errors import ApiError
from backend.paging import MAX_ID, encode_cursor, page_args
from backend.segments import InvalidSegment, SavedSegment, SegmentFilter
from connector.format import parse_date
from connector.money import ISO_4217

bp = protect(Blueprint("reports_api", __name__, url_prefix="/api/v1"))


@bp.before_request                     # after protect's auth check: a stranger still gets 401
def _ids_in_range():
    """An id beyond any column's range names nothing: 404, not a database error."""
    if any(isinstance(v, int) and v > MAX_ID for v in (request.view_args or {}).values()):
        raise ApiError(404, "no such resource")




def report_options() -> dict:
    """The report settings of [backend]: report_currency, revenue_window_days."""
    cfg = current_app.config.get("ORDERBRIDGE")
    opts = cfg.backend.options if cfg is not None else {}
    return {"currency": opts.get("report_currency"),
            "window_days": opts.get("revenue_window_days", reports.DEFAULT_WINDOW_DAYS)}


def _page() -> tuple[int, int | None]:
    limit, after = page_args()
    return limit, after or None


def query_date(name: str, raw: str) -> datetime:
    """A date of a query (`at`, `since`, `until`); ValueError names what is wrong. Years 1900 to 9000: the
    reports reach a year back and forth from it, and year 1 minus a year has no date."""
    try:
        moment = parse_date(raw.strip(), naive_as_utc=True)
    except ValueError as e:
        raise ValueError(f"{name}: {e} (e.g. 2026-01-31 or 2026-01-31T10:00:00+02:00)") from None
    if not 1900 <= moment.year <= 9000:
        raise ValueError(f"{name}: expected a date between the years 1900 and 9000; got {raw.strip()[:40]!r}")
    return moment


def moment_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return query_date(name, raw)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def through(raw: str, end: datetime | None) -> datetime | None:
    """An end date read as 'to DATE': a bare date (2026-05-31) counts that whole day, as a person means it."""
    if end is not None and len(raw.strip()) == len("2026-05-31"):
        return end + timedelta(days=1) - timedelta(microseconds=1)
    return end


def currency_arg() -> str:
    raw = request.args.get("currency") or report_options().get("currency")
    if not raw:
        raise ApiError(400, "currency: required (reports count one currency), e.g. currency=USD")
    code = raw.strip().upper()
    if code not in ISO_4217:
        raise ApiError(400, f"currency: {raw[:10]!r} is not an ISO 4217 currency code")
    return code


def window_days(raw: str | None) -> float:
    """The revenue report's attribution window from `?windowDays=` (the configured one when blank);
    ValueError names what is wrong (the API and the UI each answer it their way)."""
    raw = (raw or "").strip()
    if not raw:
        return report_options()["window_days"]
    try:
        days = float(raw)
    except ValueError:
        days = -1
    if not 0 < days <= 3650:
        raise ValueError(f"windowDays: expected a number of days above 0 (at most 3650), got {raw[:20]!r}")
    return int(days) if days == int(days) else days


def window_arg() -> float:
    try:
        return window_days(request.args.get("windowDays"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def cached(conn, key: tuple, compute):
    """A report from this app's cache while the data it reads is unchanged (see ReportCache)."""
    cache = current_app.extensions.setdefault("orderbridge.report_cache", reports.ReportCache())
    return cache.get(key, reports.data_version(conn), compute)


def rfm_cached(conn, at: datetime | None) -> dict:
    return cached(conn, ("rfm", at), lambda: reports.rfm(conn, at))


def revenue_cached(conn, currency: str, window: float, since=None, until=None) -> dict:
    return cached(conn, ("revenue", currency, window, since, until),
                  lambda: reports.revenue(conn, currency, window, since, until))


def rfm_members_cached(conn, at: datetime | None, recency: int, frequency: int) -> list[int]:
    moment = at or datetime.now(timezone.utc)
    return cached(conn, ("rfm-cell", at, recency, frequency),
                  lambda: reports.rfm_cell_members(conn, moment, recency, frequency))


def rfm_erased_cached(conn, at: datetime | None, recency: int, frequency: int) -> int:
    moment = at or datetime.now(timezone.utc)
    return cached(conn, ("rfm-cell-erased", at, recency, frequency),
                  lambda: reports.rfm_cell_erased(conn, moment, recency, frequency))


@bp.get("/reports/rfm")
def rfm_report():
    at = moment_arg("at")
    with engine().connect() as conn:
        return jsonify(rfm_cached(conn, at))


@bp.get("/reports/revenue")
def revenue_report():
    currency, window = currency_arg(), window_arg()
    since, until = moment_arg("since"), through(request.args.get("until", ""), moment_arg("until"))
    with engine().connect() as conn:
        return jsonify(revenue_cached(conn, currency, window, since, until))


def segment_from_args() -> SegmentFilter:
    params = {k: v for k, v in request.args.items() if k not in ("limit", "cursor")}
    try:
        return SegmentFilter.from_params(params, strict=True)
    except InvalidSegment as e:
        raise ApiError(400, str(e)) from None


@bp.get("/segments")
def segment_query():
    seg = segment_from_args()
    limit, cursor = _page()
    with engine().connect() as conn:
        found, nxt = segments.find_contacts(conn, seg, limit, cursor)
    return jsonify({"contacts": found, "next": encode_cursor(nxt)})


# --- saved segments --------------------------------------------------------------------------

def body_json():
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "body: expected JSON {\"name\": ..., \"filters\": {...}}")
    return body


def saved_or_404(session: Session, seg_id: int) -> SavedSegment:
    row = session.get(SavedSegment, seg_id)
    if row is None:
        raise ApiError(404, f"no saved segment with id {seg_id}")
    return row


def store_saved(session: Session, row: SavedSegment, name: str, seg: SegmentFilter):
    row.name, row.filters = name, json.dumps(seg.to_params(), sort_keys=True)
    row.updated_at = datetime.now(timezone.utc)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, f"name: a saved segment named {name!r} already exists") from None
    session.refresh(row)
    return row


def parsed_body():
    try:
        return segments.parse_saved(body_json())
    except InvalidSegment as e:
        raise ApiError(400, str(e)) from None


@bp.get("/segments/saved")
def saved_list():
    limit, cursor = _page()
    with Session(engine()) as s:
        q = select(SavedSegment).order_by(SavedSegment.id).limit(limit + 1)
        if cursor is not None:
            q = q.where(SavedSegment.id > cursor)
        rows = list(s.exec(q))
        nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return jsonify({"segments": [segments.segment_json(r) for r in rows[:limit]], "next": nxt})


@bp.post("/segments/saved")
def saved_create():
    name, seg = parsed_body()
    with Session(engine()) as s:
        row = store_saved(s, SavedSegment(name=name, filters="{}",
                                          created_at=datetime.now(timezone.utc)), name, seg)
        return jsonify(segments.segment_json(row)), 201


@bp.get("/segments/saved/<int:seg_id>")
def saved_get(seg_id: int):
    with Session(engine()) as s:
        return jsonify(segments.segment_json(saved_or_404(s, seg_id)))


@bp.put("/segments/saved/<int:seg_id>")
def saved_update(seg_id: int):
    name, seg = parsed_body()
    with Session(engine()) as s:
        return jsonify(segments.segment_json(store_saved(s, saved_or_404(s, seg_id), name, seg)))


@bp.delete("/segments/saved/<int:seg_id>")
def saved_delete(seg_id: int):
    with Session(engine()) as s:
        s.delete(saved_or_404(s, seg_id))
        s.commit()
    return "", 204


@bp.get("/segments/saved/<int:seg_id>/contacts")
def saved_contacts(seg_id: int):
    limit, cursor = _page()
    with Session(engine()) as s:
        try:
            seg = segments.saved_filter(saved_or_404(s, seg_id))
        except InvalidSegment as e:
            raise ApiError(400, str(e)) from None
        found, nxt = segments.find_contacts(s, seg, limit, cursor)
    return jsonify({"contacts": found, "next": encode_cursor(nxt)})
