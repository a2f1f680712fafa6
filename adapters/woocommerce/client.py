"""A small WooCommerce REST API v3 client: auth, one table from HTTP outcome to action, bounded retries."""
from __future__ import annotations

import html
import ipaddress
import json
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
    if "json" in resp.headers.get("Content-Type", ""):
        return None
    # WordPress without pretty permalinks serves /wp-json/... as an ordinary HTML page; so does a firewall's
    # challenge. JSON under another content type (a cache that lost the header) is still the answer.
    return None if _looks_like_json(_text(resp)) else ROUTE


def _text(resp: requests.Response) -> str:
    """The body as text. WordPress's JSON is UTF-8 (and ASCII, as wp_json_encode escapes the rest); never
    let requests guess a charset from the whole body, which takes long on a page of 100 orders."""
    return resp.content.decode("utf-8", errors="replace")


def _looks_like_json(text: str) -> bool:
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


_JSON_START = re.compile(r"[\[{]")
_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def parse_json(text: str) -> tuple[object, str]:
    """The JSON of an answer and what was printed before it ("" when nothing). Raises ValueError.

    PHP prints notices, warnings and deprecations into the answer when the site has display_errors (or
    WP_DEBUG_DISPLAY) on, in front of WooCommerce's JSON, with the JSON content type; a plugin file saved
    with a byte order mark adds one. The data after them is intact: the JSON value that runs to the end
    of the body is taken, and what came before it is returned so that it can be reported.
    """
    text = text.lstrip("\ufeff")
    try:
        return json.loads(text), ""
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for tries, m in enumerate(_JSON_START.finditer(text, 0, 1 << 16)):
        if tries >= 200:
            break
        try:
            value, end = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if not text[end:].strip():
            return value, text[:m.start()]
    raise ValueError("not JSON")


