"""Backfill a Shopify shop's order history with a bulk operation, resumable after a crash.

The operation id and the number of JSONL lines already enqueued live in the `cursors` table
(name "backfill"), updated in the transaction that enqueues each chunk; a rerun resumes the same
operation (or, once its result has expired, starts a new one: content hashes make repeats no-ops).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date, datetime, timezone
from typing import Callable, Iterable, Iterator

import requests
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from adapters.shopify import graphql as gql
from adapters.shopify.client import ShopifyClient
from connector import cursors
from adapters.shopify.sink import store_orders
from connector.errors import FatalAPIError, RetriableAPIError

log = logging.getLogger(__name__)

CURSOR = "backfill"
CHUNK = 250                      # orders per transaction
FINISHED = ("COMPLETED", "FAILED", "CANCELED", "CANCELLED", "EXPIRED")


def _say(progress: bool, message: str) -> None:
    """Progress for a person at a terminal, or a log line when nobody watches."""
    if progress:
        print(message, file=sys.stderr, flush=True)
    else:
        log.info(message)


def search_for(since: date | datetime | str | None) -> str:
    """The bulk query's search: orders updated on or after `since` (a date means its midnight UTC)."""
    if since is None:
        return ""
    if isinstance(since, datetime):
        since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        text = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(since, date):
        text = f"{since.isoformat()}T00:00:00Z"
    else:
        text = str(since)
    return f"updated_at:>='{text}'"


def check_scopes(client: ShopifyClient, progress: bool) -> tuple[bool, str | None]:
    """Warn when the token lacks read_all_orders (Shopify then shows only the last 60 days); also the
    shop's time zone, for the orders' dates (None when it could not be read: dates stay in UTC)."""
    try:
        data = client.query(gql.SCOPES_QUERY, name="Scopes", cost=2)
    except (FatalAPIError, RetriableAPIError) as e:
        _say(progress, f"could not read the token's scopes ({e}); continuing")
        return True, None
    scopes = {s.get("handle") for s in ((data.get("currentAppInstallation") or {}).get("accessScopes") or ())}
    if "read_all_orders" not in scopes:
        _say(progress, "WARNING: the access token lacks the read_all_orders scope, so Shopify shows only the last "
                       "60 days of orders; request read_all_orders for the full history.")
        return False, gql.shop_timezone(data)
    return True, gql.shop_timezone(data)


def start(client: ShopifyClient, search: str) -> str:
    query = gql.bulk_orders_query(search)
    try:
        data = client.query(gql.BULK_RUN_GROUPED, {"query": query, "groupObjects": True}, name="Run", cost=10)
    except RetriableAPIError as e:
        if "groupObjects" not in str(e):
            raise
        # an API version before 2025-10: no such argument, and the output is grouped anyway
        data = client.query(gql.BULK_RUN, {"query": query}, name="Run", cost=10)
    payload = data.get("bulkOperationRunQuery") or {}
    errors = payload.get("userErrors") or []
    if errors or not payload.get("bulkOperation"):
        raise RetriableAPIError("Shopify refused the bulk operation: " + "; ".join(e.get("message", "") for e in errors))
    return payload["bulkOperation"]["id"]


def wait(client: ShopifyClient, op_id: str, *, interval: float, sleep: Callable[[float], None], progress: bool) -> dict:
    """Poll the operation until it finishes; returns its final node."""
    while True:
        node = (client.query(gql.BULK_STATUS, {"id": op_id}, name="Bulk", cost=1).get("node")) or {}
        status = node.get("status")
        if status in FINISHED or node == {}:
            return node
        _say(progress, f"bulk operation {op_id}: {status}, {node.get('objectCount') or 0} objects so far")
        sleep(interval)


def orders_from_jsonl(lines: Iterable[str], tz: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number after the order, order) for each order; children follow their parent (`__parentId`).
    `tz`: the shop's time zone (gql.order_from_node)."""
    current, lines_of, ships, n = None, [], [], 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        parent = row.get("__parentId")
        if parent is None:
            if current is not None:
                yield n - 1, gql.order_from_node(current, lines_of, ships, tz)
            current, lines_of, ships = row, [], []
        elif current is None or parent != current.get("id"):
            raise ValueError(f"JSONL line {n}: child of {parent} does not follow its parent: the bulk result is "
                             "not grouped by order (bulkOperationRunQuery groupObjects)")
        elif "/ShippingLine/" in str(row.get("id")):
            ships.append(row)
        else:
            lines_of.append(row)
    if current is not None:
        yield n, gql.order_from_node(current, lines_of, ships, tz)


