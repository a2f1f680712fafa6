"""A small local WooCommerce for tests: /wp-json/wc/v3/orders with real pagination and auth, signed webhooks."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "woocommerce"
KEY, SECRET = "ck_fake0000000000000000000000000000000000", "cs_fake0000000000000000000000000000000000"


def woo_shop(url: str, **kw):
    """A shop of the config (`main` unless named), a WooCommerce store at `url` whose keys are read from
    WOO_CK/WOO_CS (the `woo_keys` fixture sets them); no waits between retries, no product look-ups unless asked."""
    from connector.config import from_dict
    entry = {"name": "main", "platform": "woocommerce", "url": url, "consumer_key_env": "WOO_CK",
             "consumer_secret_env": "WOO_CS", "retry_wait_max": "0s", "product_details": False, **kw}
    return from_dict({"shops": [entry]}).shop(entry["name"])


def fixture_orders() -> list[dict]:
    """Every order of the WooCommerce fixtures, unwrapped, one per id."""
    def load(name):
        return json.loads((FIXTURES / name).read_text())
    found = [load("rest_v3_order_727_guest_processing_docs.json"), *load("rest_v3_orders_list_727_723_docs.json"),
             load("rest_v2_order_88_refunded_guest_fluxc.json")["data"], load("order_897_usd_processing_stripe_wc5.6.json"),
             load("order_12345_eur_prices_incl_tax_hand_edited.json"), load("webhook_order_15_usd_completed_wc8.0_pipedream.json"),
             load("webhook_order_76_eur_created_pending_wc5.9.json")["body"],
             *load("fluxc_orders_list_partial_fields_refund_coupons.json")["data"]]
    # The FluxC list was fetched with `_fields` and lacks date_modified_gmt, which a real store always has.
    for o in found:
        o.setdefault("date_modified_gmt", o.get("date_created_gmt"))
    return list({o["id"]: o for o in found}.values())


def make_orders(n: int, *, first_id: int = 1001, modified: datetime = datetime(2026, 1, 1, 12, 0, 0)) -> list[dict]:
    """`n` realistic orders (order 727 of the REST docs with new ids), one second of modification apart."""
    base = json.loads((FIXTURES / "rest_v3_order_727_guest_processing_docs.json").read_text())
    out = []
    for i in range(n):
        o = copy.deepcopy(base)
        o["id"], o["number"] = first_id + i, str(first_id + i)
        o["billing"]["email"] = f"buyer{first_id + i}@example.com"
        stamp = (modified + timedelta(seconds=i)).isoformat()
        o["date_created_gmt"] = o["date_modified_gmt"] = stamp
        out.append(o)
    return out


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def php_json(payload) -> bytes:
    """JSON as PHP's wp_json_encode writes it: slashes escaped, non-ASCII as \\uXXXX."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


