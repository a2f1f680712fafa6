"""Polling against a Shopify that prices queries by its documented rules, not by the poller's own guess.

Shopify's cost calculation (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, "Cost
calculation"): a scalar or enum costs 0, every object 1, a connection 2 plus `first` times the cost of
one node; a query whose *requested* cost is above 1000 is refused whole with MAX_COST_EXCEEDED (HTTP 200,
`errors[0].extensions = {code, cost, maxCost}`, the message "Query cost is N, which exceeds the single
query max cost limit (1000)."). Every `...Set { shopMoney {..} presentmentMoney {..} }` is three objects
(MoneyBag, and a MoneyV2 on each side), so an order node with 10 line items costs about 155 points, not
the 43 the poller counted. The shared fake priced queries by the poller's own formula, so no test saw the
first page refused; here the fake prices them the way Shopify does.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy.orm import Session

from adapters.shopify import inbox as shop_inbox
from adapters.shopify.client import ShopifyClient
from adapters.shopify.poller import poll
from connector.errors import FatalAPIError
from tests.conftest import FIXTURES, outbox_rows as rows
from tests.fakes.fake_shopify import (TOKEN, FakeShopify, _cursor, _uncursor, checkout_node_from_rest, generated_orders,
                                      node_from_rest)

SHOP = FIXTURES / "shopify"
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)
FAST = 1_000_000

# Shopify's rules applied to the fields orderbridge asks for (adapters/shopify/graphql.py).
MONEY = 3                                   # MoneyBag + shopMoney + presentmentMoney
ORDER_OWN = 1 + 4 * MONEY + 1 + 2           # order, 4 money sets, customer, 2 addresses
SHIPPING_LINE = 1 + 2 * MONEY               # the line, its original and discounted price sets
LINE_ITEM = 1 + 1 + 1 + MONEY + (1 + MONEY)  # line, variant, product, unit price, a discount allocation
CHECKOUT_OWN = 1 + 5 * MONEY + 1 + 2       # checkout, 5 money sets (total, subtotal, discount, tax, duties), customer, 2 addresses
CHECKOUT_LINE = 1 + 1 + 1 + 2 * MONEY


def rest(name: str) -> dict:
    return json.loads((SHOP / name).read_text())


def order_node(line_items: int) -> int:
    return ORDER_OWN + (2 + 5 * SHIPPING_LINE) + (2 + line_items * LINE_ITEM)


class ShopifyPricedFake(FakeShopify):
    """The shared fake, with Shopify's own price list for the requested cost (`factor` > 1: a Shopify that
    counts even more than the documented minimum, e.g. lists of discount allocations by their length)."""

    def __init__(self, *a, factor: float = 1.0, **kw):
        super().__init__(*a, **kw)
        self.factor = factor
        self.refused: list[tuple[str, int]] = []

    def _price(self, name: str, cost: float) -> int:
        return int(cost * self.factor)

    def _orders(self, v):
        _, produce = super()._orders(v)
        li = int(v.get("lineItems", 10))
        return self._price("Orders", 1 + 2 + int(v["first"]) * order_node(li)), produce

    def _checkouts(self, v):
        _, produce = super()._checkouts(v)
        return self._price("AbandonedCheckouts", 1 + 2 + int(v["first"]) * (CHECKOUT_OWN + 2 + 20 * CHECKOUT_LINE)), produce

    def _order(self, v):
        _, produce = super()._order(v)
        li = int(v.get("lineItems", 10))
        return self._price("Order", 1 + order_node(li)), produce

    def _order_line_items(self, v):
        first = int(v.get("first", 250))

        def produce():
            n = next(o for o in self.orders if o["id"] == v["id"])
            start = _uncursor(v.get("after"))
            lines = n["lineItems"][start:start + first]
            info = {"hasNextPage": start + first < len(n["lineItems"]), "endCursor": _cursor(start + len(lines))}
            return {"order": {"lineItems": {"nodes": lines, "pageInfo": info}}}, 3 + LINE_ITEM * len(lines)
        return self._price("OrderLineItems", 1 + 2 + first * LINE_ITEM), produce

    def _answer(self, query, v):
        response = super()._answer(query, v)
        first = response[0] if isinstance(response, tuple) else response
        body = first.get_json()
        for e in (body or {}).get("errors") or ():
            if (e.get("extensions") or {}).get("code") == "MAX_COST_EXCEEDED":
                self.refused.append((query.split("(")[0].split()[-1], e["extensions"]["cost"]))
        return response


def test_the_first_poll_of_real_orders_is_not_refused_for_its_cost(engine, make_shop):
    orders = [node_from_rest(rest("webhook_orders_cancelled_refunded_hkd.json")),
              node_from_rest(rest("webhook_orders_create_guest_hkd_discounts.json"))] + generated_orders(60)
    with ShopifyPricedFake(orders, restore_rate=FAST) as fake:
        shop = make_shop(fake, poll_checkouts=False)
        assert poll(engine, shop, now=NOW) == 61          # the guest order has no contact: a failed row
        assert fake.refused == []                         # no page was sent that Shopify refuses
    assert len(rows(engine)) == 62


def test_abandoned_checkouts_poll_is_not_refused_for_its_cost(engine, make_shop):
    checkout = checkout_node_from_rest(rest("rest_abandoned_checkouts_list_shopify_python_api.json")["checkouts"][0])
    with ShopifyPricedFake(generated_orders(3), [checkout], restore_rate=FAST) as fake:
        assert poll(engine, make_shop(fake), now=NOW) == 4
        assert fake.refused == []


def test_an_order_with_more_line_items_than_one_page_holds(engine, make_shop):
    big = generated_orders(1, items=(140,))
    with ShopifyPricedFake(big, restore_rate=FAST) as fake:
        assert poll(engine, make_shop(fake, poll_checkouts=False, line_items_per_order=5), now=NOW) == 1
        assert fake.refused == []
    [row] = rows(engine)
    assert len(json.loads(row.payload)["items"]) == 140


def test_a_shopify_that_counts_more_than_expected_gets_smaller_pages_not_a_failed_poll(engine, make_shop):
    """The requested cost is Shopify's to say: a refused page is asked again, smaller, at the price Shopify
    named, and the poll goes on."""
    with ShopifyPricedFake(generated_orders(120), restore_rate=FAST, factor=3.0) as fake:
        client = ShopifyClient.for_shop(make_shop(fake), sleep=lambda s: None)
        assert poll(engine, make_shop(fake, poll_checkouts=False), now=NOW, client=client) == 120
        assert 1 <= len(fake.refused) <= 2               # learnt once, then every page fits
    ids = [r.external_order_id for r in rows(engine)]
    assert len(ids) == len(set(ids)) == 120


def test_line_items_per_order_too_large_for_one_order_still_polls(engine, make_shop):
    """100 line items per order is 1000+ points for one order alone: the poller asks for fewer."""
    with ShopifyPricedFake(generated_orders(3, items=(120,)), restore_rate=FAST) as fake:
        assert poll(engine, make_shop(fake, poll_checkouts=False, line_items_per_order=100), now=NOW) == 3
    assert all(len(json.loads(r.payload)["items"]) == 120 for r in rows(engine))


def test_refund_fetch_reads_every_line_of_a_big_order(engine, make_shop):
    """refunds/create fetches the order: an order with more lines than that query's page holds is enqueued
    whole, not cut at the first page."""
    from connector.inbox import mark, record_delivery
    from connector.store import InboxDelivery
    big = generated_orders(1, items=(130,))[0]
    with ShopifyPricedFake([big], restore_rate=FAST) as fake:
        shop = make_shop(fake)
        with Session(engine) as s:
            new_id = record_delivery(s, platform="shopify", shop="main", topic="refunds/create", headers={},
                                     body=json.dumps({"id": 1, "order_id": 10000}).encode(), delivery_id="r1")
            s.commit()
            reason = shop_inbox.process(s, s.get(InboxDelivery, new_id), shop)
            mark(s, new_id, "ignored" if reason else "done", reason)
            s.commit()
        assert reason is None and fake.refused == []
    [row] = rows(engine)
    assert len(json.loads(row.payload)["items"]) == 130


def test_cost_refusal_at_one_order_a_page_names_the_setting():
    """When even one order a page and one line item exceed the limit, the error says what to change."""
    import responses
    url = "https://x.myshopify.com/admin/api/2025-01/graphql.json"
    refusal = {"errors": [{"message": "Query cost is 1200, which exceeds the single query max cost limit (1000).",
                           "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 1200, "maxCost": 1000}}]}
    with responses.RequestsMock() as rsps:
        rsps.post(url, json=refusal)
        client = ShopifyClient(url, TOKEN, sleep=lambda s: None)
        with pytest.raises(FatalAPIError, match="1200") as e:
            client.query("query Orders { x }", name="Orders")
    assert e.value.status == 200
