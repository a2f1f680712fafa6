"""Every Shopify fixture translated and checked field by field against expectations written by hand."""
from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest

from adapters.shopify import graphql as gql
from adapters.shopify.translate import (Product, checkout_key, order_status, translate_checkout, translate_order)
from connector.config import from_dict
from connector.errors import ConfigError
from connector.format import content_hash, parse_date
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import checkout_node_from_rest, node_from_rest

SHOP = FIXTURES / "shopify"


def fixture(name: str) -> dict:
    return json.loads((SHOP / name).read_text(encoding="utf-8"))


def shop(**options):
    return from_dict({"shops": [{"name": "main", "platform": "shopify", **options}]}).shop("main")


GUEST = "webhook_orders_create_guest_hkd_discounts.json"
CANCELLED = "webhook_orders_cancelled_refunded_hkd.json"

# Read off the payloads by hand: 4 lines of 99/100/100/100 HKD, a 10 HKD code spread 2.39/2.54/2.54/2.53
# and a 5 HKD automatic discount on the first line; shipping "Tran fee" 55; total 439.
GUEST_WIRE = {
    "externalOrderId": "6198424240428", "status": "IN_PROGRESS", "date": "2025-01-23T01:56:00-05:00",
    "currency": "HKD", "totalCost": 439, "shipping": 55, "discount": 15, "taxes": 0,
    "deliveryMethod": "Tran fee", "paymentMethod": "manual", "source": "online",
    "additionalInfo": {"orderNumber": "#1053", "financialStatus": "paid", "discountCodes": "Alan Test 0123A",
                       "sourceName": "shopify_draft_order"},
    "items": [
        {"externalItemId": "9782123692332", "quantity": 1, "name": "aaa0103測試商品11aa", "cost": 91.61},
        {"externalItemId": "9797441945900", "quantity": 1, "name": "Green Snowboard", "cost": 97.46},
        {"externalItemId": "9799208370476", "quantity": 1, "name": "Orange Snowboard", "cost": 97.46},
        {"externalItemId": "9800669430060", "quantity": 1, "name": "Red Snowboard", "cost": 97.47},
    ],
}

CANCELLED_WIRE = {
    "externalOrderId": "6198821716268", "status": "CANCELLED", "date": "2025-01-23T05:18:47-05:00",
    "currency": "HKD", "totalCost": 99, "shipping": 0, "discount": 0, "taxes": 0,
    "externalCustomerId": "8658316394796", "email": "it@akastudio.com.hk", "phone": "85291451002",
    "firstName": "Alan", "statusDescription": "customer", "paymentMethod": "manual", "deliveryAddress": "Hong Kong",
    "source": "online",
    "additionalInfo": {"orderNumber": "#1065", "financialStatus": "refunded", "cancelReason": "customer",
                       "sourceName": "shopify_draft_order"},
    "items": [{"externalItemId": "9782123692332", "quantity": 1, "name": "aaa0103測試商品11aa", "cost": 99}],
}

REST_LIST_WIRE = {
    "externalOrderId": "450789469", "status": "IN_PROGRESS", "date": "2008-01-10T11:00:00-05:00",
    "currency": "USD", "totalCost": 598.94, "shipping": 0, "discount": 10, "taxes": 11.94,
    "externalCustomerId": "207119551", "email": "bob.norman@hostmail.com", "phone": "557734881234",
    "firstName": "Bob", "lastName": "Norman", "paymentMethod": "bogus", "source": "online",
    "deliveryAddress": "Chestnut Street 92, Louisville, Kentucky, 40202, United States",
    "additionalInfo": {"orderNumber": "#1001", "financialStatus": "partially_refunded"},
}

REST_SINGLE_WIRE = {
    "externalOrderId": "450789469", "status": "IN_PROGRESS", "date": "2008-01-10T11:00:00-05:00",
    "currency": "USD", "totalCost": 409.94, "shipping": 0, "discount": 0, "taxes": 11.94,
    "externalCustomerId": "207119551", "email": "bob.norman@hostmail.com", "phone": "5556251199",
    "firstName": "Bob", "lastName": "Norman", "deliveryMethod": "Free Shipping", "paymentMethod": "authorize_net",
    "source": "online", "deliveryAddress": "Chestnut Street 92, Louisville, Kentucky, 40202, United States",
    "additionalInfo": {"orderNumber": "#1001", "financialStatus": "authorized", "discountCodes": "TENOFF", "sourceName": "web"},
    "items": [
        {"externalItemId": "632910392", "quantity": 1, "name": "IPod Nano - 8gb - green", "cost": 199},
        {"externalItemId": "632910392", "quantity": 1, "name": "IPod Nano - 8gb - red", "cost": 199},
        {"externalItemId": "632910392", "quantity": 1, "name": "IPod Nano - 8gb - black", "cost": 199},
    ],
}

