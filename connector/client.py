"""The add-orders API client: one request, one outcome table, bounded retries (Yespo or our backend).

Every HTTP outcome maps to one action through `OUTCOMES` (status code or exception kind → action);
`AddOrdersClient.add_orders` applies it. Short retries (a dropped connection, a 503 blip) happen here
with tenacity, bounded; anything longer is the outbox's job (connector/retry.py), never a loop here.
"""
from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Callable, Iterable, Sequence

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay

from connector.errors import FatalAPIError, RetriableAPIError
from connector.format import MAX_ORDERS_PER_REQUEST, canonical_json

log = logging.getLogger(__name__)

CREDENTIALS_REFUSED = "the target refused the credentials"
_EXCERPT = 500


class Action(Enum):
    ACCEPTED = "accepted"          # 2xx: per-order outcome from failedOrders
    ALREADY_APPLIED = "already"    # 409 / "Duplicated request": the same request was applied before
    RETRY = "retry"                # 429, 5xx, connection trouble: later, honouring Retry-After
    STOP = "stop"                  # 401/403, no such endpoint, a redirect: a person must fix config; push nothing
    SPLIT = "split"                # other 4xx: something in the batch is bad; halve it to isolate it


# The outcome table. Status codes first; exact codes win over ranges.
OUTCOMES: dict[int | range, Action] = {
    401: Action.STOP,
    403: Action.STOP,
    404: Action.STOP,              # wrong [target] url: retrying or splitting cannot help
    405: Action.STOP,
    # Yespo documents 415 (Unsupported media type) for its JSON endpoints: it is about the request, never one
    # order, so splitting would fail every order of the batch one by one (2n-1 requests) for nothing.
    415: Action.STOP,
    408: Action.RETRY,
    409: Action.ALREADY_APPLIED,   # documented for contacts as "repeated request within 1 minute"
    429: Action.RETRY,
    range(200, 300): Action.ACCEPTED,
    # Redirects are not followed: requests would turn the POST into a body-less GET, and whatever 200
    # that GET earns would count as every order accepted. [target] url must name the API itself.
    range(300, 400): Action.STOP,
    range(400, 500): Action.SPLIT,
    range(500, 600): Action.RETRY,
}
# Exceptions raised by requests before any status exists. A URL requests cannot use (a port above
# 65535, no scheme) is a config mistake: waiting will not fix it.
EXCEPTION_OUTCOMES: dict[type[Exception], Action] = {
    requests.exceptions.InvalidURL: Action.STOP,
    requests.exceptions.MissingSchema: Action.STOP,
    requests.exceptions.InvalidSchema: Action.STOP,
    requests.ConnectionError: Action.RETRY,
    requests.Timeout: Action.RETRY,
    requests.exceptions.ChunkedEncodingError: Action.RETRY,
}
DUPLICATED = "duplicated request"   # the official Shopify app swallows errors carrying this text


def action_for(status: int | None, body: str = "", exc: Exception | None = None) -> Action:
    """Look an outcome up in the table."""
    if exc is not None:
        for kind, action in EXCEPTION_OUTCOMES.items():
            if isinstance(exc, kind):
                return action
        return Action.RETRY
    if DUPLICATED in body[:2000].lower() and status is not None and status >= 400:
        return Action.ALREADY_APPLIED
    if status in OUTCOMES:
        return OUTCOMES[status]
    for key, action in OUTCOMES.items():
        if isinstance(key, range) and status in key:
            return action
    return Action.SPLIT if status is not None and 400 <= status < 500 else Action.RETRY


class CredentialsRefused(FatalAPIError):
    """401/403 (or no such endpoint): stop pushing until a person fixes the key or the URL."""


class BatchRejected(FatalAPIError):
    """The target refused the whole request (a 4xx): split the batch to find the bad order."""


class Stopped(Exception):
    """The process is shutting down: the in-request retries end at once; the batch goes back to pending."""


@dataclass(frozen=True)
class FailedOrder:
    external_order_id: str | None
    error: str
    order: dict | None = None


@dataclass
class AddOrdersResult:
    status: int
    already_applied: bool = False
    failed: list[FailedOrder] = field(default_factory=list)

    def failed_by_id(self) -> dict[str, str]:
        return {f.external_order_id: f.error for f in self.failed if f.external_order_id is not None}


