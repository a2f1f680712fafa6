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

    Pages are read oldest id first (`orderby=id&order=asc`: new orders land on the last page, so pages
    already read do not shift) and the last page done is stored with the enqueued orders in one commit;
    an interrupted run resumes after it. Unchanged orders are no-ops (content hash), so a rerun is cheap.
    """
    woo = client or WooClient(shop)
    per_page = max(1, min(int(shop.get("per_page", MAX_PER_PAGE)), MAX_PER_PAGE))
    start = _since(since)
    params = {"orderby": "id", "order": "asc", "per_page": per_page, "dates_are_gmt": "true"}
    if start:
        params["modified_after"] = start
    with Session(engine) as s:
        saved = cursors.read(s, shop.name, CURSOR) or {}
    page = saved.get("page", 0) + 1 if saved.get("since") == start else 1
    batch = woo.get_page("orders", {**params, "page": page})
    enqueued = 0
    with tqdm(total=batch.total, initial=min((page - 1) * per_page, batch.total or 0), unit="order",
              desc=f"backfill {shop.name}", disable=not progress) as bar:
        while True:
            with Session(engine) as s:
                n, _ = store_page(s, shop, batch.items, "backfill")
                cursors.write(s, shop.name, CURSOR, {"since": start, "page": page})
                s.commit()
            enqueued += n
            bar.update(len(batch.items))
            if page >= batch.total_pages or not batch.items:
                break
            page += 1
            batch = woo.get_page("orders", {**params, "page": page})
    with Session(engine) as s:
        cursors.clear(s, shop.name, CURSOR)
        s.commit()
    return enqueued


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
