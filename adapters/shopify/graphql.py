"""GraphQL Admin API queries and the mapping of their nodes to the webhook/REST shape (pure).

Polling, backfill and webhooks all end in `translate`, which reads the webhook shape; mapping
GraphQL nodes into that shape keeps one translation path and one set of expectations.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHIPPING_LINES = 5          # shipping lines read per order (an order rarely has more than one)
CHECKOUT_LINES = 20         # line items read per abandoned checkout
MONEY = "{ shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }"
ADDRESS = "{ firstName lastName phone address1 address2 city province zip country }"

ORDER_FIELDS = f"""
  id legacyResourceId name email phone createdAt processedAt updatedAt cancelledAt cancelReason closedAt test
  currencyCode presentmentCurrencyCode taxesIncluded sourceName paymentGatewayNames discountCodes
  displayFinancialStatus displayFulfillmentStatus
  totalPriceSet {MONEY} totalDiscountsSet {MONEY} totalTaxSet {MONEY} totalShippingPriceSet {MONEY}
  customer {{ legacyResourceId email phone firstName lastName }}
  billingAddress {ADDRESS} shippingAddress {ADDRESS}
"""
LINE_FIELDS = f"""
  id name title quantity sku variant {{ legacyResourceId }} product {{ legacyResourceId }}
  originalUnitPriceSet {MONEY} discountAllocations {{ allocatedAmountSet {MONEY} }}
