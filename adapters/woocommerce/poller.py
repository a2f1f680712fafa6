"""The WooCommerce safety net: pull orders modified since the stored cursor (minus an overlap) into the outbox."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from adapters.woocommerce import sink
from connector import cursors
from adapters.woocommerce.client import WooClient, has_credentials, products_for
from adapters.woocommerce.translate import gmt_date, options_of, translate
from connector.config import parse_duration
from connector.errors import FatalAPIError, InvalidInput
from connector.outbox import known_orders

__all__ = ["poll", "has_credentials", "store_page", "next_window", "wc_timestamp"]
log = logging.getLogger(__name__)
CURSOR = "orders"
TRASH_CURSOR = "orders-trash"
MAX_PER_PAGE = 100   # WooCommerce refuses more (REST collection params)


@dataclass(frozen=True)
class _Walk:
    """Which orders a walk reads, where its cursor is kept, and whether it sends only orders sent before."""

    cursor: str
    status: str | None = None       # None: WooCommerce's default, "any", which leaves trashed orders out
    known_only: bool = False


ORDERS = _Walk(CURSOR)
# A trashed order reaches us only as order.deleted, which WooCommerce never delivers again once it failed.
# Trashing sets the modification date (wp_trash_post; HPOS trash_order), so this walk finds it; like
# order.deleted, it cancels only orders sent before.
TRASH = _Walk(TRASH_CURSOR, status="trash", known_only=True)


def poll(engine: Engine, shop, *, now: datetime | None = None, client: WooClient | None = None) -> int:
    """One poll of the shop; returns the number of order versions enqueued.

    Walks `GET /orders?modified_after=..&dates_are_gmt=true&orderby=modified&order=asc` page by page;
    each page is enqueued and the cursor (newest date_modified_gmt seen) advanced in one commit. Then
    the same for `status=trash`, with a cursor of its own.
    """
    woo = client or WooClient(shop)
    now = now or datetime.now(timezone.utc)
    enqueued, by_id = _poll(engine, shop, woo, now, ORDERS, False)
    try:
        n, _ = _poll(engine, shop, woo, now, TRASH, by_id)
    except FatalAPIError as e:
        if not _invalid_param(e, "status"):
            raise
        log.warning("shop %s: this WooCommerce does not list trashed orders (status=trash): %s", shop.name, e)
        n = 0
    return enqueued + n


def _poll(engine: Engine, shop, woo: WooClient, now: datetime, walk: _Walk, by_id: bool) -> tuple[int, bool]:
    """One walk; returns the versions enqueued and whether the shop had to be walked by id."""
    per_page = max(1, min(int(shop.get("per_page", MAX_PER_PAGE)), MAX_PER_PAGE))
    with Session(engine) as s:
        saved = cursors.read(s, shop.name, walk.cursor)
    newest = gmt_date(saved.get("modified_after")) if saved else None
    after = start_of_window(shop, newest, now)
    if not by_id:
        try:
            return _walk_by_modified(engine, shop, woo, after, newest, per_page, walk), False
        except FatalAPIError as e:
            if e.status != 400 or "orderby" not in e.body:
                raise
            log.warning("shop %s: this WooCommerce cannot sort orders by modification date; polling by id", shop.name)
    return _walk_by_id(engine, shop, woo, after, newest, per_page, walk), True


def _invalid_param(e: FatalAPIError, name: str) -> bool:
    """True when WooCommerce refused the request for this one parameter (400 rest_invalid_param)."""
    try:
        body = json.loads(e.body)
    except ValueError:
        return False
    data = body.get("data") if isinstance(body, dict) else None
    params = data.get("params") if isinstance(data, dict) else None
    # params is an object only when body is one: body.get is safe after it (a 400 may carry any JSON)
    return e.status == 400 and isinstance(params, dict) and body.get("code") == "rest_invalid_param" and name in params


def start_of_window(shop, newest: datetime | None, now: datetime) -> datetime:
    """The cursor minus the overlap (late commits, clock steps); with no cursor yet, `poll_since` ago."""
    if newest is not None:
        return newest - timedelta(seconds=parse_duration(shop.get("poll_overlap", "10m"), f"[[shops]] {shop.name} poll_overlap"))
    return now - timedelta(seconds=parse_duration(shop.get("poll_since", "1d"), f"[[shops]] {shop.name} poll_since"))


def _query(after: datetime, orderby: str, per_page: int, page: int, walk: _Walk = ORDERS) -> dict:
    query = {"modified_after": wc_timestamp(after), "dates_are_gmt": "true", "orderby": orderby, "order": "asc",
             "per_page": per_page, "page": page}
    return {**query, "status": walk.status} if walk.status else query


def _walk_by_modified(engine, shop, woo: WooClient, after: datetime, newest, per_page: int,
                      walk: _Walk = ORDERS) -> int:
    page, enqueued = 1, 0
    while True:
        batch = woo.get_page("orders", _query(after, "modified", per_page, page, walk))
        n, page_newest = _commit_page(engine, shop, batch.items, newest, walk=walk)
        newest, enqueued = max(filter(None, (newest, page_newest)), default=None), enqueued + n
        if page >= batch.total_pages or len(batch.items) < per_page:
            return enqueued
        after, page = next_window(after, page, page_newest)


def _walk_by_id(engine, shop, woo: WooClient, after: datetime, newest, per_page: int,
                walk: _Walk = ORDERS) -> int:
    """For stores without orderby=modified. With a fixed window sorted by id, changes during the walk only
    add orders to the window (a re-read, never a skip); pages are not in modification order, so the
    cursor moves only with the last page."""
    page, enqueued, seen = 1, 0, newest
    while True:
        batch = woo.get_page("orders", _query(after, "id", per_page, page, walk))
        last = page >= batch.total_pages or len(batch.items) < per_page
        n, page_newest = _commit_page(engine, shop, batch.items, seen, advance=last, walk=walk)
        seen, enqueued = max(filter(None, (seen, page_newest)), default=None), enqueued + n
        if last:
            return enqueued
        page += 1


def _commit_page(engine, shop, orders: list, cursor_floor: datetime | None, advance: bool = True,
                 walk: _Walk = ORDERS):
    """Enqueue a page; when `advance`, move the cursor in the same commit to the newest modification seen
    (this page's or `cursor_floor`, whichever is later). Returns (versions enqueued, this page's newest)."""
    with Session(engine) as s:
        n, page_newest = store_page(s, shop, orders, "poll", known_only=walk.known_only)
        target = max(filter(None, (page_newest, cursor_floor)), default=None)
        if advance and target is not None:
            cursors.write(s, shop.name, walk.cursor, {"modified_after": wc_timestamp(target)})
        s.commit()
    return n, page_newest


def next_window(after: datetime, page: int, page_newest: datetime | None) -> tuple[datetime, int]:
    """Where the next request starts. Orders changed during the walk move to the end of an orderby=modified
    list and would push an unread order back onto a page already read; so restart at page 1 from the newest
    modification seen (minus a second: WordPress compares `after` strictly, by whole seconds). When a whole
    page shares that second the window cannot move, so step to the next page instead."""
    if page_newest is not None and page_newest - timedelta(seconds=1) > after:
        return page_newest - timedelta(seconds=1), 1
    return after, page + 1


def store_page(session: Session, shop, orders: list, source: str, *,
               known_only: bool = False) -> tuple[int, datetime | None]:
    """Translate and enqueue one page; returns (versions enqueued, newest date_modified_gmt on the page).

    With `known_only`, orders never enqueued before are skipped (their modification still counts)."""
    options, enqueued, newest = options_of(shop), 0, None
    if known_only:
        orders = [o for o in orders if isinstance(o, dict)]
        oid = {id(o): f"{options.order_id_prefix}{o.get('id')}" for o in orders}
        sent = known_orders(session, shop.name, list(oid.values()))
        newest = max(filter(None, (gmt_date(o.get("date_modified_gmt")) for o in orders)), default=None)
        orders = [o for o in orders if oid[id(o)] in sent]
    products = products_for(shop, orders) if orders else {}
    for raw in orders:
        try:
            t = translate(raw, options, products)
        except InvalidInput as e:
            sink.store_untranslatable(session, shop.name, raw, str(e), source)
            continue
        n, reason = sink.store(session, shop.name, t, source)
        if reason:
            log.info("shop %s: %s", shop.name, reason)
        enqueued += n
        if t.updated_at and (newest is None or t.updated_at > newest):
            newest = t.updated_at
    return enqueued, newest


def wc_timestamp(dt: datetime) -> str:
    # WooCommerce wants ISO 8601 without an offset; with dates_are_gmt=true it reads it as UTC.
    return dt.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
