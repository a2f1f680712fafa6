"""A small fake Shopify for tests and benchmarks: GraphQL Admin API with a cost bucket, bulk operations, signed webhooks.

Orders are held in GraphQL shape, built from the REST/webhook fixtures (`node_from_rest`) or
generated (`generated_orders`). The bucket follows Shopify's rules as far as orderbridge relies on
them: a query needs its requested cost available (else THROTTLED, nothing served) and is charged
its actual cost; the bucket refills at `restore_rate` points per second.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

TOKEN = "shpat_fake_token"


# ---- data ---------------------------------------------------------------------------------------

def _money(amount: Any, currency: str, presentment: Any = None, pcur: str | None = None) -> dict | None:
    if amount is None:
        return None
    return {"shopMoney": {"amount": str(amount), "currencyCode": currency},
            "presentmentMoney": {"amount": str(presentment if presentment is not None else amount), "currencyCode": pcur or currency}}


def _from_set(obj: dict, plain: str, currency: str) -> dict | None:
    s = obj.get(f"{plain}_set")
    if isinstance(s, dict):
        return {"shopMoney": {"amount": s["shop_money"]["amount"], "currencyCode": s["shop_money"]["currency_code"]},
                "presentmentMoney": {"amount": s["presentment_money"]["amount"], "currencyCode": s["presentment_money"]["currency_code"]}}
    return _money(obj.get(plain), currency)


def _addr(a: dict | None) -> dict | None:
    if not a:
        return None
    return {"firstName": a.get("first_name"), "lastName": a.get("last_name"), "phone": a.get("phone"),
            "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
            "province": a.get("province"), "zip": a.get("zip"), "country": a.get("country")}


_FUL = {None: "UNFULFILLED", "fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED", "restocked": "RESTOCKED"}


def utc(value: Any) -> Any:
    """A REST date (shop's offset) as GraphQL's DateTime writes the same instant: UTC, with Z."""
    if not isinstance(value, str) or not value:
        return value
    return datetime.fromisoformat(value).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_from_rest(o: dict) -> dict:
    """A REST/webhook order as the GraphQL Admin API would show it (the fields orderbridge asks for)."""
    cur = o.get("currency") or "USD"
    c = o.get("customer")
    return {
        "id": f"gid://shopify/Order/{o['id']}", "legacyResourceId": str(o["id"]), "name": o.get("name"),
        "email": o.get("email"), "phone": o.get("phone"), "createdAt": utc(o.get("created_at")),
        "processedAt": utc(o.get("processed_at")), "updatedAt": utc(o.get("updated_at")),
        "cancelledAt": utc(o.get("cancelled_at")), "cancelReason": (o.get("cancel_reason") or "").upper() or None,
        "closedAt": utc(o.get("closed_at")), "test": o.get("test"),
        "currencyCode": cur, "presentmentCurrencyCode": o.get("presentment_currency") or cur,
        "taxesIncluded": o.get("taxes_included"), "sourceName": o.get("source_name"),
        "paymentGatewayNames": o.get("payment_gateway_names") or ([o["gateway"]] if o.get("gateway") else []),
        "discountCodes": [d.get("code") for d in o.get("discount_codes") or ()],
        "displayFinancialStatus": (o.get("financial_status") or "pending").upper(),
        "displayFulfillmentStatus": _FUL.get(o.get("fulfillment_status"), str(o.get("fulfillment_status")).upper()),
        "totalPriceSet": _from_set(o, "total_price", cur), "totalDiscountsSet": _from_set(o, "total_discounts", cur),
        "totalTaxSet": _from_set(o, "total_tax", cur), "totalShippingPriceSet": _from_set(o, "total_shipping_price", cur),
        "customer": None if not c else {"legacyResourceId": str(c["id"]), "email": c.get("email"), "phone": c.get("phone"),
                                        "firstName": c.get("first_name"), "lastName": c.get("last_name")},
        "billingAddress": _addr(o.get("billing_address")), "shippingAddress": _addr(o.get("shipping_address")),
        "shippingLines": [{"id": f"gid://shopify/ShippingLine/{s.get('id', i)}", "title": s.get("title"),
                           "originalPriceSet": _from_set(s, "price", cur),
                           "discountedPriceSet": _from_set(s, "discounted_price", cur) if s.get("discounted_price") is not None
                           else _from_set(s, "price", cur)} for i, s in enumerate(o.get("shipping_lines") or ())],
        "lineItems": [{"id": f"gid://shopify/LineItem/{li['id']}", "name": li.get("name"), "title": li.get("title"),
                       "quantity": li.get("quantity"), "sku": li.get("sku"),
                       "variant": {"legacyResourceId": str(li["variant_id"])} if li.get("variant_id") else None,
                       "product": {"legacyResourceId": str(li["product_id"])} if li.get("product_id") else None,
                       "originalUnitPriceSet": _from_set(li, "price", cur),
                       "discountAllocations": [{"allocatedAmountSet": _from_set(d, "amount", cur)} for d in li.get("discount_allocations") or ()]}
                      for li in o.get("line_items") or ()],
    }


def generated_orders(n: int, *, start: datetime | None = None, items: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    """`n` plausible orders (GraphQL shape), updated one second apart from `start`."""
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        k = items[i % len(items)]
        ts = (start + timedelta(seconds=i)).isoformat()
        out.append({
            "id": f"gid://shopify/Order/{10_000 + i}", "legacyResourceId": str(10_000 + i), "name": f"#{1000 + i}",
            "email": f"buyer{i % 97}@example.com", "phone": None, "createdAt": ts, "processedAt": ts, "updatedAt": ts,
            "cancelledAt": None, "cancelReason": None, "closedAt": None, "test": False, "currencyCode": "USD",
            "presentmentCurrencyCode": "USD", "taxesIncluded": False, "sourceName": "web", "paymentGatewayNames": ["bogus"],
            "discountCodes": [], "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED",
            "totalPriceSet": _money(f"{10 * k + 5}.00", "USD"), "totalDiscountsSet": _money("0.00", "USD"),
            "totalTaxSet": _money("0.00", "USD"), "totalShippingPriceSet": _money("5.00", "USD"),
            "customer": {"legacyResourceId": str(500 + i % 97), "email": f"buyer{i % 97}@example.com", "phone": None,
                         "firstName": "Buyer", "lastName": str(i % 97)},
            "billingAddress": None, "shippingAddress": None,
            "shippingLines": [{"id": f"gid://shopify/ShippingLine/{i}", "title": "Standard", "originalPriceSet": _money("5.00", "USD"),
                               "discountedPriceSet": _money("5.00", "USD")}],
            "lineItems": [{"id": f"gid://shopify/LineItem/{i * 10 + j}", "name": f"Thing {j}", "title": f"Thing {j}", "quantity": 1,
                           "sku": f"SKU{j}", "variant": {"legacyResourceId": str(700 + j)}, "product": {"legacyResourceId": str(600 + j)},
                           "originalUnitPriceSet": _money("10.00", "USD"), "discountAllocations": []} for j in range(k)],
        })
    return out


def checkout_node_from_rest(c: dict) -> dict:
    cur = c.get("currency") or "USD"
    cust = c.get("customer")
    return {
        "id": f"gid://shopify/AbandonedCheckout/{c.get('id') or 1}", "name": c.get("name"),
        "abandonedCheckoutUrl": c.get("abandoned_checkout_url"), "createdAt": utc(c.get("created_at")),
        "updatedAt": utc(c.get("updated_at")), "completedAt": utc(c.get("completed_at")), "taxesIncluded": c.get("taxes_included"),
        "totalPriceSet": _money(c.get("total_price"), cur), "totalDiscountSet": _money(c.get("total_discounts"), cur),
        "totalTaxSet": _money(c.get("total_tax"), cur), "subtotalPriceSet": _money(c.get("subtotal_price"), cur),
        "totalDutiesSet": _money(c.get("total_duties"), cur),
        "customer": None if not cust else {"legacyResourceId": str(cust["id"]), "email": cust.get("email") or c.get("email"),
                                           "phone": cust.get("phone"), "firstName": cust.get("first_name"), "lastName": cust.get("last_name")},
        "billingAddress": _addr(c.get("billing_address")), "shippingAddress": _addr(c.get("shipping_address")),
        "lineItems": [{"id": f"gid://shopify/AbandonedCheckoutLineItem/{li.get('id') or j}", "title": li.get("title"),
                       "quantity": li.get("quantity"), "sku": li.get("sku"),
                       "variant": {"legacyResourceId": str(li["variant_id"])} if li.get("variant_id") else None,
                       "product": {"legacyResourceId": str(li["product_id"])} if li.get("product_id") else None,
                       "originalUnitPriceSet": _money(li.get("price"), cur),
                       "discountedTotalPriceSet": _money(li.get("line_price") or li.get("price"), cur)}
                      for j, li in enumerate(c.get("line_items") or ())],
    }


# ---- the bucket ---------------------------------------------------------------------------------

class Bucket:
    def __init__(self, size: float, restore_rate: float):
        self.size, self.rate = float(size), float(restore_rate)
        self.available, self.at = float(size), time.monotonic()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.available = min(self.size, self.available + (now - self.at) * self.rate)
        self.at = now

    def take(self, requested: float, actual_of) -> tuple[bool, float]:
        """Charge the actual cost when `requested` is available; returns (served, actual cost)."""
        with self.lock:
            self._refill()
            if self.available < requested:
                return False, 0.0
            actual = float(actual_of())
            self.available -= min(actual, requested)
            return True, actual

    def status(self) -> dict:
        with self.lock:
            self._refill()
            return {"maximumAvailable": self.size, "currentlyAvailable": round(self.available, 2), "restoreRate": self.rate}


_WINDOW = re.compile(r"updated_at:>='([^']+)'(?:\s+AND\s+updated_at:<=?'([^']+)')?")


def _window(search: str | None):
    m = _WINDOW.search(search or "")
    if not m:
        return None, None
    def parse(t):
        if not t:
            return None
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return parse(m.group(1)), parse(m.group(2))


def _ts(node: dict, key: str = "updatedAt") -> datetime:
    return datetime.fromisoformat(str(node[key]).replace("Z", "+00:00"))


def _cursor(i: int) -> str:
    return base64.b64encode(f"pos:{i}".encode()).decode()


def _uncursor(c: str | None) -> int:
    return int(base64.b64decode(c).decode().split(":")[1]) if c else 0


def node_cost(node: dict, kind: str = "order") -> int:
    if kind == "checkout":
        return 4 + 2 + 3 * len(node.get("lineItems") or ())
    return 4 + (2 + len(node.get("shippingLines") or ())) + (2 + 3 * len(node.get("lineItems") or ()))


# ---- the server ---------------------------------------------------------------------------------

class FakeShopify:
    """Start with `with FakeShopify(...) as shop:`; `shop.url` is the base to put in a shop's `api_url`."""

    def __init__(self, orders: Iterable[dict] = (), checkouts: Iterable[dict] = (), *, bucket_size: float = 1000,
                 restore_rate: float = 100, scopes: tuple[str, ...] = ("read_orders", "read_all_orders", "read_products"),
                 bulk_polls_until_done: int = 1, products: dict[str, dict] | None = None,
                 break_download_after_lines: int | None = None, iana_timezone: str = "America/New_York"):
        self.orders = sorted(orders, key=lambda n: (_ts(n), n["id"]))
        self.checkouts = list(checkouts)
        self.bucket = Bucket(bucket_size, restore_rate)
        self.scopes = scopes
        self.products = products or {}
        self.bulk_polls_until_done = bulk_polls_until_done
        self.break_download_after_lines = break_download_after_lines   # the next download dies after this many lines
        self.bulk_ops: dict[str, dict] = {}
        self.timezone = iana_timezone            # the shop's, for `shop { ianaTimezone }` (the fixtures' offsets)
        self.stats = {"requests": 0, "served": 0, "throttled": 0, "bulk_started": 0}
        self.fail_requests: set[int] = set()     # request numbers (1-based) answered with a 500
        self.app = self._build()
        self._server = None

    # lifecycle
    def __enter__(self) -> "FakeShopify":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)    # no line per request in test output
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()

    def set_orders(self, orders: Iterable[dict]) -> None:
        self.orders = sorted(orders, key=lambda n: (_ts(n), n["id"]))

    # GraphQL
    def _build(self) -> Flask:
        app = Flask("fake_shopify")

        @app.post("/admin/api/<version>/graphql.json")
        def graphql(version):
            self.stats["requests"] += 1
            if self.stats["requests"] in self.fail_requests:
                return jsonify({"errors": "fake: internal error"}), 500
            if request.headers.get("X-Shopify-Access-Token") != TOKEN:
                return jsonify({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}), 401
            body = request.get_json()
            return self._answer(body.get("query") or "", body.get("variables") or {})

        @app.get("/bulk/<op>.jsonl")
        def bulk_file(op):
            text, cut = self.bulk_ops[op]["jsonl"], self.break_download_after_lines
            if cut is None:
                return Response(text, mimetype="application/jsonl")
            self.break_download_after_lines = None

            def broken():
                for line in text.splitlines(keepends=True)[:cut]:
                    yield line
                raise ConnectionAbortedError("fake: connection lost mid-download")
            return Response(broken(), mimetype="application/jsonl")

        return app

    def _answer(self, query: str, v: dict):
        name = re.search(r"(query|mutation)\s+(\w+)", query)
        op = name.group(2) if name else ""
        handler = {"Orders": self._orders, "OrderLineItems": self._order_line_items, "Order": self._order,
                   "AbandonedCheckouts": self._checkouts, "Products": self._products, "Scopes": self._scopes,
                   "Run": self._bulk_run, "Bulk": self._bulk_status}.get(op)
        if handler is None:
            return jsonify({"errors": [{"message": f"fake: unknown operation {op!r}"}]}), 200
        requested, produce = handler(v)
        if requested > 1000:
            return jsonify({"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max cost limit (1000).",
                                        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": 1000}}]})
        result: dict = {}
        served, actual = self.bucket.take(requested, lambda: result.setdefault("v", produce())[1])
        cost = {"requestedQueryCost": requested, "actualQueryCost": actual if served else None,
                "throttleStatus": self.bucket.status()}
        if not served:
            self.stats["throttled"] += 1
            return jsonify({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                                               "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                            "extensions": {"cost": cost}})
        self.stats["served"] += 1
        data = result["v"][0]
        if "ianaTimezone" in query:
            data = {**data, "shop": {"ianaTimezone": self.timezone}}
        return jsonify({"data": data, "extensions": {"cost": cost}})

    def _select(self, rows: list[dict], search: str | None) -> list[dict]:
        lo, hi = _window(search)
        return [n for n in rows if (lo is None or _ts(n) >= lo) and (hi is None or _ts(n) <= hi)]

    def _orders(self, v: dict):
        first, li = int(v["first"]), int(v.get("lineItems", 10))
        requested = 2 + first * (4 + 7 + 2 + 3 * li)

        def produce():
            rows = self._select(self.orders, v.get("query"))
            start = _uncursor(v.get("after"))
            page = rows[start:start + first]
            nodes = []
            for n in page:
                lines = n["lineItems"]
                nodes.append({**n, "shippingLines": {"nodes": n["shippingLines"][:5]},
                              "lineItems": {"nodes": lines[:li], "pageInfo": {"hasNextPage": len(lines) > li, "endCursor": _cursor(li)}}})
            info = {"hasNextPage": start + first < len(rows), "endCursor": _cursor(start + len(page))}
            return {"orders": {"nodes": nodes, "pageInfo": info}}, 2 + sum(node_cost(n) for n in page)
        return requested, produce

    def _order_line_items(self, v: dict):
        def produce():
            n = next(o for o in self.orders if o["id"] == v["id"])
            start = _uncursor(v.get("after"))
            lines = n["lineItems"][start:start + 250]
            info = {"hasNextPage": start + 250 < len(n["lineItems"]), "endCursor": _cursor(start + len(lines))}
            return {"order": {"lineItems": {"nodes": lines, "pageInfo": info}}}, 3 + 3 * len(lines)
        return 2 + 250 * 3 + 1, produce

    def _order(self, v: dict):
        li = int(v.get("lineItems", 10))

        def produce():
            n = next((o for o in self.orders if o["id"] == v["id"]), None)
            if n is None:
                return {"order": None}, 1
            lines = n["lineItems"]
            return {"order": {**n, "shippingLines": {"nodes": n["shippingLines"]},
                              "lineItems": {"nodes": lines[:li], "pageInfo": {"hasNextPage": len(lines) > li, "endCursor": _cursor(li)}}}}, 1 + node_cost(n)
        return 1 + 4 + 7 + 2 + 3 * li, produce

    def _checkouts(self, v: dict):
        first = int(v["first"])

        def produce():
            rows = self._select(self.checkouts, v.get("query"))
            start = _uncursor(v.get("after"))
            page = rows[start:start + first]
            nodes = [{**n, "lineItems": {"nodes": n["lineItems"]}} for n in page]
            return ({"abandonedCheckouts": {"nodes": nodes, "pageInfo": {"hasNextPage": start + first < len(rows),
                                                                         "endCursor": _cursor(start + len(page))}}},
                    2 + sum(node_cost(n, "checkout") for n in page))
        return 2 + first * (4 + 2 + 20 * 3), produce

    def _products(self, v: dict):
        def produce():
            out = [self.products.get(gid.rsplit("/", 1)[-1]) for gid in v["ids"]]
            return {"nodes": out}, 1 + 2 * len(out)
        return 1 + 2 * len(v["ids"]), produce

    def _scopes(self, v: dict):
        return 1, lambda: ({"currentAppInstallation": {"accessScopes": [{"handle": s} for s in self.scopes]}}, 1)

    def _bulk_run(self, v: dict):
        def produce():
            if any(o["status"] in ("CREATED", "RUNNING") for o in self.bulk_ops.values()):
                return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [
                    {"field": None, "message": "A bulk query operation for this app and shop is already in progress."}]}}, 10
            self.stats["bulk_started"] += 1
            op = str(len(self.bulk_ops) + 1)
            m = re.search(r'orders\(query: "((?:[^"\\]|\\.)*)"', v["query"])
            search = m.group(1).replace('\\"', '"') if m else None
            rows = self._select(self.orders, search)
            self.bulk_ops[op] = {"status": "RUNNING", "polls": 0, "jsonl": _jsonl(rows), "count": len(rows)}
            return {"bulkOperationRunQuery": {"bulkOperation": {"id": f"gid://shopify/BulkOperation/{op}", "status": "CREATED"},
                                              "userErrors": []}}, 10
        return 10, produce

    def _bulk_status(self, v: dict):
        def produce():
            op = v["id"].rsplit("/", 1)[-1]
            o = self.bulk_ops.get(op)
            if o is None:
                return {"node": None}, 1
            o["polls"] += 1
            if o["status"] == "RUNNING" and o["polls"] >= self.bulk_polls_until_done:
                o["status"] = "COMPLETED"
            done = o["status"] == "COMPLETED"
            return {"node": {"id": v["id"], "status": o["status"], "errorCode": None, "objectCount": str(o["count"]),
                             "url": f"{self.url}/bulk/{op}.jsonl" if done else None, "partialDataUrl": None}}, 1
        return 1, produce

    # webhooks
    @staticmethod
    def send_webhook(url: str, topic: str, body: bytes, secret: str, *, webhook_id: str, signature: str | None = None,
                     new_headers: bool = False, shop_domain: str = "fake.myshopify.com") -> requests.Response:
        """POST a delivery signed as Shopify signs it (or with the `signature` given)."""
        sig = signature if signature is not None else base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        p = "" if new_headers else "X-"
        headers = {"Content-Type": "application/json", f"{p}Shopify-Topic": topic, f"{p}Shopify-Hmac-Sha256": sig,
                   f"{p}Shopify-Shop-Domain": shop_domain, f"{p}Shopify-Webhook-Id": webhook_id,
                   f"{p}Shopify-API-Version": "2025-01", f"{p}Shopify-Triggered-At": "2025-01-23T06:56:01.000000Z"}
        return requests.post(url, data=body, headers=headers, timeout=10)


def _jsonl(rows: list[dict]) -> str:
    """Bulk output: one line per order, then its nested rows, each with `__parentId`."""
    out = []
    for n in rows:
        out.append(json.dumps({k: v for k, v in n.items() if k not in ("lineItems", "shippingLines")}))
        for s in n.get("shippingLines") or ():
            out.append(json.dumps({**s, "__parentId": n["id"]}))
        for li in n.get("lineItems") or ():
            out.append(json.dumps({**li, "__parentId": n["id"]}))
    return "\n".join(out) + ("\n" if out else "")