"""
SHIPPING_FIELDS = f"id title originalPriceSet {MONEY} discountedPriceSet {MONEY}"

ORDERS_QUERY = f"""
query Orders($first: Int!, $after: String, $query: String, $lineItems: Int!) {{
  shop {{ ianaTimezone }}
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {ORDER_FIELDS}
      shippingLines(first: {SHIPPING_LINES}) {{ nodes {{ {SHIPPING_FIELDS} }} }}
      lineItems(first: $lineItems) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }} }}
    }}
  }}
}}"""

ORDER_LINE_ITEMS_QUERY = f"""
query OrderLineItems($id: ID!, $after: String, $first: Int!) {{
  order(id: $id) {{ lineItems(first: $first, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }} }} }}
}}"""

ORDER_QUERY = f"""
query Order($id: ID!, $lineItems: Int!) {{
  shop {{ ianaTimezone }}
  order(id: $id) {{ {ORDER_FIELDS}
    shippingLines(first: 5) {{ nodes {{ {SHIPPING_FIELDS} }} }}
    lineItems(first: $lineItems) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }} }}
  }}
}}"""

CHECKOUTS_QUERY = f"""
query AbandonedCheckouts($first: Int!, $after: String, $query: String) {{
  shop {{ ianaTimezone }}
  abandonedCheckouts(first: $first, after: $after, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id name abandonedCheckoutUrl createdAt updatedAt completedAt taxesIncluded
      totalPriceSet {MONEY} subtotalPriceSet {MONEY} totalDiscountSet {MONEY} totalTaxSet {MONEY} totalDutiesSet {MONEY}
      customer {{ legacyResourceId email phone firstName lastName }}
      billingAddress {ADDRESS} shippingAddress {ADDRESS}
      lineItems(first: {CHECKOUT_LINES}) {{ nodes {{ id title quantity sku variant {{ legacyResourceId }} product {{ legacyResourceId }}
        originalUnitPriceSet {MONEY} discountedTotalPriceSet {MONEY} }} }}
    }}
  }}
}}"""

# Requested cost of the queries above, by Shopify's documented rules: a scalar or enum 0, an object 1, a
# connection 2 plus `first` times one node. A query whose requested cost is above 1000 is refused whole
# (MAX_COST_EXCEEDED), so these must not count low: every money set is three objects (MoneyBag, its
# shopMoney and its presentmentMoney), which is most of an order's price. Shopify's own count, read from
# each answer, replaces these once known (poller.Poller).
MONEY_COST = 3
ADDRESS_COST = 1
LINE_ITEM_COST = 1 + 1 + 1 + MONEY_COST + (1 + MONEY_COST)     # line, variant, product, unit price, an allocation
SHIPPING_LINE_COST = 1 + 2 * MONEY_COST
ORDER_OWN_COST = 1 + 4 * MONEY_COST + 1 + 2 * ADDRESS_COST      # order, 4 money sets, customer, 2 addresses
CHECKOUT_NODE_COST = (1 + 5 * MONEY_COST + 1 + 2 * ADDRESS_COST
                      + 2 + CHECKOUT_LINES * (1 + 1 + 1 + 2 * MONEY_COST))
MAX_QUERY_COST = 1000       # Shopify's single-query limit


def order_node_cost(line_items: int) -> int:
    """Requested cost of one order node of ORDERS_QUERY / ORDER_QUERY with `line_items` lines asked for."""
    return ORDER_OWN_COST + (2 + SHIPPING_LINES * SHIPPING_LINE_COST) + (2 + line_items * LINE_ITEM_COST)


def line_items_that_fit(overhead: int, budget: int = MAX_QUERY_COST) -> int:
    """The most line items one order node may ask for, with `overhead` points of query around it."""
    return max(1, (budget - overhead - order_node_cost(0)) // LINE_ITEM_COST)


PRODUCTS_QUERY = """
query Products($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Product { id legacyResourceId onlineStoreUrl productType description featuredImage { url } } }
}"""

SCOPES_QUERY = "query Scopes { currentAppInstallation { accessScopes { handle } } shop { ianaTimezone } }"

# Bulk queries take no `first` on nested connections; nested rows come back as their own JSONL
# lines carrying `__parentId` (reference/shopify.md section 4.4).
BULK_ORDERS = """
{{ orders(query: "{query}", sortKey: UPDATED_AT) {{ edges {{ node {{ {order}
  shippingLines {{ edges {{ node {{ {shipping} }} }} }}
  lineItems {{ edges {{ node {{ {line} }} }} }}
}} }} }} }}"""

BULK_RUN = """
mutation Run($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""

# From 2026-01 a bulk query's output is not grouped unless asked for (`groupObjects` defaults to false:
# Shopify changelog 2025-10-29): a line item's row no longer follows its order. The backfill reads orders
# as they stream, so it asks for grouping; versions before 2025-10 know no such argument (and group).
BULK_RUN_GROUPED = """
mutation Run($query: String!, $groupObjects: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $groupObjects) { bulkOperation { id status } userErrors { field message } }
}"""

BULK_STATUS = """
query Bulk($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } }
}"""


def bulk_orders_query(search: str) -> str:
    return BULK_ORDERS.format(query=search.replace('"', '\\"'), order=ORDER_FIELDS, shipping=SHIPPING_FIELDS,
                              line=LINE_FIELDS)


def legacy_id(gid: Any) -> str | None:
    """`gid://shopify/Order/123` → `123` (ids stay strings: they are 64-bit)."""
    if gid is None:
        return None
    return str(gid).rsplit("/", 1)[-1] or None


def _set(money: Mapping | None) -> dict | None:
    if not isinstance(money, Mapping):
        return None
    out = {}
    for ours, theirs in (("shop_money", "shopMoney"), ("presentment_money", "presentmentMoney")):
        m = money.get(theirs) or {}
        out[ours] = {"amount": m.get("amount"), "currency_code": m.get("currencyCode")}
    return out


def _shop_amount(money: Mapping | None) -> str | None:
    return ((money or {}).get("shopMoney") or {}).get("amount")


def _address(a: Mapping | None) -> dict | None:
    if not isinstance(a, Mapping):
        return None
    keys = {"firstName": "first_name", "lastName": "last_name"}
    return {keys.get(k, k): v for k, v in a.items()}


def _customer(c: Mapping | None) -> dict | None:
    if not isinstance(c, Mapping):
        return None
    return {"id": c.get("legacyResourceId") or legacy_id(c.get("id")), "email": c.get("email"), "phone": c.get("phone"),
            "first_name": c.get("firstName"), "last_name": c.get("lastName")}


def _nodes(conn: Any) -> list:
    if isinstance(conn, list):
        return conn
    if not isinstance(conn, Mapping):
        return []
    if "nodes" in conn:
        return list(conn["nodes"] or [])
    return [e.get("node") for e in conn.get("edges") or [] if isinstance(e, Mapping)]


def line_item(n: Mapping) -> dict:
    price = n.get("originalUnitPriceSet")
    return {
        "id": legacy_id(n.get("id")), "name": n.get("name") or n.get("title"), "title": n.get("title"),
        "quantity": n.get("quantity"), "sku": n.get("sku"),
        "product_id": ((n.get("product") or {}).get("legacyResourceId")),
        "variant_id": ((n.get("variant") or {}).get("legacyResourceId")),
        "price": _shop_amount(price), "price_set": _set(price),
        "discount_allocations": [{"amount": _shop_amount(d.get("allocatedAmountSet")), "amount_set": _set(d.get("allocatedAmountSet"))}
                                 for d in n.get("discountAllocations") or () if isinstance(d, Mapping)],
    }


def shipping_line(n: Mapping) -> dict:
    return {"title": n.get("title"), "price": _shop_amount(n.get("originalPriceSet")), "price_set": _set(n.get("originalPriceSet")),
            "discounted_price": _shop_amount(n.get("discountedPriceSet")), "discounted_price_set": _set(n.get("discountedPriceSet"))}


# displayFulfillmentStatus → REST's fulfillment_status, which knows only these (null otherwise): an order
# IN_PROGRESS or ON_HOLD reads the same by poll as by webhook.
_FULFILMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}