@dataclass(frozen=True)
class Attempt:
    """One HTTP request, for the push_attempts log."""

    started_at: datetime
    duration_ms: float
    orders: int
    status_code: int | None
    response_excerpt: str | None
    error: str | None


def parse_failed_orders(text: str) -> list[FailedOrder]:
    """`failedOrders` as Yespo may send it: a list, a single object, or nothing (empty/absent body)."""
    if not text or not text.strip():
        return []
    try:
        body = json.loads(text)
    except ValueError:
        log.warning("the target answered 2xx with a body that is not JSON: %.200s", text)
        return []
    raw = body.get("failedOrders") if isinstance(body, dict) else None
    if raw is None:
        return []
    if isinstance(raw, (dict, str)):    # one failure comes back as an object (yespo-api.md §4.1), or a message
        raw = [raw]
    return [_failed_order(f) for f in raw if isinstance(f, (dict, str))]


def _failed_order(entry) -> FailedOrder:
    if isinstance(entry, str):
        return FailedOrder(None, entry)
    order = entry.get("order") if isinstance(entry.get("order"), dict) else None
    oid = order.get("externalOrderId") if order else entry.get("externalOrderId")
    error = entry.get("error") or entry.get("message") or "listed in failedOrders without a reason"
    return FailedOrder(str(oid) if oid is not None else None, str(error), order)


MAX_RETRY_AFTER = 7 * 86400.0     # a longer hint is honoured as a week (a date beyond datetime's range would crash)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) in seconds, at most MAX_RETRY_AFTER; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(max(0.0, when.timestamp() - (time.time() if now is None else now)), MAX_RETRY_AFTER)


def request_body(payloads: Sequence[str | dict]) -> bytes:
    """`{"orders": [...]}` built from canonical wire JSON without parsing it again."""
    if len(payloads) > MAX_ORDERS_PER_REQUEST:
        raise ValueError(f"{len(payloads)} orders in one request; the limit is {MAX_ORDERS_PER_REQUEST}")
    parts = (p if isinstance(p, str) else canonical_json(p) for p in payloads)
    return ('{"orders":[' + ",".join(parts) + "]}").encode()


@dataclass(frozen=True)
class RetryPolicy:
    """Short, bounded in-request retries; the outbox schedule handles anything longer."""

    attempts: int = 3
    max_wait: float = 5.0          # a Retry-After longer than this goes back to the outbox instead
    max_total: float = 30.0

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            return min(hinted, self.max_wait)
        return min(0.5 * 2 ** (state.attempt_number - 1), self.max_wait)

    def retrying(self, stop: threading.Event | None = None) -> Retrying:
        """The retries of one request; with `stop`, its waits end as soon as it is set."""
        def give_up_on_long_hint(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return getattr(exc, "retry_after", None) is not None and exc.retry_after > self.max_wait
        kw = {} if stop is None else {"sleep": stop.wait}
        return Retrying(stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_total) | give_up_on_long_hint,
                        wait=self.wait, retry=retry_if_exception_type(RetriableAPIError), reraise=True, **kw)