# Checkouts are keyed by their number, dated in UTC, and carry only what webhooks, REST and the GraphQL
# poll all have (shipping = total - subtotal - taxes), so that one checkout is one order with one version
# whichever way it came (review 2: tests/integration/test_review2_shopify_checkout_identity.py).
CHECKOUT_WEBHOOK_WIRE = {
    "externalOrderId": "checkout-981820079255243537", "status": "ABANDONED_SHOPPING_CART",
    "date": "2022-01-01T00:00:00+00:00", "currency": "USD", "totalCost": 421.88, "shipping": 0, "discount": 0,
    "taxes": 23.88,
    "externalCustomerId": "603851970716743426", "email": "example@email.com", "phone": "555555",
    "firstName": "John", "lastName": "Smith", "source": "online",
    "restoreUrl": "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token",
    "deliveryAddress": "123 Shipping Street, Shippington, Kentucky, K2P0S0, United States",
    "additionalInfo": {"orderNumber": "#981820079255243537"},
    "items": [{"externalItemId": "632910392", "quantity": 1, "name": "IPod Nano - 8GB", "cost": 199}] * 2,
}

CHECKOUT_REST_WIRE = {
    "externalOrderId": "checkout-450789469", "status": "ABANDONED_SHOPPING_CART",
    "date": "2012-10-12T11:05:27+00:00", "currency": "USD", "totalCost": 409.94, "shipping": 0, "discount": 0,
    "taxes": 11.94, "externalCustomerId": "207119551", "email": "bob.norman@hostmail.com", "phone": "5556251199",
    "firstName": "Bob", "lastName": "Norman", "source": "online",
    "restoreUrl": "https://checkout.local/orders/690933842/2a1ace52255252df566af0faaedfbfa7?recovered=1",
    "deliveryAddress": "Chestnut Street 92, Louisville, Kentucky, 40202, United States",
    "additionalInfo": {"orderNumber": "#450789469"},
    "items": [{"externalItemId": "632910392", "quantity": 1, "name": "IPod Nano - 8GB", "cost": 199}] * 2,
}


def test_guest_order_translates_but_cannot_be_sent_without_a_contact():
    t = translate_order(fixture(GUEST), shop())
    assert t.wire == GUEST_WIRE
    assert t.order is None and "externalCustomerId/email/phone" in t.error
    assert t.mismatch is None        # 91.61 + 97.46 + 97.46 + 97.47 + 55 = 439


def test_cancelled_refunded_order():
    t = translate_order(fixture(CANCELLED), shop())
    assert t.error is None and t.wire == CANCELLED_WIRE
    assert t.order.totalCost == Decimal("99.00")     # total_price, not current_total_price (0.00 after cancel)


def test_rest_list_order_without_line_items():
    t = translate_order(fixture("rest_orders_list_shopify_python_api.json")["orders"][0], shop())
    assert t.error is None and t.wire == REST_LIST_WIRE and t.mismatch is None


def test_rest_single_order_is_sent_although_its_money_does_not_add_up():
    # The 2008 fixture lists 3 lines of 199 but a total of 409.94 (2 lines + tax): logged and counted, still sent.
    t = translate_order(fixture("rest_order_single_authorized_shopify_python_api.json")["order"], shop())
    assert t.error is None and t.wire == REST_SINGLE_WIRE
    assert t.mismatch == Decimal("-199.00")


def test_checkout_webhook_without_id_is_keyed_by_its_number():
    payload = fixture("webhook_checkouts_create_docs_2026-07.json")
    assert "id" not in payload
    t = translate_checkout(payload, shop())
    assert t.error is None and t.wire == CHECKOUT_WEBHOOK_WIRE and t.mismatch is None


def test_rest_abandoned_checkout_with_id_and_token_is_keyed_by_its_id():
    t = translate_checkout(fixture("rest_abandoned_checkouts_list_shopify_python_api.json")["checkouts"][0], shop())
    assert t.error is None and t.wire == CHECKOUT_REST_WIRE


def test_completed_checkout_is_not_an_abandoned_cart():
    payload = fixture("webhook_checkouts_create_docs_2026-07.json")
    payload["completed_at"] = "2022-01-01T10:00:00-05:00"
    assert translate_checkout(payload, shop()) is None


def test_checkout_key_from_recovery_url_when_id_number_and_token_are_missing():
    node = checkout_node_from_rest(fixture("rest_abandoned_checkouts_list_shopify_python_api.json")["checkouts"][0])
    assert checkout_key(gql.checkout_from_node(node)) == "450789469"
    bare = {**gql.checkout_from_node(node), "id": None, "name": None}
    assert checkout_key(bare) == "2a1ace52255252df566af0faaedfbfa7"


