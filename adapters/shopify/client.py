"""A GraphQL Admin API client for one shop: access token, versioned endpoint, cost-aware pacing.

A THROTTLED answer is never an error for the caller: the same request is sent again once the
bucket holds its cost. Other outcomes follow one table (`ACTIONS`).
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Mapping

import requests

from adapters.shopify.pacer import Pacer
from connector.errors import ConfigError, FatalAPIError, RetriableAPIError

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2025-01"
RETRY, WAIT, FATAL = "retry", "wait", "fatal"
MAX_WAIT = 60.0     # a longer Retry-After ends this run (the poll resumes from its cursor next time)

# HTTP status → what to do. 429 is Shopify's REST throttle (and possibly GraphQL's: reference/shopify.md
# section 7 leaves it open), so it waits; 5xx are the shop's trouble and are retried a few times.
ACTIONS: dict[int, str] = {401: FATAL, 402: FATAL, 403: FATAL, 404: FATAL, 423: FATAL, 429: WAIT,
                           500: RETRY, 502: RETRY, 503: RETRY, 504: RETRY}
FATAL_HINTS = {
    401: "the access token was refused: check access_token_env",
    402: "the shop is frozen (unpaid): Shopify refuses API calls",
    403: "the access token lacks a scope (read_orders is needed; read_all_orders for orders older than 60 days)",
    404: "no such shop or API version: check domain and api_version",
    423: "the shop is locked",
}


class QueryTooCostly(FatalAPIError):
    """Shopify refused a query whose requested cost is above its single-query limit (MAX_COST_EXCEEDED).

    `cost` is Shopify's own count of the query, `max_cost` the limit: a caller that chose the page size
    asks again with a smaller one; for anyone else it is fatal (the same query is refused every time)."""

    def __init__(self, message: str, *, cost: float, max_cost: float, body: str = ""):
        super().__init__(message, status=200, body=body)
        self.cost, self.max_cost = cost, max_cost


def has_credentials(shop) -> bool:
    """True when the shop has a domain (or api_url) and an access token in its environment variable."""
    return bool((shop.get("domain") or shop.get("api_url")) and shop.secret_of("access_token"))


def graphql_url(shop) -> str:
    """`https://<domain>/admin/api/<version>/graphql.json`; `api_url` replaces `https://<domain>` (tests, proxies)."""
    base = shop.get("api_url") or f"https://{shop.get('domain')}"
    return f"{str(base).rstrip('/')}/admin/api/{shop.get('api_version', DEFAULT_API_VERSION)}/graphql.json"


def missing_api(shop) -> str:
    """What a shop's [[shops]] table lacks for the Admin API, in the words of the config."""
    missing = []
    if not (shop.get("domain") or shop.get("api_url")):
        missing.append('domain = "<shop>.myshopify.com"')
    var = shop.get("access_token_env")
    if not var:
        missing.append('access_token_env = "<variable holding the access token>"')
    what = f"add {' and '.join(missing)} to its [[shops]] table" if missing else ""
    if var and not shop.secret_of("access_token"):
        what += ("; then " if what else "") + f"set the environment variable {var} to the access token"
    return what