def _plain(html_text: str, limit: int = 200) -> str:
    """HTML (a PHP notice, a page) as one line of text for a message."""
    text = " ".join(html.unescape(_TAG.sub(" ", html_text)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
        data = self._json(resp, path)
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
        except requests.TooManyRedirects:
            raise FatalAPIError(
                f"shop {self.shop.name}: {self.base} redirects the REST API request in a loop (often http and https "
                "sending each other back: a proxy that ends TLS without telling WordPress). Open "
                f"{self.url_for(path)[0]} in a browser to see where it goes") from None
        action = action_for(resp)
        if action is None:
            return resp
        raise self._error(action, resp, path)

    def _json(self, resp: requests.Response, path: str):
        """The answer's JSON; PHP output in front of it is reported (at most hourly), not fatal."""
        try:
            data, before = parse_json(_text(resp))
        except ValueError:
            raise FatalAPIError(
                f"shop {self.shop.name}: {path} did not answer JSON ({resp.status_code}, "
                f"{resp.headers.get('Content-Type', 'no content type')}); it starts with "
                f"{self._scrub(_plain(_text(resp)))!r}. PHP errors printed into the answer break it: turn "
                "display_errors off on the shop (define('WP_DEBUG_DISPLAY', false) in wp-config.php) and fix what "
                "the message names",
                status=resp.status_code, body=self._scrub(_text(resp)[:500])) from None
        if before.strip("\ufeff \r\n\t"):
            now = time.monotonic()
            if now - _PHP_OUTPUT_WARNED.get(self.shop.name, -PHP_OUTPUT_WARN_EVERY) >= PHP_OUTPUT_WARN_EVERY:
                _PHP_OUTPUT_WARNED[self.shop.name] = now
                log.warning("shop %s: the REST API answers with PHP output in front of its JSON (read anyway): %r. "
                            "Turn display_errors off on the shop (define('WP_DEBUG_DISPLAY', false) in "
                            "wp-config.php): a fatal error printed the same way would leave nothing to read",
                            self.shop.name, _plain(before))
        return data

    def _error(self, action: str, resp: requests.Response, path: str) -> OrderbridgeError:
        """The error for an answer, without the key or secret (a firewall's page may echo the request URL)."""
        err = self._describe(action, resp, path)
        if isinstance(err, RetriableAPIError):
            return RetriableAPIError(self._scrub(str(err)), status=err.status, retry_after=err.retry_after)
        return FatalAPIError(self._scrub(str(err)), status=err.status, body=self._scrub(err.body))

    def _scrub(self, text: str) -> str:
        for value in (self.secret, self.key):
            text = text.replace(value, "[redacted]") if value else text
        return text

    def _describe(self, action: str, resp: requests.Response, path: str) -> RetriableAPIError | FatalAPIError:
        name, code = self.shop.name, resp.status_code
        answer = _Answer.of(resp)
        where = f"{self.base}/wp-json/{API}/{path}" if not self.rest_route else f"{self.base}/?rest_route=/{API}/{path}"
        moved = _moved_base(self.base, resp)
        if action == RETRY:
            return RetriableAPIError(f"shop {name}: WooCommerce answered {code}{answer.said} on {path}", status=code,
                                     retry_after=_retry_after(resp))
        if moved and action in (AUTH, ROUTE):
            # requests sends the Authorization header to the host it was given only, never after a redirect
            # to another one; query parameters survive, so WooCommerce then sees no key at all
            return FatalAPIError(
                f"shop {name}: {self.base} redirects the REST API to {moved} ({code}{answer.said} there): a redirect "
                f"to another address drops the API key. Set url = \"{moved}\" for this shop",
                status=code, body=_text(resp)[:500])
        if answer.json is None and not (action == ROUTE and code == 404 and not self.rest_route):
            return FatalAPIError(self._not_woocommerce(answer, code, resp, path), status=code, body=_text(resp)[:500])
        if answer.code == "rest_no_route":
            return FatalAPIError(
                f"shop {name}: WordPress answered at {self.base}, but has no WooCommerce REST API route /{API}/{path} "
                f"({code} rest_no_route). Is WooCommerce (3.5 or later) installed and active on this site, and is "
                "url the address of the WordPress site that runs it (with its subfolder, if any)?",
                status=code, body=_text(resp)[:500])
        if action == AUTH:
            return FatalAPIError(f"shop {name}: {self._auth_advice(answer, code)}", status=code, body=_text(resp)[:500])
        if action == ROUTE:
            return FatalAPIError(
                f"shop {name}: {where} is not the REST API ({code}, "
                f"{resp.headers.get('Content-Type', 'no content type')}). The site probably has no pretty "
                f"permalinks: set rest_route = true for this shop (uses {self.base}/?rest_route=/{API}/{path})",
                status=code, body=_text(resp)[:500])
        return FatalAPIError(f"shop {name}: WooCommerce answered {code}{answer.said} on {path}",
                             status=code, body=_text(resp)[:500])

    def _not_woocommerce(self, answer: "_Answer", code: int, resp: requests.Response, path: str) -> str:
        """An HTML page (or other non-JSON) where WooCommerce answers JSON: something in front of it answered."""
        page = f"an HTML page titled {answer.title!r}" if answer.title else f"{_plain(_text(resp), 120)!r}"
        via = f" after a redirect to {resp.url.split('?')[0]}" if resp.history else ""
        text = (f"shop {self.shop.name}: the REST API ({path}) answered {code} with {page}{via} instead of "
                "WooCommerce's JSON. A firewall, security plugin, bot challenge, login wall, maintenance mode or "
                "cache in front of WordPress answers instead: allow /wp-json/ (and ?rest_route=) for this "
                f"server's address or its User-Agent \"{USER_AGENT}\"")
        if code == 200 and not self.rest_route:
            text += (f"; or, if the site has no pretty permalinks, set rest_route = true for this shop (uses "
                     f"{self.base}/?rest_route=/{API}/{path})")
        return text

    def _auth_advice(self, answer: "_Answer", code: int) -> str:
        said = f"{code}{answer.said}"
        if answer.code == "woocommerce_rest_cannot_view" and code == 401:
            # WooCommerce authenticated nobody: it never saw the key (WC_REST_Authentication reads the
            # header or the query parameters only when is_ssl(), and OAuth 1.0a otherwise)
            https = ("WordPress does not see the request as HTTPS (is_ssl() is false behind a proxy or load "
                     "balancer that ends TLS), and WooCommerce then accepts only OAuth 1.0a signatures: have "
                     "the proxy send X-Forwarded-Proto: https and set $_SERVER['HTTPS'] = 'on' for it in wp-config.php")
            if self.query_auth:
                return f"WooCommerce saw no API key ({said}), although it is in the query string. {https}"
            return (f"WooCommerce saw no API key ({said}). Either the server or a proxy strips the Authorization "
                    f"header: set query_string_auth = true for this shop; or {https}")
        if answer.code == "woocommerce_rest_cannot_view":
            return (f"the REST API key works, but its WordPress user may not read orders ({said}). Create the key "
                    "(WooCommerce → Settings → Advanced → REST API) for a user with the Shop manager or "
                    "Administrator role")
        text = (f"WooCommerce refused the REST API key ({said}). Check consumer_key_env/consumer_secret_env (the "
                "ck_ and cs_ of one key, from WooCommerce → Settings → Advanced → REST API) and that the key has "
                "Read or Read/Write permission")
        if answer.code != "woocommerce_rest_authentication_error":    # that one names a key it saw
            text += "; if the server strips the Authorization header, set query_string_auth = true"
        return text

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


_PHP_OUTPUT_WARNED: dict[str, float] = {}
PHP_OUTPUT_WARN_EVERY = 3600.0


@dataclass(frozen=True)
class _Answer:
    """What an error answer says: WooCommerce's {"code", "message"}, or an HTML page's title."""

    json: object | None
    code: str = ""
    message: str = ""
    title: str = ""

    @classmethod
    def of(cls, resp: requests.Response) -> "_Answer":
        try:
            data, _ = parse_json(_text(resp))
        except ValueError:
            found = _TITLE.search(_text(resp)[:1 << 16])
            return cls(None, title=_plain(found.group(1), 120) if found else "")
        if not isinstance(data, dict):
            return cls(data)
        return cls(data, str(data.get("code") or ""), _plain(str(data.get("message") or ""), 300))

    @property
    def said(self) -> str:
        """" code: "message"" for a message, or ""."""
        if self.json is None and self.title:
            return f" (an HTML page titled {self.title!r})"
        return "".join((f" {self.code}" if self.code else "", f": \"{self.message}\"" if self.message else ""))


def _moved_base(base: str, resp: requests.Response) -> str | None:
    """The shop address a redirect led the API request to, when it is another origin; else None."""
    if not resp.history:
        return None
    was, now = urlsplit(base), urlsplit(resp.url)
    if (was.scheme, was.netloc.lower()) == (now.scheme, now.netloc.lower()):
        return None
    at = now.path.find("/wp-json/")
    if at < 0 and "rest_route=" not in now.query:
        return None          # not the API any more (a login page): reported as what it is
    path = now.path[:at] if at >= 0 else now.path.rstrip("/")
    return f"{now.scheme}://{now.netloc}{path}"


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