SHOP_ZONE = "America/New_York"      # the fixtures' shops write -05:00 in winter, -04:00 in summer


@pytest.mark.parametrize("name", [GUEST, CANCELLED])
def test_graphql_node_translates_like_the_webhook(name):
    """Poll and webhook must give the same version, or one order would make two events. GraphQL writes
    dates in UTC; in the shop's time zone they read as the webhook wrote them."""
    rest = fixture(name)
    node = node_from_rest(rest)
    assert node["createdAt"].endswith("Z")
    polled = translate_order(gql.order_from_node(node, tz=SHOP_ZONE), shop())
    assert polled.wire == translate_order(rest, shop()).wire
    assert content_hash(polled.wire) == content_hash(translate_order(rest, shop()).wire)
    unknown = translate_order(gql.order_from_node(node), shop())          # no time zone: the same instant, in UTC
    assert parse_date(unknown.wire["date"]) == parse_date(polled.wire["date"])


@pytest.mark.parametrize("display, rest", [("FULFILLED", "fulfilled"), ("PARTIALLY_FULFILLED", "partial"),
                                           ("RESTOCKED", "restocked"), ("UNFULFILLED", None), ("IN_PROGRESS", None),
                                           ("ON_HOLD", None), ("SCHEDULED", None), (None, None)])
def test_graphql_fulfilment_reads_as_rest_writes_it(display, rest):
    """REST (and so every webhook) knows only fulfilled, partial, restocked and null."""
    node = {**node_from_rest(fixture(GUEST)), "displayFulfillmentStatus": display}
    assert gql.order_from_node(node)["fulfillment_status"] == rest


def test_a_bad_time_zone_leaves_the_dates_in_utc():
    node = node_from_rest(fixture(GUEST))
    assert gql.order_from_node(node, tz="Mars/Olympus")["created_at"] == node["createdAt"]


def test_graphql_checkout_translates_like_rest():
    rest = fixture("rest_abandoned_checkouts_list_shopify_python_api.json")["checkouts"][0]
    polled = translate_checkout(gql.checkout_from_node(checkout_node_from_rest(rest), SHOP_ZONE), shop())
    assert polled.wire == CHECKOUT_REST_WIRE


# ---- options ------------------------------------------------------------------------------------

def test_order_id_prefix_and_store_id():
    t = translate_order(fixture(CANCELLED), shop(order_id_prefix="hk-", store_id="HK"))
    assert t.wire["externalOrderId"] == "hk-6198821716268" and t.wire["storeId"] == "HK"


def test_variant_ids_as_item_ids():
    t = translate_order(fixture(GUEST), shop(item_id="variant"))
    assert [i["externalItemId"] for i in t.wire["items"]] == ["50398373085484", "50451770802476", "50460159082796", "50466449883436"]


def test_line_without_product_falls_back_to_variant_then_sku_then_line_id():
    payload = fixture(CANCELLED)
    line = payload["line_items"][0]
    line.update(product_id=None, product_exists=False)
    assert translate_order(payload, shop()).wire["items"][0]["externalItemId"] == "50398373085484"
    line.update(variant_id=None, sku="LENS-PLAN")
    assert translate_order(payload, shop()).wire["items"][0]["externalItemId"] == "LENS-PLAN"
    line.update(sku="")
    assert translate_order(payload, shop()).wire["items"][0]["externalItemId"] == "15515765276972"


def _in_euros(payload: dict) -> dict:
    """The guest order as a buyer paying in EUR at 0.12 EUR per HKD would have produced it."""
    p = copy.deepcopy(payload)
    p["presentment_currency"] = "EUR"

    def convert(obj):
        if isinstance(obj, dict):
            pm = obj.get("presentment_money")
            if isinstance(pm, dict):
                pm.update(amount=str((Decimal(pm["amount"]) * Decimal("0.12")).quantize(Decimal("0.01"))), currency_code="EUR")
            for v in obj.values():
                convert(v)
        elif isinstance(obj, list):
            for v in obj:
                convert(v)
    convert(p)
    return p


def test_shop_currency_is_the_default_even_when_the_buyer_paid_in_another():
    t = translate_order(_in_euros(fixture(GUEST)), shop())
    assert t.wire["currency"] == "HKD" and t.wire["totalCost"] == 439


def test_presentment_currency_uses_presentment_amounts_throughout():
    t = translate_order(_in_euros(fixture(GUEST)), shop(currency="presentment"))
    assert t.wire["currency"] == "EUR"
    assert t.wire["totalCost"] == 52.68 and t.wire["shipping"] == 6.6 and t.wire["discount"] == 1.8
    # (99 × 0.12 = 11.88) − (2.39 → 0.29) − (5 → 0.60) = 10.99
    assert t.wire["items"][0]["cost"] == 10.99


