"""A small WooCommerce REST API v3 client: auth, one table from HTTP outcome to action, bounded retries."""
from __future__ import annotations

import html
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from adapters.woocommerce.translate import Product
from connector.config import parse_duration
from connector.errors import ConfigError, FatalAPIError, OrderbridgeError, RetriableAPIError

log = logging.getLogger(__name__)
API = "wc/v3"


class RedactQueryCredentials(logging.Filter):
    """With query_string_auth the key and secret ride in the URL, and urllib3 logs URLs at DEBUG
    (`orderbridge --verbose`): blank them out of every record of that logger."""

    PATTERN = re.compile(r"(consumer_(?:key|secret)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:   # noqa: BLE001 - a record that cannot format is left to logging to report
            return True
        if "consumer_" in message:
            record.msg, record.args = self.PATTERN.sub(r"\1[redacted]", message), None
        return True


def _install_redaction() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactQueryCredentials) for f in target.filters):
        target.addFilter(RedactQueryCredentials())


_install_redaction()
USER_AGENT = "orderbridge (WooCommerce poller)"

# What to do with an answer (STYLE.md habit 5): status → action; everything 5xx retries too.
RETRY, AUTH, ROUTE, FAIL = "retry", "auth", "route", "fail"
STATUS_ACTIONS = {401: AUTH, 403: AUTH, 404: ROUTE, 408: RETRY, 425: RETRY, 429: RETRY}


def has_credentials(shop) -> bool:
    """True when the shop has a URL and both halves of a REST API key in the environment."""
    return bool(shop.get("url") and shop.secret_of("consumer_key") and shop.secret_of("consumer_secret"))


@dataclass
class Page:
    """One page of a list: its items and WooCommerce's pagination headers."""

    items: list
    total: int | None      # X-WP-Total (None when a proxy dropped it)
    total_pages: int


def action_for(resp: requests.Response) -> str | None:
    """None when the answer is usable, else RETRY / AUTH / ROUTE / FAIL."""
    if resp.status_code >= 500:
        return RETRY
    if resp.status_code in STATUS_ACTIONS:
        return STATUS_ACTIONS[resp.status_code]
    if resp.status_code >= 400:
        return FAIL
    # WordPress without pretty permalinks serves /wp-json/... as an ordinary HTML page.
    return ROUTE if "json" not in resp.headers.get("Content-Type", "") else None


def _is_loopback(host: str | None) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class WooClient:
    """GET requests to one shop's REST API. Secrets stay in this object, never in a message."""

    def __init__(self, shop, *, attempts: int | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None):
        self.shop = shop
        self.base = str(shop.get("url") or "").rstrip("/")
        self.key, self.secret = shop.secret_of("consumer_key"), shop.secret_of("consumer_secret")
        if not (self.base and self.key and self.secret):
            raise ConfigError(f"shop {shop.name}: needs url, consumer_key_env and consumer_secret_env "
                              "(with both environment variables set) to use the REST API")
        parts = urlsplit(self.base)
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise ConfigError(f"shop {shop.name}: url must start with https:// (WooCommerce accepts a consumer "
                              "key over plain HTTP only with OAuth 1.0a signatures)")
        self.query_auth = bool(shop.get("query_string_auth", False))
        self.rest_route = bool(shop.get("rest_route", False))
        self.attempts = int(attempts or shop.get("retry_attempts", 5))
        self.wait_max = parse_duration(shop.get("retry_wait_max", "30s"), f"[[shops]] {shop.name} retry_wait_max")
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT

    def url_for(self, path: str) -> tuple[str, dict]:
        """The URL of an API path, and the query parameters that route it (no pretty permalinks)."""
        if self.rest_route:
            return f"{self.base}/", {"rest_route": f"/{API}/{path}"}
        return f"{self.base}/wp-json/{API}/{path}", {}

    def get_page(self, path: str, params: dict) -> Page:
        resp = self.get(path, params)
        data = resp.json()
        if not isinstance(data, list):
            raise FatalAPIError(f"shop {self.shop.name}: {path} did not answer a JSON list", status=resp.status_code)
        total, pages = resp.headers.get("X-WP-Total"), resp.headers.get("X-WP-TotalPages")
        if pages is None:   # a proxy dropped the headers: keep going while pages come back full
            page = int(params.get("page", 1))
            pages = page + 1 if len(data) >= int(params.get("per_page", 10)) else page
        return Page(data, int(total) if total is not None else None, int(pages))

    def get(self, path: str, params: dict) -> requests.Response:
        """GET with bounded retries (tenacity, stop and wait both set) on 429, 5xx and network errors."""
        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=self._wait, reraise=True,
                            retry=retry_if_exception_type(RetriableAPIError), before_sleep=self._log_retry)
        return retrying(self._get_once, path, params)

    def _get_once(self, path: str, params: dict) -> requests.Response:
        url, route = self.url_for(path)
        query = {**route, **params}
        auth = None
        if self.query_auth:
            query.update(consumer_key=self.key, consumer_secret=self.secret)
        else:
            auth = (self.key, self.secret)
        try:
            resp = self.http.get(url, params=query, auth=auth, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise RetriableAPIError(f"shop {self.shop.name}: cannot reach {self.base}: {type(e).__name__}") from None
        action = action_for(resp)
        if action is None:
            return resp
        raise self._error(action, resp, path)

    def _error(self, action: str, resp: requests.Response, path: str) -> OrderbridgeError:
        name, code = self.shop.name, resp.status_code
        if action == RETRY:
            return RetriableAPIError(f"shop {name}: WooCommerce answered {code} on {path}", status=code,
                                     retry_after=_retry_after(resp))
        if action == AUTH:
            return FatalAPIError(
                f"shop {name}: WooCommerce refused the REST API key ({code} {_code(resp)}). Check consumer_key_env/"
                "consumer_secret_env and that the key has Read permission; if the server strips the Authorization "
                "header, set query_string_auth = true", status=code, body=resp.text[:500])
        if action == ROUTE and not self.rest_route:
            return FatalAPIError(
                f"shop {name}: {self.base}/wp-json/{API}/{path} is not the REST API ({code}, "
                f"{resp.headers.get('Content-Type', 'no content type')}). The site probably has no pretty "
                f"permalinks: set rest_route = true for this shop (uses {self.base}/?rest_route=/{API}/{path})",
                status=code, body=resp.text[:500])
        return FatalAPIError(f"shop {name}: WooCommerce answered {code} {_code(resp)} on {path}",
                             status=code, body=resp.text[:500])

    def _wait(self, state) -> float:
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, RetriableAPIError) and err.retry_after is not None:
            return min(err.retry_after, self.wait_max)
        return min(2 ** (state.attempt_number - 1), self.wait_max)

    def _log_retry(self, state) -> None:
        log.warning("%s (attempt %d of %d)", state.outcome.exception(), state.attempt_number, self.attempts)


