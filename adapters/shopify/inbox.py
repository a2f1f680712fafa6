"""Processing of stored Shopify deliveries: route by topic, translate, enqueue; compliance requests.

Called by the daemon's inbox job, one delivery per transaction (the job commits, or rolls back and
marks the delivery failed when this raises). Returns None when done, or why a delivery was ignored.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Callable, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.shopify import graphql as gql
from adapters.shopify.client import ShopifyClient, has_credentials
from adapters.shopify.sink import store_checkouts, store_orders
from adapters.shopify.translate import Untranslatable
from connector.errors import FatalAPIError, RetriableAPIError
from connector.format import normalise_phone
from connector.store import FAILED, INBOX_IGNORED, PENDING, ComplianceRequest, InboxDelivery, OutboxRow, utcnow

log = logging.getLogger(__name__)
_INBOX, _OUTBOX, _COMPLIANCE = InboxDelivery.__table__, OutboxRow.__table__, ComplianceRequest.__table__

# orders/edited carries an order_edit, not the order: the orders/updated that follows brings the change.
ORDER_TOPICS = ("orders/create", "orders/updated", "orders/paid", "orders/fulfilled", "orders/partially_fulfilled",
                "orders/cancelled")
CHECKOUT_TOPICS = ("checkouts/create", "checkouts/update")
REDACTED_BODY = b'{"redacted": true}'
PERSONAL_FIELDS = ("email", "phone", "firstName", "lastName", "deliveryAddress", "externalCustomerId", "restoreUrl")


def _json(delivery) -> dict:
    """The delivery's body as a JSON object; raises (the delivery is marked failed, the body kept)."""
    try:
        data = json.loads(bytes(delivery.body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"body is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    return data


def process(session: Session, delivery, shop) -> str | None:
    """Handle one stored delivery of `shop`; None when done, else the reason it was ignored."""
    topic = (delivery.topic or "").strip().lower()
    handler = HANDLERS.get(topic)
    if handler is None:
        return f"topic {topic or '(none)'!r} is stored but not translated into orders"
    payload = _json(delivery)
    store = other_store(delivery, shop, payload)
    if store is None:
        return handler(session, delivery, shop, payload)
    reason = (f"delivery for the store {store}, not {_domain(shop.get('domain'))} (domain of shop {shop.name!r}): "
              "left alone. If that is this shop's .myshopify.com name, correct `domain` and replay this delivery; "
              "if the app is installed on that store too, give it its own [[shops]] table and webhook URL, or "
              "uninstall the app there")
    if topic in ("shop/redact", "customers/redact"):
        # What that store sent here was never used, but it is held: its redaction applies to it.
        match = CustomerMatch(shop, payload) if topic == "customers/redact" else None
        n = _erase_deliveries(session, shop, match, f"erased on Shopify {topic} of {store}", store)
        _scrub_self(session, delivery)
        return reason + f"; its {n} webhook deliveries held here erased"
    if topic == "customers/data_request":
        # Compliance URLs are app-wide: another store's requests always come here, and none is about this
        # shop's data. Failed, they would pile up and fail again at every replay.
        return reason
    # Failed, not ignored: a `domain` with a typo (or a store renamed since) would otherwise drop every
    # order without a word; failed, it is counted, logged, and replayed once the config is right.
    raise DeliveryForAnotherStore(reason)


class DeliveryForAnotherStore(Exception):
    """A validly signed delivery whose X-Shopify-Shop-Domain (or shop_domain) names another store."""


_DOMAIN_HEADERS = ("x-shopify-shop-domain", "shopify-shop-domain")
_MYSHOPIFY = ".myshopify.com"


def _domain(value) -> str | None:
    text = str(value or "").strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    return text.rstrip("/") or None


def delivery_store(headers) -> str | None:
    """The store a delivery names in X-Shopify-Shop-Domain (the stored headers, JSON or a dict)."""
    if isinstance(headers, (str, bytes)):
        try:
            headers = json.loads(headers or "{}")
        except ValueError:
            return None
    if not isinstance(headers, dict):
        return None
    return next((_domain(v) for k, v in headers.items() if k.lower() in _DOMAIN_HEADERS and _domain(v)), None)


def other_store(delivery, shop, payload: Mapping) -> str | None:
    """The store a delivery is for when that is not `shop`, else None. An app's webhooks are signed with
    its client secret, the same for every store it is installed on, and app-wide subscriptions
    (shopify.app.toml, the compliance webhooks) have one URL for all of them: a signature proves the app,
    not the store. The store is named by X-Shopify-Shop-Domain, and by `shop_domain` in compliance bodies
    (always the `.myshopify.com` name); compared with the shop's `domain` when that is a `.myshopify.com`
    name too (a storefront domain there cannot be compared, and nothing is refused for it)."""
    ours = _domain(shop.get("domain"))
    if not ours or not ours.endswith(_MYSHOPIFY):
        return None
    named = {delivery_store(delivery.headers), _domain(payload.get("shop_domain"))}
    theirs = sorted(d for d in named - {None, ours} if d.endswith(_MYSHOPIFY))
    return theirs[0] if theirs else None


# ---- orders and checkouts ----------------------------------------------------------------------

# The inbox job processes a delivery in a transaction which on SQLite holds the database's write lock
# (daemon/jobs._next_new): every webhook received meanwhile waits for it before it is stored and
# answered, and Shopify gives up on a delivery after 5 s. Product details, and a refund's order, are
# fetched before that transaction (prepare), so inside it they are usually at hand. An API call made here
# (and in prepare, not to hold up the job) gets a hard deadline, one attempt, and no wait for the cost
# bucket (the poll may have just emptied it): when it cannot answer in time, the order goes without
# product details and a refund relies on Shopify's orders/updated.
API_DEADLINE = 1.5          # seconds
_API_CALLS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shopify-inbox-api")


def _inbox_client(shop) -> ShopifyClient:
    return ShopifyClient.for_shop(shop, timeout=API_DEADLINE, max_attempts=1, max_throttled=0)


def _within_deadline(call: Callable[[], object], until: float | None = None):
    """call() on a worker thread; its result, or TimeoutError when it has not answered by `until` (a
    time.monotonic() reading; default API_DEADLINE from now). It then finishes on its own: a product
    look-up still fills the cache for the next order."""
    wait = API_DEADLINE if until is None else max(0.1, until - time.monotonic())
    future = _API_CALLS.submit(call)
    try:
        return future.result(timeout=wait)
    except FuturesTimeout:
        raise TimeoutError(f"no answer within {API_DEADLINE:g}s") from None


def _products(shop, payload: Mapping, until: float | None = None):
    """Product details for the payload's lines when the shop has API credentials (never blocks an order)."""
    if not has_credentials(shop) or not shop.get("enrich_products", True):
        return {}
    from adapters.shopify.poller import products_for
    try:
        return _within_deadline(lambda: products_for(shop, lambda: _inbox_client(shop), [payload], quick=True), until)
    except TimeoutError as e:
        log.warning("shop %s: product details %s; the order goes without url/image", shop.name, e)
        return {}


# A refund's order fetched by prepare(), for on_refund: (shop, order id) → (when, the order or None, or the
# reason it could not be fetched). Per process; a daemon that did not prepare the delivery fetches it itself.
_FETCHED: dict[tuple[str, str], tuple[float, dict | None, str | None]] = {}
FETCHED_FOR = 30.0          # seconds a fetched order stands for the delivery that asked for it


def prepare(delivery, shop) -> None:
    """Outside the delivery's transaction (daemon.jobs._prepare_next): what its processing would ask the
    Admin API for while it holds SQLite's write lock. The product details of an order or checkout go into
    the shop's product cache; a refund's order is kept for on_refund (with its products cached). The
    inbox's short client and deadline, as inside. Never raises: the processing asks again for what is
    missing (or rests on a failure)."""
    topic = (delivery.topic or "").strip().lower()
    refund, products = topic == "refunds/create", bool(shop.get("enrich_products", True))
    if not has_credentials(shop) or not (refund or products and (topic in ORDER_TOPICS or topic in CHECKOUT_TOPICS)):
        return
    try:
        payload = _json(delivery)
        if other_store(delivery, shop, payload) is not None:
            return
        if refund:
            payload = _fetch_for_refund(shop, payload)
        if payload is not None and products:
            from adapters.shopify.poller import products_for
            products_for(shop, lambda: _inbox_client(shop), [payload], quick=True)
    except Exception as e:   # noqa: BLE001 - a warm-up only; processing reports what is wrong with the delivery
        log.debug("shop %s: nothing fetched ahead of delivery %s: %s", shop.name, delivery.id, e)


def _fetch_for_refund(shop, payload: Mapping) -> dict | None:
    order_id = str(payload.get("order_id") or "")
    if not order_id:
        return None
    order, error = None, None
    try:
        order = _within_deadline(lambda: fetch_order(shop, order_id, _inbox_client(shop)))
    except (RetriableAPIError, FatalAPIError, TimeoutError) as e:
        error = str(e)
    now = time.monotonic()
    for key, (when, _, _) in list(_FETCHED.items()):
        if now - when > FETCHED_FOR:
            _FETCHED.pop(key, None)             # bounded: only the last half-minute's
    _FETCHED[(shop.name, order_id)] = (now, order, error)
    return order


def on_order(session: Session, delivery, shop, payload: dict) -> str | None:
    try:
        r = store_orders(session, shop, [payload], f"webhook:{delivery.delivery_id or delivery.id}", _products(shop, payload))
    except Untranslatable as e:
        raise ValueError(str(e)) from None
    if r.stale:
        return f"older than the version already enqueued (updated_at {payload.get('updated_at')})"
    if r.unchanged:
        return "identical to the version already enqueued"
    return None


def on_checkout(session: Session, delivery, shop, payload: dict) -> str | None:
    if payload.get("completed_at"):
        return "checkout completed: the order arrives through orders/*"
    from adapters.shopify.translate import checkout_wire, has_contact
    if not has_contact(checkout_wire(payload, shop) or {}):
        # Shopify calls a checkout abandoned only once the buyer left contact details.
        return "checkout has no email, phone or customer yet: not an abandoned cart"
    r = store_checkouts(session, shop, [payload], f"webhook:{delivery.delivery_id or delivery.id}", _products(shop, payload))
    if r.stale:
        return f"older than the version already enqueued (updated_at {payload.get('updated_at')})"
    return "identical to the version already enqueued" if r.unchanged else None


# Refunds carry only the refund, not the order. With API credentials the order is fetched and
# re-translated; without them Shopify's own orders/updated (sent for every refund) brings the change.
OrderFetcher = Callable[[object, str], dict | None]


def fetch_order(shop, order_id: str, client: ShopifyClient | None = None) -> dict | None:
    from adapters.shopify.poller import all_line_items
    client = client or ShopifyClient.for_shop(shop, timeout=10, max_attempts=2)
    li = min(max(int(shop.get("line_items_per_order", 10)), 50), gql.line_items_that_fit(1))
    data = client.query(gql.ORDER_QUERY, {"id": f"gid://shopify/Order/{order_id}", "lineItems": li},
                        name="Order", cost=1 + gql.order_node_cost(li))
    node = data.get("order")
    if not node:
        return None
    return gql.order_from_node(node, line_items=all_line_items(client, node), tz=gql.shop_timezone(data))


def on_refund(session: Session, delivery, shop, payload: dict) -> str | None:
    order_id = payload.get("order_id")
    if not order_id:
        raise ValueError("refunds/create body has no order_id")
    if not has_credentials(shop):
        return (f"refund of order {order_id} recorded; without API credentials (domain, access_token_env) the "
                "order's new state comes with Shopify's orders/updated")
    until = time.monotonic() + API_DEADLINE            # one deadline for the order and its product details
    fetched = _FETCHED.pop((shop.name, str(order_id)), None)
    if fetched is not None and time.monotonic() - fetched[0] <= FETCHED_FOR:
        _, order, error = fetched
    else:                                               # not fetched ahead (prepare): here, under the deadline
        try:
            order, error = _within_deadline(lambda: fetch_order(shop, str(order_id), _inbox_client(shop)), until), None
        except (RetriableAPIError, FatalAPIError, TimeoutError) as e:
            error = str(e)
    if error is not None:
        return f"refund of order {order_id} recorded; the order could not be fetched ({error}): orders/updated brings the change"
    if order is None:
        return f"refund of order {order_id}: the order is not readable through the API"
    # with the product details webhooks and the poll give it, or the same order state reads as a new version
    r = store_orders(session, shop, [order], f"webhook:{delivery.delivery_id or delivery.id}", _products(shop, order, until))
    return None if r.enqueued or r.failed else "the refund did not change the order"


# ---- compliance (DESIGN.md section 7) -------------------------------------------------------------

def _masked(payload: dict) -> str:
    """The request as recorded: ids kept for the audit trail, the customer's email and phone left out."""
    kept = json.loads(json.dumps(payload))
    if isinstance(kept.get("customer"), dict):
        kept["customer"] = {"id": kept["customer"].get("id")}
    return json.dumps(kept, sort_keys=True)


def _record(session: Session, shop, topic: str, payload: dict, result: str, done: bool) -> None:
    session.execute(_COMPLIANCE.insert().values(platform="shopify", shop=shop.name, topic=topic, payload=_masked(payload),
                                                received_at=utcnow(), done_at=utcnow() if done else None, result=result))


class CustomerMatch:
    """Does a stored payload belong to the customer named in a compliance request?"""

    def __init__(self, shop, payload: dict):
        customer = payload.get("customer") or {}
        self.customer_id = str(customer.get("id") or "") or None
        self.email = (customer.get("email") or "").strip().lower() or None
        self.phone = normalise_phone(customer.get("phone"))
        ids = payload.get("orders_to_redact") or payload.get("orders_requested") or []
        self.order_ids = {str(i) for i in ids} | {f"{shop.order_id_prefix}{i}" for i in ids}

    def _values(self, data: Mapping) -> tuple[set, set, set]:
        customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}
        ids = {str(v) for v in (customer.get("id"), data.get("externalCustomerId")) if v}
        emails = {str(v).strip().lower() for v in (data.get("email"), data.get("contact_email"), customer.get("email")) if v}
        phones = {normalise_phone(v) for v in (data.get("phone"), customer.get("phone")) if v} - {None}
        return ids, emails, phones

    def matches(self, data: Mapping, order_id: str | None = None) -> bool:
        ids, emails, phones = self._values(data)
        return bool((self.customer_id and self.customer_id in ids) or (self.email and self.email in emails)
                    or (self.phone and self.phone in phones)
                    or (order_id and order_id in self.order_ids) or str(data.get("id") or data.get("order_id") or "") in self.order_ids)


def _load(raw) -> dict:
    try:
        data = json.loads(raw if isinstance(raw, str) else bytes(raw).decode("utf-8"))
        return data if isinstance(data, dict) else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def _redact_wire(payload: str) -> str:
    data = _load(payload)
    for k in PERSONAL_FIELDS:
        data.pop(k, None)
    data["redacted"] = True
    return json.dumps(data, sort_keys=True)


def erase(session: Session, shop, match: CustomerMatch | None, reason: str) -> tuple[int, int]:
    """Erase personal data of one customer (or, with `match=None`, of the whole shop) from the store.

    Inbox bodies and headers are replaced; outbox payloads lose their contact fields, and versions
    not yet sent are failed, since sending them would re-export the data. Returns (inbox, outbox) counts.
    """
    n_out = 0
    n_in = _erase_deliveries(session, shop, match, reason)
    rows = session.execute(select(_OUTBOX.c.id, _OUTBOX.c.payload, _OUTBOX.c.state, _OUTBOX.c.external_order_id)
                           .where(_OUTBOX.c.shop == shop.name))
    for r in list(rows):
        if match is not None and not match.matches(_load(r.payload), r.external_order_id):
            continue
        values = {"payload": _redact_wire(r.payload), "updated_at": utcnow()}
        if r.state == PENDING:
            values.update(state=FAILED, last_error=reason)
        session.execute(update(_OUTBOX).where(_OUTBOX.c.id == r.id).values(**values))
        n_out += 1
    for r in list(session.execute(select(_COMPLIANCE.c.id, _COMPLIANCE.c.payload).where(_COMPLIANCE.c.shop == shop.name))):
        if match is None or match.matches(_load(r.payload)):
            session.execute(update(_COMPLIANCE).where(_COMPLIANCE.c.id == r.id).values(payload=_masked(_load(r.payload))))
    return n_in, n_out


def _erase_deliveries(session: Session, shop, match: CustomerMatch | None, reason: str, store: str | None = None) -> int:
    """Replace the bodies and headers of the shop's inbox deliveries (of one customer, or all of them; with
    `store`, only those another store sent here, named in their X-Shopify-Shop-Domain)."""
    n, rows = 0, session.execute(select(_INBOX.c.id, _INBOX.c.body, _INBOX.c.headers)
                                 .where(_INBOX.c.platform == "shopify", _INBOX.c.shop == shop.name))
    hit = [r.id for r in rows if (store is None or delivery_store(r.headers) == store)
           and (match is None or match.matches(_load(r.body)))]
    for start in range(0, len(hit), 500):
        n += session.execute(update(_INBOX).where(_INBOX.c.id.in_(hit[start:start + 500])).values(
            body=REDACTED_BODY, headers="{}", state=INBOX_IGNORED, error=reason)).rowcount
    return n


def on_data_request(session: Session, delivery, shop, payload: dict) -> str | None:
    match = CustomerMatch(shop, payload)
    n_in = sum(1 for r in session.execute(select(_INBOX.c.body).where(_INBOX.c.shop == shop.name, _INBOX.c.id != delivery.id))
               if match.matches(_load(r.body)))
    n_out = sum(1 for r in session.execute(select(_OUTBOX.c.payload, _OUTBOX.c.external_order_id).where(_OUTBOX.c.shop == shop.name))
                if match.matches(_load(r.payload), r.external_order_id))
    _record(session, shop, "customers/data_request", payload,
            f"recorded; the connector store holds {n_in} webhook deliveries and {n_out} order versions for this "
            "customer: send them to the merchant (orderbridge outbox / inbox)", done=False)
    _scrub_self(session, delivery)
    return None


def on_customer_redact(session: Session, delivery, shop, payload: dict) -> str | None:
    n_in, n_out = erase(session, shop, CustomerMatch(shop, payload), "erased on Shopify customers/redact")
    _record(session, shop, "customers/redact", payload, f"erased {n_in} webhook deliveries and {n_out} order versions", done=True)
    _scrub_self(session, delivery)
    return None


def on_shop_redact(session: Session, delivery, shop, payload: dict) -> str | None:
    n_in, n_out = erase(session, shop, None, "erased on Shopify shop/redact")
    _record(session, shop, "shop/redact", payload, f"erased {n_in} webhook deliveries and {n_out} order versions", done=True)
    return None


def _scrub_self(session: Session, delivery) -> None:
    """The request itself names the customer's email and phone; keep only what the record keeps."""
    session.execute(update(_INBOX).where(_INBOX.c.id == delivery.id).values(body=_masked(_json(delivery)).encode()))


HANDLERS: dict[str, Callable] = {
    **dict.fromkeys(ORDER_TOPICS, on_order),
    **dict.fromkeys(CHECKOUT_TOPICS, on_checkout),
    "refunds/create": on_refund,
    "customers/data_request": on_data_request,
    "customers/redact": on_customer_redact,
    "shop/redact": on_shop_redact,
}