def shop_timezone(data: Mapping | None) -> str | None:
    """`shop { ianaTimezone }` from a query's data, when asked for and answered."""
    tz = ((data or {}).get("shop") or {}).get("ianaTimezone")
    return tz if isinstance(tz, str) and tz else None


def local_time(value: Any, tz: str | None) -> Any:
    """A GraphQL DateTime (always UTC, `...Z`) in the shop's time zone, written as REST and webhooks
    write it (`2025-01-23T05:18:47-05:00`): the same order state then has the same content whichever
    way it came, and a poll overlap re-reading a webhook's order enqueues nothing. Unchanged when the
    time zone is unknown or the value is not a date."""
    if not tz or not isinstance(value, str) or not value:
        return value
    try:
        zone = ZoneInfo(tz)
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone).isoformat()
    except (ValueError, ZoneInfoNotFoundError):
        return value


def order_from_node(n: Mapping, line_items: Iterable[Mapping] | None = None,
                    shipping_lines: Iterable[Mapping] | None = None, tz: str | None = None) -> dict:
    """A GraphQL `Order` node (paginated or bulk) in the webhook/REST shape `translate` reads; `tz`: the
    shop's time zone (shop_timezone), for dates as webhooks write them."""
    lines = list(line_items) if line_items is not None else _nodes(n.get("lineItems"))
    ships = list(shipping_lines) if shipping_lines is not None else _nodes(n.get("shippingLines"))
    fin = n.get("displayFinancialStatus")
    ful = n.get("displayFulfillmentStatus")
    return {
        "id": n.get("legacyResourceId") or legacy_id(n.get("id")),
        "name": n.get("name"), "email": n.get("email"), "phone": n.get("phone"),
        "created_at": local_time(n.get("createdAt"), tz), "processed_at": local_time(n.get("processedAt"), tz),
        "updated_at": local_time(n.get("updatedAt"), tz), "cancelled_at": local_time(n.get("cancelledAt"), tz),
        "cancel_reason": (n.get("cancelReason") or "").lower() or None,
        "closed_at": local_time(n.get("closedAt"), tz), "test": n.get("test"),
        "currency": n.get("currencyCode"), "presentment_currency": n.get("presentmentCurrencyCode"),
        "taxes_included": n.get("taxesIncluded"), "source_name": n.get("sourceName"),
        "payment_gateway_names": n.get("paymentGatewayNames") or [],
        "discount_codes": [{"code": c} for c in n.get("discountCodes") or ()],
        "financial_status": fin.lower() if isinstance(fin, str) else None,
        "fulfillment_status": _FULFILMENT.get(ful) if isinstance(ful, str) else None,
        "total_price": _shop_amount(n.get("totalPriceSet")), "total_price_set": _set(n.get("totalPriceSet")),
        "total_discounts": _shop_amount(n.get("totalDiscountsSet")), "total_discounts_set": _set(n.get("totalDiscountsSet")),
        "total_tax": _shop_amount(n.get("totalTaxSet")), "total_tax_set": _set(n.get("totalTaxSet")),
        "total_shipping_price_set": _set(n.get("totalShippingPriceSet")),
        "customer": _customer(n.get("customer")),
        "billing_address": _address(n.get("billingAddress")), "shipping_address": _address(n.get("shippingAddress")),
        "shipping_lines": [shipping_line(s) for s in ships if isinstance(s, Mapping)],
        "line_items": [line_item(li) for li in lines if isinstance(li, Mapping)],
    }