class FakeWooCommerce:
    """Start with `with FakeWooCommerce(orders) as woo:`; `woo.url` is the shop URL."""

    def __init__(self, orders: list[dict] | None = None, *, key: str = KEY, secret: str = SECRET,
                 pretty_permalinks: bool = True, products: dict[int, dict] | None = None,
                 orderby_modified: bool = True, pagination_headers: bool = True):
        self.orders = {o["id"]: copy.deepcopy(o) for o in (orders if orders is not None else fixture_orders())}
        self.key, self.secret, self.pretty = key, secret, pretty_permalinks
        self.products = products or {}
        self.orderby_modified = orderby_modified     # False: an older WooCommerce without orderby=modified
        self.pagination_headers = pagination_headers  # False: a caching proxy that drops X-WP-* and Link
        self.requests: list[dict] = []          # query args of every API request, in order
        self.failures: list[tuple[int, dict]] = []   # (status, headers) answered before serving
        self.after_page: dict[int, Callable[["FakeWooCommerce"], None]] = {}   # request number → change
        self.app = self._build()
        self._server = None

    # ---- test controls -------------------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, headers: dict | None = None) -> None:
        self.failures += [(status, headers or {})] * times

    def update(self, order_id: int, modified: str, **changes) -> None:
        """Change an order as the shop would: new fields and a new date_modified_gmt."""
        self.orders[order_id].update(changes, date_modified_gmt=modified)

    # ---- server lifecycle ----------------------------------------------------------------------------
    def __enter__(self):
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    # ---- sending webhooks as WooCommerce does -------------------------------------------------------
    def send_webhook(self, url: str, topic: str, payload, secret: str, *, delivery_id: str = "d-1",
                     signature: str | None = None) -> requests.Response:
        body = payload if isinstance(payload, bytes) else php_json(payload)
        resource, event = topic.split(".", 1)
        headers = {"Content-Type": "application/json", "User-Agent": "WooCommerce/8.0.2 Hookshot (WordPress/6.3)",
                   "X-WC-Webhook-Source": f"{self.url}/", "X-WC-Webhook-Topic": topic,
                   "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                   "X-WC-Webhook-Signature": signature if signature is not None else sign(body, secret),
                   "X-WC-Webhook-ID": "7", "X-WC-Webhook-Delivery-ID": delivery_id}
        return requests.post(url, data=body, headers=headers, timeout=10)

    def send_ping(self, url: str, webhook_id: int = 7) -> requests.Response:
        # wp_safe_remote_post with a body array: form-encoded, no X-WC headers, no signature.
        return requests.post(url, data={"webhook_id": str(webhook_id)}, timeout=10,
                             headers={"User-Agent": "WooCommerce/8.0.2 Hookshot (WordPress/6.3)"})

    # ---- the REST API --------------------------------------------------------------------------------
    def _build(self) -> Flask:
        app = Flask("fake_woocommerce")

        @app.get("/wp-json/wc/v3/<path:route>")
        def pretty(route):
            if not self.pretty:
                return Response("<!doctype html><title>Page not found</title>", 404, content_type="text/html")
            return self._api(route)

        @app.get("/")
        def plain():
            route = request.args.get("rest_route", "")
            if not route.startswith("/wc/v3/"):
                return Response("<!doctype html><title>Shop</title>", 200, content_type="text/html")
            return self._api(route[len("/wc/v3/"):])

        return app

    def _api(self, route: str):
        args = request.args.to_dict()
        self.requests.append({"route": route, **{k: v for k, v in args.items() if not k.startswith("consumer_")}})
        if self.failures:
            status, headers = self.failures.pop(0)
            return jsonify({"code": "fake_failure", "message": "failure injected by the test",
                            "data": {"status": status}}), status, headers
        denied = self._auth()
        if denied:
            return denied
        if route == "orders":
            return self._orders(args)
        if route == "products":
            ids = [int(i) for i in args.get("include", "").split(",") if i]
            return jsonify([self.products[i] for i in ids if i in self.products])
        return jsonify({"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
                        "data": {"status": 404}}), 404

    def _auth(self):
        auth = request.authorization
        key, secret = (auth.username, auth.password) if auth else (request.args.get("consumer_key"), request.args.get("consumer_secret"))
        if not key:
            return jsonify({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                            "data": {"status": 401}}), 401
        if key != self.key or secret != self.secret:
            return jsonify({"code": "woocommerce_rest_authentication_error", "message": "Consumer key is invalid.",
                            "data": {"status": 401}}), 401
        return None

    def _orders(self, args: dict):
        per_page, page = int(args.get("per_page", 10)), int(args.get("page", 1))
        if not 1 <= per_page <= 100:
            return jsonify({"code": "rest_invalid_param", "message": "Invalid parameter(s): per_page",
                            "data": {"status": 400}}), 400
        orderby = args.get("orderby", "date")
        if orderby not in ("date", "id") and not (orderby == "modified" and self.orderby_modified):
            return jsonify({"code": "rest_invalid_param", "message": "Invalid parameter(s): orderby",
                            "data": {"status": 400, "params": {"orderby": "orderby is not one of date, id, include, title, slug."}}}), 400
        gmt = args.get("dates_are_gmt") == "true"
        rows = list(self.orders.values())
        # `status` defaults to "any", which (WP_Query's "any") leaves trashed orders out; "trash" lists them
        statuses = [s for s in args.get("status", "any").split(",") if s]
        rows = [o for o in rows if (o.get("status") != "trash" if "any" in statuses else o.get("status") in statuses)]
        if args.get("modified_after"):   # WordPress compares `after` strictly
            col = "date_modified_gmt" if gmt else "date_modified"
            rows = [o for o in rows if (o.get(col) or "") > args["modified_after"]]
        if args.get("after"):
            col = "date_created_gmt" if gmt else "date_created"
            rows = [o for o in rows if (o.get(col) or "") > args["after"]]
        key = {"modified": lambda o: (o.get("date_modified_gmt") or "", o["id"]), "id": lambda o: o["id"],
               "date": lambda o: (o.get("date_created_gmt") or "", o["id"])}[orderby]
        rows.sort(key=key, reverse=args.get("order", "desc") == "desc")
        total, pages = len(rows), max(1, -(-len(rows) // per_page))
        # WordPress: `offset` skips that many items and overrides `page`
        start = int(args["offset"]) if args.get("offset") else (page - 1) * per_page
        body = rows[start: start + per_page]
        number = len(self.requests)
        resp = jsonify(body)
        if self.pagination_headers:
            resp.headers["X-WP-Total"], resp.headers["X-WP-TotalPages"] = str(total), str(pages)
            resp.headers["Link"] = self._link(page, pages)
        change = self.after_page.pop(number, None)
        if change:
            change(self)
        return resp

    def _link(self, page: int, pages: int) -> str:
        base = f"{self.url}/wp-json/wc/v3/orders"
        links = []
        if page > 1:
            links.append(f'<{base}?page={page - 1}>; rel="prev"')
        if page < pages:
            links.append(f'<{base}?page={page + 1}>; rel="next"')
        return ", ".join(links)