def _stream(url: str) -> Iterator[str]:
    with requests.get(url, stream=True, timeout=300) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            yield line


def ingest(engine: Engine, shop, state: dict, url: str, progress: bool, chunk: int = CHUNK,
           tz: str | None = None) -> int:
    """Enqueue the operation's orders from line `state['lines']` on, `chunk` orders per commit."""
    skip, total, batch, last = int(state.get("lines", 0)), 0, [], 0
    for line_no, order in orders_from_jsonl(_stream(url), tz):
        if line_no <= skip:
            continue
        batch.append(order)
        last = line_no
        if len(batch) >= chunk:
            total += _commit(engine, shop, state, batch, last)
            batch = []
            _say(progress, f"backfill {shop.name}: {state['orders']} orders read, {total} new versions")
    if batch:
        total += _commit(engine, shop, state, batch, last)
    return total


def _commit(engine: Engine, shop, state: dict, batch: list[dict], last_line: int) -> int:
    with Session(engine) as s:
        r = store_orders(s, shop, batch, f"backfill:{state['operation_id']}")
        state.update(lines=last_line, orders=int(state.get("orders", 0)) + len(batch))
        cursors.write(s, shop.name, CURSOR, state)
        s.commit()
    return r.enqueued


def run(engine: Engine, shop, *, since=None, progress: bool = True, client: ShopifyClient | None = None,
        interval: float = 5.0, sleep: Callable[[float], None] = time.sleep, chunk: int = CHUNK) -> int:
    """Pull the shop's order history into the outbox; returns the number of versions enqueued."""
    client = client or ShopifyClient.for_shop(shop)
    _, tz = check_scopes(client, progress)
    with Session(engine) as s:
        state = cursors.read(s, shop.name, CURSOR) or {}
    search = search_for(since)
    if state.get("operation_id") and not state.get("done") and state.get("search") == search:
        _say(progress, f"resuming bulk operation {state['operation_id']} after {state.get('orders', 0)} orders")
    else:
        state = {"operation_id": start(client, search), "search": search, "lines": 0, "orders": 0,
                 "started_at": datetime.now(timezone.utc).isoformat()}
        _save(engine, shop, state)
        _say(progress, f"bulk operation {state['operation_id']} started ({search or 'all orders'})")
    node = wait(client, state["operation_id"], interval=interval, sleep=sleep, progress=progress)
    if node.get("status") != "COMPLETED" or not node.get("url"):
        if node.get("status") == "COMPLETED":    # no url: the operation matched nothing
            state["done"] = True
            _save(engine, shop, state)
            return 0
        _save(engine, shop, {**state, "done": True, "result": node.get("status") or "GONE"})
        raise RetriableAPIError(f"bulk operation {state['operation_id']} ended {node.get('status') or 'unknown'}"
                                f" ({node.get('errorCode') or 'no error code'}); run backfill again to start a new one")
    try:
        total = ingest(engine, shop, state, node["url"], progress, chunk, tz)
    except requests.HTTPError as e:
        # The result URL expires after 7 days: the next run starts a new operation.
        _save(engine, shop, {**state, "done": True, "result": f"download failed: {e}"})
        raise RetriableAPIError(f"the result of bulk operation {state['operation_id']} cannot be downloaded ({e}); "
                                "run backfill again to start a new operation") from None
    except requests.RequestException as e:
        raise RetriableAPIError(f"backfill {shop.name}: download interrupted after {state.get('orders', 0)} orders ({e}); "
                                "run backfill again to resume") from None
    state["done"] = True
    _save(engine, shop, state)
    _say(progress, f"backfill {shop.name}: done, {state['orders']} orders read, {total} new versions enqueued")
    return total


def _save(engine: Engine, shop, state: dict) -> None:
    with Session(engine) as s:
        cursors.write(s, shop.name, CURSOR, state)
        s.commit()