def check(shop) -> str:
    """One request that proves URL, route and key work (for `orderbridge check`); raises with the reason."""
    page = WooClient(shop, attempts=1, timeout=15).get_page("orders", {"per_page": 1})
    return f"REST API reachable, {page.total if page.total is not None else 'some'} orders visible"


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _code(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("code") or "")
    except (ValueError, AttributeError):
        return ""


# ---- product details (url, category) for items: optional, cached, never blocking an order -------------

_PRODUCTS: dict[tuple[str, int], tuple[float, Product]] = {}
_UNAVAILABLE: dict[str, float] = {}   # shop → monotonic time until which lookups are skipped
PRODUCT_TTL = 3600.0
PAUSE_AFTER_FAILURE = 300.0            # a store that is down must not slow every order down


def products_for(shop, orders: list) -> dict[int, Product]:
    """url and category of the orders' products from GET /products (one request per 100), cached for an hour.

    Only when the shop has REST credentials (and product_details is not false); a failure leaves the
    items without these details rather than holding the order back.
    """
    if not has_credentials(shop) or not shop.get("product_details", True):
        return {}
    now = time.monotonic()
    if _UNAVAILABLE.get(shop.name, 0) > now:
        return {}
    ids = {_int(li.get("product_id")) for o in orders if isinstance(o, dict)
           for li in o.get("line_items") or [] if isinstance(li, dict)} - {0}
    missing = sorted(i for i in ids if _PRODUCTS.get((shop.name, i), (0,))[0] < now)
    if missing:
        try:
            _fetch_products(WooClient(shop, attempts=2, timeout=10), missing, now)
        except (OrderbridgeError, requests.RequestException, ValueError) as e:
            _UNAVAILABLE[shop.name] = now + PAUSE_AFTER_FAILURE
            log.warning("shop %s: product details unavailable for %.0f s, items go without url/category: %s",
                        shop.name, PAUSE_AFTER_FAILURE, e)
    return {i: _PRODUCTS[(shop.name, i)][1] for i in ids if (shop.name, i) in _PRODUCTS}


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _fetch_products(woo: WooClient, ids: list[int], now: float) -> None:
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        page = woo.get_page("products", {"include": ",".join(map(str, chunk)), "per_page": 100})
        for p in page.items:
            cats = ", ".join(html.unescape(c["name"]) for c in p.get("categories") or [] if c.get("name")) or None
            _PRODUCTS[(woo.shop.name, int(p["id"]))] = (now + PRODUCT_TTL, Product(p.get("permalink") or None, cats))
        for i in chunk:   # products deleted since: remember that there is nothing to add
            _PRODUCTS.setdefault((woo.shop.name, i), (now + PRODUCT_TTL, Product()))
