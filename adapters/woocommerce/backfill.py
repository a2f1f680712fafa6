"""`orderbridge backfill SHOP`: pull the shop's whole order history into the outbox, page by page, resumable."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tqdm import tqdm

from connector import cursors
from adapters.woocommerce.client import WooClient
from adapters.woocommerce.poller import MAX_PER_PAGE, wc_timestamp, store_page
from connector.errors import ConfigError

CURSOR = "backfill"


def run(engine: Engine, shop, *, since=None, progress: bool = True, client: WooClient | None = None) -> int:
    """Enqueue every order (modified on or after `since`, if given); returns the versions enqueued.

    Orders are read oldest id first (`orderby=id&order=asc`: new orders land at the end) by `offset`, and
    each read starts at the last order of the one before. An order trashed or deleted meanwhile moves the
    rest of the list up by one: read by pages, the order that moved onto the page already read would be
    skipped for good. Here the last order read is then no longer the first of the next read, and the
    walk steps back a page and goes on from the last id read; orders it sees again are unchanged
    (content hash). Where the walk stands (offset, last id) is stored with the enqueued orders in one
    commit; an interrupted run resumes there.
    """
    woo = client or WooClient(shop)
    per_page = max(2, min(int(shop.get("per_page", MAX_PER_PAGE)), MAX_PER_PAGE))
    start = _since(since)
    params = {"orderby": "id", "order": "asc", "per_page": per_page, "dates_are_gmt": "true"}
    if start:
        params["modified_after"] = start
    with Session(engine) as s:
        saved = cursors.read(s, shop.name, CURSOR) or {}
    offset, last_id = (saved.get("offset", 0), saved.get("last_id", 0)) if saved.get("since") == start else (0, 0)
    enqueued = 0
    batch = woo.get_page("orders", {**params, "offset": offset})
    with tqdm(total=batch.total, initial=min(offset, batch.total or 0), unit="order", desc=f"backfill {shop.name}",
              disable=not progress) as bar:
        while True:
            items = batch.items
            if offset and last_id and (not items or _id(items[0]) > last_id):
                # the last order read is not where it was: orders before it left the list; read a page back
                offset = max(0, offset - per_page)
                batch = woo.get_page("orders", {**params, "offset": offset})
                continue
            fresh = [o for o in items if _id(o) > last_id]
            if offset and len(items) == per_page and not fresh:
                # a full read of orders all read already: the server (or a proxy before it) ignores `offset`
                raise ConfigError(f"backfill {shop.name}: the shop's REST API answered offset={offset} with orders "
                                  "read already; it seems to ignore `offset` (a caching proxy?); nothing is lost, "
                                  "the orders read so far are enqueued")
            if fresh:
                last_id = max(_id(o) for o in fresh)
            with Session(engine) as s:
                n, _ = store_page(s, shop, fresh, "backfill")
                cursors.write(s, shop.name, CURSOR, {"since": start, "offset": offset + len(items) - 1,
                                                     "last_id": last_id})
                s.commit()
            enqueued += n
            bar.update(len(fresh))
            if len(items) < per_page:
                break
            offset += len(items) - 1        # the next read starts with the last order of this one
            batch = woo.get_page("orders", {**params, "offset": offset})
    with Session(engine) as s:
        cursors.clear(s, shop.name, CURSOR)
        s.commit()
    return enqueued


def _id(order: dict) -> int:
    try:
        return int(order.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _since(value) -> str | None:
    """`--since` as the timestamp `modified_after` wants (UTC; a date means its midnight). WordPress compares
    `after` strictly, so one second earlier makes it "on or after"."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--since {value!r} is not a date (use 2024-01-31 or 2024-01-31T12:00:00+00:00)") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return wc_timestamp(value - timedelta(seconds=1))
