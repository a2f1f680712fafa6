"""Polls a shop's orders and abandoned checkouts through the GraphQL Admin API: the safety net.

Each scan covers a fixed window `[since − overlap, until]` (until = the poll's start), pages through
it 250 at most at a time, and commits every page's orders together with the cursor that says how
far it got; a crash resumes from the last committed page. The next scan starts where this window
ended; the overlap absorbs clock skew and Shopify's search-index lag, and content hashes make the
re-read orders no-ops.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from adapters.shopify import graphql as gql
from adapters.shopify.client import QueryTooCostly, ShopifyClient, has_credentials
from adapters.shopify.sink import store_checkouts, store_orders
from adapters.shopify.translate import Product
from connector import cursors
from connector.config import parse_duration
from connector.errors import FatalAPIError

log = logging.getLogger(__name__)
__all__ = ["has_credentials", "poll", "Poller", "ProductCache", "products_for"]

MAX_PAGE = 250              # Shopify's page size limit
MAX_QUERY_COST = gql.MAX_QUERY_COST
RESTART_AFTER = 20_000      # Shopify stops paginating at 25,000 objects: restart the window before that


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- page sizes ---------------------------------------------------------------------------------

order_node_cost = gql.order_node_cost       # Shopify's rules: graphql.py, beside the queries
PAGE_OVERHEAD = 3       # a page query's own cost: the connection (2) and `shop { ianaTimezone }` (1)
LINE_PAGE_OVERHEAD = 3  # OrderLineItems: the order (1) and its lineItems connection (2)


def page_size(per_node: float, budget: float = MAX_QUERY_COST, overhead: float = PAGE_OVERHEAD) -> int:
    return max(1, min(MAX_PAGE, int((budget - overhead) // max(per_node, 1))))


def sized_query(client: ShopifyClient, name: str, per_node_estimate: float, run: Callable[[int, float], dict],
                choose: Callable[[float], int] | None = None, overhead: float = PAGE_OVERHEAD, key: str = "") -> dict:
    """Run a paginated query `run(first, expected cost)` with the largest page Shopify accepts.

    The cost of one node is Shopify's to say: it is read off each answer (requestedQueryCost) and kept
    in `client.requested[key + "/node"]`. A page refused as too costly (MAX_COST_EXCEEDED, which names
    Shopify's count) is asked again at the size that count allows; only a single node over the limit is
    an error (QueryTooCostly), for the caller to ask for less per node. `name` is the query's name given to
    `client.query`; `key` tells apart variants whose nodes cost differently (default: the name)."""
    key = f"{key or name}/node"
    choose = choose or (lambda per_node: page_size(per_node, overhead=overhead))
    while True:
        per_node = client.requested.get(key) or per_node_estimate
        first = choose(per_node)
        try:
            data = run(first, overhead + first * per_node)
        except QueryTooCostly as e:
            if first <= 1:
                raise
            learnt = (e.cost - overhead) / first
            client.requested[key] = max(learnt, per_node * (first + 1) / first)    # always a smaller page
            log.info("shopify %s: a page of %d costs %.0f points (limit %.0f); asking for fewer", name, first,
                     e.cost, e.max_cost)
            continue
        if client.requested.get(name):
            client.requested[key] = max(1.0, (client.requested[name] - overhead) / first)
        return data


def all_line_items(client: ShopifyClient, node: Mapping) -> list:
    """The order node's line items, every page of them: an order may have more than its query asked for."""
    lines = list(((node.get("lineItems") or {}).get("nodes")) or ())
    info = (node.get("lineItems") or {}).get("pageInfo") or {}
    while info.get("hasNextPage"):
        after = info.get("endCursor")
        data = sized_query(client, "OrderLineItems", gql.LINE_ITEM_COST, lambda first, cost: client.query(
            gql.ORDER_LINE_ITEMS_QUERY, {"id": node["id"], "after": after, "first": first}, name="OrderLineItems",
            cost=cost), overhead=LINE_PAGE_OVERHEAD)
        conn = (data.get("order") or {}).get("lineItems") or {}
        lines += conn.get("nodes") or []
        info = conn.get("pageInfo") or {}
    return lines


# ---- products (optional enrichment) -------------------------------------------------------------

@dataclass
class ProductCache:
    """Product url/image/category/description by product id, kept for `ttl` seconds. After a failed
    look-up it rests for `pause` seconds, so an unreachable API never slows every order down.

    A `quick` look-up (the webhook path: one attempt, a short deadline, no wait for the cost bucket)
    fails whenever the bucket is briefly empty; it then rests the quick path only, and for `quick_pause`
    (a bucket refills in about a second): an order that goes without details goes out again once it has
    them, so the fewer such orders the better."""

    ttl: float = 3600.0
    pause: float = 60.0
    quick_pause: float = 5.0
    clock: Callable[[], float] = time.monotonic
    items: dict[str, tuple[float, Product]] = field(default_factory=dict)
    resting_until: float = 0.0
    quick_resting_until: float = 0.0

    def lookup(self, client_of: Callable[[], ShopifyClient], ids: Iterable[str], quick: bool = False) -> dict[str, Product]:
        now = self.clock()
        wanted = {str(i) for i in ids if i}
        missing = [i for i in wanted if i not in self.items or self.items[i][0] < now]
        if missing and now >= (self.quick_resting_until if quick else self.resting_until):
            try:
                self._fetch(client_of(), missing, now)
            except Exception as e:   # noqa: BLE001 - enrichment never blocks an order
                rest = self.quick_pause if quick else self.pause
                if quick:
                    self.quick_resting_until = now + rest
                else:
                    self.resting_until = now + rest
                log.warning("product details unavailable (%s); %s go without url/image for %.0fs", e,
                            "webhook orders" if quick else "orders", rest)
        return {i: self.items[i][1] for i in wanted if i in self.items}

    def _fetch(self, client: ShopifyClient, missing: list[str], now: float) -> None:
        for start in range(0, len(missing), 100):
            chunk = missing[start:start + 100]
            data = client.query(gql.PRODUCTS_QUERY, {"ids": [f"gid://shopify/Product/{i}" for i in chunk]},
                                name="Products", cost=2 * len(chunk) + 1)
            for i in chunk:
                self.items[i] = (now + self.ttl, Product())
            for n in data.get("nodes") or ():
                if n:
                    self.items[str(n.get("legacyResourceId") or gql.legacy_id(n.get("id")))] = (now + self.ttl, Product(
                        url=n.get("onlineStoreUrl"), imageUrl=(n.get("featuredImage") or {}).get("url"),
                        category=n.get("productType") or None, description=(n.get("description") or "")[:1000] or None))


_PRODUCT_CACHES: dict[str, ProductCache] = {}


def products_for(shop, client_of: Callable[[], ShopifyClient], payloads: Iterable[Mapping],
                 quick: bool = False) -> dict[str, Product]:
    """Product details for the lines of `payloads` (one cache per shop and process); {} when turned off.
    `quick`: the client makes one short attempt (ProductCache)."""
    if not shop.get("enrich_products", True):
        return {}
    ids = {str(li.get("product_id")) for p in payloads for li in p.get("line_items") or () if li.get("product_id")}
    if not ids:
        return {}
    return _PRODUCT_CACHES.setdefault(shop.name, ProductCache()).lookup(client_of, ids, quick)


# ---- scans --------------------------------------------------------------------------------------

@dataclass
class Poller:
    engine: Engine
    shop: object
    client: ShopifyClient
    now: datetime

    @property
    def overlap(self) -> timedelta:
        return timedelta(seconds=parse_duration(self.shop.get("poll_overlap", "10m"), "poll_overlap"))

    def start_state(self, name: str) -> dict:
        with Session(self.engine) as s:
            state = cursors.read(s, self.shop.name, name)
        if state and state.get("until"):
            return state                      # an interrupted scan: resume it
        lookback = timedelta(seconds=parse_duration(self.shop.get("poll_lookback", "1d"), "poll_lookback"))
        since = _parse(state["since"]) if state and state.get("since") else self.now - lookback
        return {"since": _iso(since), "until": _iso(self.now), "after": None}

    def search(self, state: Mapping) -> str:
        since = _parse(state["since"]) - self.overlap
        return f"updated_at:>='{_iso(since)}' AND updated_at:<='{state['until']}'"

    def scan(self, name: str, fetch: Callable[[dict], tuple[list[dict], dict]], sink) -> int:
        """Page through one window; each page is enqueued in the transaction that saves the cursor."""
        state, total, seen = self.start_state(name), 0, 0
        while True:
            payloads, page = fetch(state)
            seen += len(payloads)
            products = products_for(self.shop, lambda: self.client, payloads) if payloads else {}
            with Session(self.engine) as s:
                r = sink(s, self.shop, payloads, "poll", products)
                total += r.enqueued
                if page.get("hasNextPage"):
                    state = {**state, "after": page.get("endCursor")}
                    if name == "orders" and seen >= RESTART_AFTER and payloads:
                        state = {**state, "since": _iso(max(_parse(p["updated_at"]) for p in payloads) + self.overlap),
                                 "after": None}
                        seen = 0
                elif state["until"] != _iso(self.now):
                    # a resumed window is done: go on up to now, in the same poll
                    state = {"since": state["until"], "until": _iso(self.now), "after": None}
                else:
                    state = {"since": state["until"], "until": None, "after": None}
                cursors.write(s, self.shop.name, name, state)
                s.commit()
            if state.get("until") is None:
                return total

    def fetch_orders(self, state: dict) -> tuple[list[dict], dict]:
        # More line items than a page asks for come through OrderLineItems (all_line_items); asking for
        # more than one order node can hold would get every page refused.
        li = min(max(1, int(self.shop.get("line_items_per_order", 10))), gql.line_items_that_fit(PAGE_OVERHEAD))
        while True:
            try:
                data = sized_query(self.client, "Orders", order_node_cost(li), lambda first, cost: self.client.query(
                    gql.ORDERS_QUERY, {"first": first, "after": state.get("after"), "query": self.search(state),
                                       "lineItems": li}, name="Orders", cost=cost), choose=self._first, key=f"Orders/{li}")
                break
            except QueryTooCostly as e:
                if li <= 1:
                    raise FatalAPIError(f"{e}; even one order with one line item a page is over the limit",
                                        status=200, body=e.body) from None
                li = max(1, li // 2)
        conn = data.get("orders") or {}
        nodes = [n for n in conn.get("nodes") or () if n]
        tz = gql.shop_timezone(data)
        return [gql.order_from_node(n, line_items=all_line_items(self.client, n), tz=tz) for n in nodes], \
            conn.get("pageInfo") or {}

    def fetch_checkouts(self, state: dict) -> tuple[list[dict], dict]:
        data = sized_query(self.client, "AbandonedCheckouts", gql.CHECKOUT_NODE_COST, lambda first, cost: self.client.query(
            gql.CHECKOUTS_QUERY, {"first": first, "after": state.get("after"), "query": self.search(state)},
            name="AbandonedCheckouts", cost=cost), choose=self._first)
        conn = data.get("abandonedCheckouts") or {}
        tz = gql.shop_timezone(data)
        return [gql.checkout_from_node(n, tz) for n in conn.get("nodes") or () if n], conn.get("pageInfo") or {}

    def _first(self, per_node: float) -> int:
        """The page size: a full page, or what the bucket holds right now when that is at least a quarter
        of one. A query must find its *requested* cost available, which is often far above what it is
        charged; smaller pages spend the points on hand instead of waiting for a full bucket."""
        s = self.client.pacer.state
        full = page_size(per_node, min(MAX_QUERY_COST, s.maximum if s else MAX_QUERY_COST))
        available = self.client.pacer.projected()
        if available is None:
            return full
        return min(full, max(page_size(per_node, available), max(1, full // 4)))


def poll(engine: Engine, shop, *, now: datetime | None = None, client: ShopifyClient | None = None) -> int:
    """Poll one shop's orders (and abandoned checkouts unless `poll_checkouts = false`); returns versions enqueued."""
    p = Poller(engine, shop, client or ShopifyClient.for_shop(shop), now or datetime.now(timezone.utc))
    total = p.scan("orders", p.fetch_orders, store_orders)
    if shop.get("poll_checkouts", True):
        total += p.scan("checkouts", p.fetch_checkouts, store_checkouts)
    return total