def checkout_from_node(n: Mapping, tz: str | None = None) -> dict:
    """A GraphQL `AbandonedCheckout` node in the REST `checkouts.json` shape (`tz` as for order_from_node)."""
    lines = []
    for li in _nodes(n.get("lineItems")):
        qty = li.get("quantity") or 0
        total = _shop_amount(li.get("discountedTotalPriceSet"))
        price = _shop_amount(li.get("originalUnitPriceSet"))
        discount = None
        if total is not None and price is not None and qty:
            discount = str(Decimal(str(price)) * qty - Decimal(str(total)))
        lines.append({"id": legacy_id(li.get("id")), "title": li.get("title"), "name": li.get("title"), "quantity": qty,
                      "sku": li.get("sku"), "product_id": (li.get("product") or {}).get("legacyResourceId"),
                      "variant_id": (li.get("variant") or {}).get("legacyResourceId"),
                      "price": price, "price_set": _set(li.get("originalUnitPriceSet")),
                      "discount_allocations": [{"amount": discount}] if discount and Decimal(discount) > 0 else []})
    return {
        "id": legacy_id(n.get("id")), "name": n.get("name"), "abandoned_checkout_url": n.get("abandonedCheckoutUrl"),
        "created_at": local_time(n.get("createdAt"), tz), "updated_at": local_time(n.get("updatedAt"), tz),
        "completed_at": local_time(n.get("completedAt"), tz),
        "taxes_included": n.get("taxesIncluded"),
        "currency": ((n.get("totalPriceSet") or {}).get("shopMoney") or {}).get("currencyCode"),
        "presentment_currency": ((n.get("totalPriceSet") or {}).get("presentmentMoney") or {}).get("currencyCode"),
        "total_price": _shop_amount(n.get("totalPriceSet")), "total_price_set": _set(n.get("totalPriceSet")),
        "subtotal_price": _shop_amount(n.get("subtotalPriceSet")), "total_duties": _shop_amount(n.get("totalDutiesSet")),
        "total_discounts": _shop_amount(n.get("totalDiscountSet")), "total_tax": _shop_amount(n.get("totalTaxSet")),
        "email": (n.get("customer") or {}).get("email"), "customer": _customer(n.get("customer")),
        "billing_address": _address(n.get("billingAddress")), "shipping_address": _address(n.get("shippingAddress")),
        "line_items": lines,
    }