class AddOrdersClient:
    """Talks to `POST {base}/orders` and `GET {base}/account/info` with Basic auth (key as password)."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 60.0,
                 retry: RetryPolicy = RetryPolicy(), session: requests.Session | None = None,
                 on_attempt: Callable[[Attempt], None] | None = None):
        self.base = base_url.rstrip("/")
        self.timeout = (min(10.0, timeout), timeout)    # (connect, read)
        self.retry = retry
        self.on_attempt = on_attempt
        self.session = session or requests.Session()
        self.session.auth = ("orderbridge", api_key or "")
        self.session.headers.update({"Content-Type": "application/json", "Accept": "application/json",
                                     "User-Agent": "orderbridge"})

    @classmethod
    def from_config(cls, config, **kw) -> "AddOrdersClient":
        return cls(config.target.url, config.target.api_key, timeout=config.target.timeout, **kw)

    def add_orders(self, payloads: Sequence[str | dict], before_attempt: Callable[[], None] | None = None,
                   stop: threading.Event | None = None) -> AddOrdersResult:
        """Send one batch. Raises RetriableAPIError, CredentialsRefused or BatchRejected; Stopped when `stop`
        is set before a retry (a shutdown waits for one request at most, not for every retry of it)."""
        body = request_body(payloads)
        for attempt in self.retry.retrying(stop):
            with attempt:
                if stop is not None and stop.is_set() and attempt.retry_state.attempt_number > 1:
                    raise Stopped("shutting down: the batch goes back to pending")
                if before_attempt is not None:
                    before_attempt()
                return self._post_once(body, len(payloads))
        raise AssertionError("tenacity returned without an outcome")   # reraise=True makes this unreachable

    def account_info(self) -> dict:
        """GET /account/info: proves the URL and the credentials. Raises like add_orders."""
        r = self._request("GET", "/account/info", None, 0)
        action = action_for(r.status_code, r.text)
        if action is Action.ACCEPTED:
            self._refuse_web_page(r)
            try:
                return json.loads(r.text) if r.text.strip() else {}
            except ValueError:
                return {"raw": r.text[:_EXCERPT]}
        self._raise(action, r)
        return {}

    def _post_once(self, body: bytes, count: int) -> AddOrdersResult:
        r = self._request("POST", "/orders", body, count)
        action = action_for(r.status_code, r.text)
        if action is Action.ACCEPTED:
            self._refuse_web_page(r)
            return AddOrdersResult(r.status_code, failed=parse_failed_orders(r.text))
        if action is Action.ALREADY_APPLIED:
            return AddOrdersResult(r.status_code, already_applied=True)
        self._raise(action, r)
        raise AssertionError("unreachable")

    @staticmethod
    def _refuse_web_page(r: requests.Response) -> None:
        """A 2xx web page is not the API: a login portal, a proxy or a site's front page at the wrong URL.

        The add-orders API answers an empty body or JSON. Counting a page as accepted would lose every
        order of the batch; for account/info (`orderbridge check`) it would call a URL good that push
        then refuses."""
        if r.text.lstrip()[:1] == "<":
            raise CredentialsRefused(f"the target answered {r.status_code} with a web page, not the add-orders API "
                                     f"({r.text.strip()[:80]!r}); check [target] url", status=r.status_code,
                                     body=r.text[:_EXCERPT])

    def _raise(self, action: Action, r: requests.Response) -> None:
        status, excerpt = r.status_code, r.text[:_EXCERPT]
        if action is Action.RETRY:
            raise RetriableAPIError(f"the target answered {status}: {excerpt}", status=status,
                                    retry_after=retry_after_seconds(r.headers.get("Retry-After")))
        if action is Action.STOP:
            if status in (401, 403):
                what = CREDENTIALS_REFUSED
            elif 300 <= status < 400:
                where = r.headers.get("Location") or "nowhere (no Location header)"
                what = (f"the target redirects ({status}) to {where[:300]}; set [target] url to the API's own "
                        "address (redirects are not followed: they would turn the POST into a GET)")
            elif status == 415:
                what = (f"the target refused the request's media type (415: {excerpt[:200]}); it takes "
                        "Content-Type: application/json, check [target] url and any proxy in between")
            else:
                what = f"the target has no such endpoint ({status}); check [target] url"
            raise CredentialsRefused(what, status=status, body=excerpt)
        raise BatchRejected(f"the target rejected the request ({status}): {excerpt}", status=status, body=r.text)

    def _request(self, method: str, path: str, body: bytes | None, count: int) -> requests.Response:
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        try:
            r = self.session.request(method, self.base + path, data=body, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as e:
            self._record(Attempt(started, _ms(t0), count, None, None, f"{type(e).__name__}: {e}"[:_EXCERPT]))
            action = action_for(None, exc=e)
            if action is Action.RETRY:
                raise RetriableAPIError(f"the target {shown_url(self.base)} could not be reached "
                                        f"({type(e).__name__})") from e
            if action is Action.STOP:
                raise CredentialsRefused(f"the target URL cannot be used ({type(e).__name__}: {str(e)[:200]}); "
                                         "check [target] url") from e
            raise
        self._record(Attempt(started, _ms(t0), count, r.status_code, r.text[:_EXCERPT] or None, None))
        return r

    def _record(self, attempt: Attempt) -> None:
        if self.on_attempt is not None:
            self.on_attempt(attempt)


def shown_url(url: str) -> str:
    """A URL fit for logs and messages: any user:password@ in it is left out."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def chunks(items: Iterable, size: int = MAX_ORDERS_PER_REQUEST):
    """Split an iterable into lists of at most `size` (never more than the API allows)."""
    size = min(size, MAX_ORDERS_PER_REQUEST)
    batch: list = []
    for x in items:
        batch.append(x)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