def test_bad_currency_option_is_a_config_error():
    with pytest.raises(ConfigError, match="currency must be"):
        translate_order(fixture(CANCELLED), shop(currency="euro"))


def test_product_details_fill_items():
    products = {"9782123692332": Product(url="https://shop.example/p/1", imageUrl="https://cdn.example/1.jpg",
                                         category="Boards", description="A board")}
    item = translate_order(fixture(CANCELLED), shop(), products).wire["items"][0]
    assert item["url"] == "https://shop.example/p/1" and item["imageUrl"] == "https://cdn.example/1.jpg"
    assert item["category"] == "Boards" and item["description"] == "A board"


def test_taxes_included_orders_reconcile_without_adding_taxes():
    p = fixture(CANCELLED)
    p.update(taxes_included=True, total_tax="9.00")
    t = translate_order(p, shop())
    assert t.wire["taxes"] == 9 and t.mismatch is None


def test_quantity_above_one_gives_unit_cost_after_discounts():
    p = fixture(GUEST)
    line = p["line_items"][1]                        # Green Snowboard, 100, 2.54 off
    line["quantity"] = 3
    line["discount_allocations"][0]["amount"] = "7.62"
    item = translate_order(p, shop()).wire["items"][1]
    assert item == {"externalItemId": "9797441945900", "quantity": 3, "name": "Green Snowboard", "cost": 97.46}


# ---- status (DESIGN.md section 3, top-down) ------------------------------------------------------

@pytest.mark.parametrize("fields,expected", [
    ({"financial_status": "pending"}, "INITIALIZED"),
    ({"financial_status": "paid"}, "IN_PROGRESS"),
    ({"financial_status": "authorized"}, "IN_PROGRESS"),
    ({"financial_status": "partially_paid"}, "IN_PROGRESS"),
    ({"financial_status": "partially_refunded"}, "IN_PROGRESS"),
    ({"financial_status": "pending", "fulfillment_status": "partial"}, "IN_PROGRESS"),
    ({"financial_status": "paid", "fulfillment_status": "fulfilled"}, "DELIVERED"),
    ({"financial_status": "refunded", "fulfillment_status": "fulfilled"}, "CANCELLED"),
    ({"financial_status": "voided"}, "CANCELLED"),
    ({"financial_status": "paid", "fulfillment_status": "fulfilled", "cancelled_at": "2025-01-01T00:00:00Z"}, "CANCELLED"),
    ({"financial_status": "expired"}, "INITIALIZED"),
])
def test_default_status_rules(fields, expected):
    assert order_status({"financial_status": None, "fulfillment_status": None, **fields}) == expected


def test_status_map_overrides_in_place_and_adds_rules():
    # Like Yespo's own app, which ignores payment: a paid, unfulfilled order stays INITIALIZED.
    rules = {"paid": "INITIALIZED", "expired": "CANCELLED", "refunded": "IN_PROGRESS", "restocked": "CANCELLED"}
    assert order_status({"financial_status": "paid"}, rules) == "INITIALIZED"
    assert order_status({"financial_status": "paid", "fulfillment_status": "fulfilled"}, rules) == "DELIVERED"
    # tokens the default table lacks come after it: partially_paid still decides before `restocked`
    assert order_status({"financial_status": "partially_paid", "fulfillment_status": "restocked"}, rules) == "IN_PROGRESS"
    assert order_status({"financial_status": "pending", "fulfillment_status": "restocked"}, rules) == "CANCELLED"
    assert order_status({"financial_status": "expired"}, rules) == "CANCELLED"
    assert order_status({"financial_status": "refunded", "fulfillment_status": "fulfilled"}, rules) == "IN_PROGRESS"
    assert order_status({"financial_status": "pending"}, {"default": "IN_PROGRESS"}) == "IN_PROGRESS"


def test_status_map_with_an_unknown_status_is_a_config_error():
    with pytest.raises(ConfigError, match="status_map 'paid'"):
        order_status({"financial_status": "paid"}, {"paid": "SHIPPED"}, "main")


def test_an_amount_beyond_15_digits_cannot_be_sent_and_says_why():
    """HKD has 2 decimal places: 13 digits before the point is the most a JSON number keeps exact."""
    payload = fixture(CANCELLED)
    payload["total_price"] = "10000000000000.00"
    t = translate_order(payload, shop())
    assert t.order is None and t.error.startswith("totalCost: too large for HKD: at most 13 digits before the decimal point")
    payload["total_price"] = "9999999999999.99"
    t = translate_order(payload, shop())
    assert t.error is None and t.wire["totalCost"] == 9999999999999.99