class ShopifyClient:
    """Sends GraphQL queries for one shop, paced by the shop's bucket."""

    def __init__(self, url: str, token: str, *, session: requests.Session | None = None, pacer: Pacer | None = None,
                 timeout: float = 60.0, max_attempts: int = 5, max_throttled: int = 100,
                 sleep: Callable[[float], None] = time.sleep):
        self.url, self.token = url, token
        self.http = session or requests.Session()
        self.pacer = pacer or Pacer(sleep=sleep)
        self.timeout, self.max_attempts, self.max_throttled = timeout, max_attempts, max_throttled
        self.sleep = sleep
        self.requested: dict[str, float] = {}   # last requested cost per query name
        self.calls = 0

    @classmethod
    def for_shop(cls, shop, **kw) -> "ShopifyClient":
        token = shop.secret_of("access_token")
        if not token or not (shop.get("domain") or shop.get("api_url")):
            raise ConfigError(f"shop {shop.name!r}: polling and backfill need the Admin API: {missing_api(shop)}")
        return cls(graphql_url(shop), token, **kw)

    def query(self, text: str, variables: Mapping[str, Any] | None = None, *, name: str = "", cost: float | None = None) -> dict:
        """Run one query and return its `data`; THROTTLED answers are waited out and re-sent."""
        expected = cost if cost is not None else self.requested.get(name, 0.0)
        failures = throttled = 0
        while True:
            self.pacer.before(expected)
            status, body, retry_after = self._post(text, variables)
            if status == 200 and not (isinstance(body, dict) and ("data" in body or "errors" in body)):
                # A maintenance or proxy page, or an api_url that is not Shopify's: taken for an answer without
                # data, it read as "no orders" and the poll's cursor moved past the window.
                shown = body.get("_text", body) if isinstance(body, dict) else body
                status, body = 0, f"not a GraphQL answer (HTTP 200): {str(shown)[:200]}"
            if status == 200 and isinstance(body, dict):
                cost_info = (body.get("extensions") or {}).get("cost") or {}
                if _is_throttled(body):
                    throttled += 1
                    if throttled > self.max_throttled:
                        raise RetriableAPIError(f"{name or 'query'}: still THROTTLED after {throttled} waits", retry_after=60)
                    requested = float(cost_info.get("requestedQueryCost") or expected or 1)
                    self.requested[name] = requested
                    expected = requested
                    self.pacer.on_throttled(cost_info, requested)
                    continue
                self.pacer.observe(cost_info)
                if cost_info.get("requestedQueryCost") is not None:
                    self.requested[name] = float(cost_info["requestedQueryCost"])
                try:
                    _raise_errors(body, name)
                except QueryTooCostly as e:
                    self.requested[name] = e.cost      # Shopify's price for it: the next attempt plans with it
                    raise
                return body.get("data") or {}
            failures += 1
            self._after_failure(status, body, name, failures, retry_after)

    def _post(self, text: str, variables) -> tuple[int, Any, float | None]:
        """(status, JSON body or text, Retry-After in seconds): Shopify's 429 bodies are JSON too."""
        self.calls += 1
        try:
            r = self.http.post(self.url, json={"query": text, "variables": dict(variables or {})},
                               headers={"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"},
                               timeout=self.timeout)
        except requests.RequestException as e:
            return 0, f"{type(e).__name__}: {e}", None
        retry_after = _retry_after(r.headers.get("Retry-After"))
        try:
            return r.status_code, r.json(), retry_after
        except ValueError:
            return r.status_code, {"_text": r.text[:300]}, retry_after

    def _after_failure(self, status: int, body: Any, name: str, failures: int, retry_after: float | None) -> None:
        action = ACTIONS.get(status, RETRY if status == 0 or status >= 500 else FATAL)
        if action == FATAL:
            hint = FATAL_HINTS.get(status, "the request was refused")
            raise FatalAPIError(f"Shopify answered {status} to {name or 'a query'}: {hint}", status=status, body=str(body)[:500])
        if failures >= self.max_attempts:
            raise RetriableAPIError(f"Shopify {name or 'query'} failed {failures} times (last: {status or body})", status=status or None)
        if action == WAIT and retry_after and retry_after > MAX_WAIT:
            raise RetriableAPIError(f"Shopify asks {name or 'the query'} to wait {retry_after:.0f} s", status=status,
                                    retry_after=retry_after)
        delay = retry_after if action == WAIT and retry_after else min(2.0 ** failures, 30.0)
        log.warning("shopify %s: %s, retrying in %.1fs", name or "query", status or body, delay)
        self.sleep(delay)


def _retry_after(header: str | None) -> float | None:
    """Shopify's Retry-After: seconds, often with a fraction (`2.0`)."""
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < float("inf") else None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_throttled(body: Mapping) -> bool:
    return any(((e or {}).get("extensions") or {}).get("code") == "THROTTLED" for e in body.get("errors") or ())


def _raise_errors(body: Mapping, name: str) -> None:
    errors = body.get("errors")
    if not errors:
        return
    first = errors[0] if isinstance(errors, list) and errors else errors
    message = first.get("message") if isinstance(first, dict) else str(first)
    ext = (first.get("extensions") or {}) if isinstance(first, dict) else {}
    code = ext.get("code") or ""
    if code == "MAX_COST_EXCEEDED":
        cost, limit = _number(ext.get("cost")), _number(ext.get("maxCost")) or 1000.0
        if cost is None:
            m = re.search(r"Query cost is (\d+)", str(message))
            cost = float(m.group(1)) if m else limit + 1
        raise QueryTooCostly(f"Shopify refused {name or 'a query'}: {str(message).splitlines()[0]}", cost=cost,
                             max_cost=limit, body=str(errors)[:500])
    if code == "ACCESS_DENIED" or "access" in str(message).lower():
        raise FatalAPIError(f"Shopify refused {name or 'a query'}: {message}", status=200, body=str(errors)[:500])
    raise RetriableAPIError(f"Shopify {name or 'query'} answered with errors: {message}")
