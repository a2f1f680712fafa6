"""Every WooCommerce fixture translated and checked field by field (DESIGN.md section 3)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adapters.woocommerce.translate import Options, Product, options_of, orders_of, translate
from connector.config import from_dict
from connector.errors import ConfigError, InvalidInput

F = Path(__file__).parents[1] / "fixtures" / "woocommerce"


def load(name):
    return json.loads((F / name).read_text())


def listed(name, oid):
    return next(o for o in orders_of(load(name)) if o["id"] == oid)


def woo_shop(**kw):
    return from_dict({"shops": [{"name": "w", "platform": "woocommerce", **kw}]}).shop("w")


CASES = {
    # REST docs: guest, processing, variation, HTML entity, tax excluded (29.35 = 2×3 + 12 + 10 + 1.35).
    "727 guest processing": (load("rest_v3_order_727_guest_processing_docs.json"), {
        "externalOrderId": "727", "totalCost": 29.35, "status": "IN_PROGRESS", "statusDescription": "processing",
        "date": "2017-03-22T19:28:02+00:00", "currency": "USD", "email": "john.doe@example.com", "phone": "5555555555",
        "firstName": "John", "lastName": "Doe", "shipping": 10, "discount": 0, "taxes": 1.35,
        "deliveryMethod": "Flat Rate", "paymentMethod": "Direct Bank Transfer",
        "deliveryAddress": "969 Market, San Francisco, CA, 94103, US", "additionalInfo": {"orderNumber": "727"},
        "items": [{"externalItemId": "93", "name": "Woo Single #1", "quantity": 2, "cost": 3},
                  {"externalItemId": "23", "name": "Ship Your Idea \u2013 Color: Black, Size: M Test", "quantity": 1, "cost": 12}]}),
    # Registered customer, completed, two partial refunds: the total stays, the refunded sum is noted.
    "723 completed with refunds": (listed("rest_v3_orders_list_727_723_docs.json", 723), {
        "externalOrderId": "723", "totalCost": 39, "status": "DELIVERED", "statusDescription": "completed",
        "date": "2017-03-21T19:16:00+00:00", "currency": "USD", "externalCustomerId": "26",
        "email": "joao.silva@example.com", "phone": "1111111111", "firstName": "Jo\u00e3o", "lastName": "Silva",
        "shipping": 10, "discount": 0, "taxes": 0, "deliveryMethod": "Flat rate", "paymentMethod": "Direct bank transfer",
        "deliveryAddress": "Av. Brasil, 432, Rio de Janeiro, RJ, 12345-000, BR",
        "additionalInfo": {"orderNumber": "723", "refunded": "19.00"},
        "items": [{"externalItemId": "87", "name": "Woo Album #2", "quantity": 1, "cost": 9},
                  {"externalItemId": "34", "name": "Woo Ninja", "quantity": 1, "cost": 20}]}),
    # Refunded guest through the WordPress.com proxy ({"data": ...}), wc/v2.
    "88 refunded guest": (load("rest_v2_order_88_refunded_guest_fluxc.json"), {
        "externalOrderId": "88", "totalCost": 15, "status": "CANCELLED", "statusDescription": "refunded",
        "date": "2018-02-04T21:08:59+00:00", "currency": "USD", "email": "place2153216321532152@thing.com",
        "phone": "2332532", "firstName": "John", "lastName": "Quail", "shipping": 0, "discount": 0, "taxes": 0,
        "deliveryMethod": "Free shipping", "paymentMethod": "Check payments",
        "deliveryAddress": "Somewhere 55, Place, AK, 42532, US", "additionalInfo": {"orderNumber": "88"},
        "items": [{"externalItemId": "58", "name": "Product", "quantity": 1, "cost": 15}]}),
    # number "56AQ" ≠ id 786; two coupons took the lines to 0.00: unit cost after discounts is 0.
    "786 coupons, number != id": (listed("fluxc_orders_list_partial_fields_refund_coupons.json", 786), {
        "externalOrderId": "786", "totalCost": 7.59, "status": "DELIVERED", "statusDescription": "completed",
        "date": "2018-02-08T22:39:11+00:00", "currency": "USD", "email": "jake.jakeson@totallyrealemail.com",
        "phone": "3333333333", "firstName": "John", "lastName": "Song", "shipping": 7.59, "discount": 60, "taxes": 0,
        "paymentMethod": "Credit Card (Stripe)", "deliveryAddress": "9303 Lyon Drive, Miami, CA, 33131, US",
        "additionalInfo": {"orderNumber": "56AQ", "coupons": "20$off, 40$off"},
        "items": [{"externalItemId": "52", "name": "Fruits Basket (Mix & Match Product)", "quantity": 1, "cost": 0},
                  {"externalItemId": "760", "name": "Book a Co-Working Desk (Bookable Product)", "quantity": 1, "cost": 0}]}),
    "937 fully refunded": (listed("fluxc_orders_list_partial_fields_refund_coupons.json", 937), {
        "externalOrderId": "937", "totalCost": 92, "status": "CANCELLED", "statusDescription": "refunded",
        "date": "2018-03-31T20:29:15+00:00", "currency": "USD", "email": "jake.jakeson@totallyrealemail.com",
        "phone": "3333333333", "firstName": "Jake", "lastName": "Jakeson", "shipping": 7, "discount": 0, "taxes": 0,
        "paymentMethod": "Cash on delivery", "deliveryAddress": "9303 Lyon Drive, Hill Valley, CA, 95420, US",
        "additionalInfo": {"orderNumber": "937", "refunded": "92.00"},
        "items": [{"externalItemId": "348", "name": "Twin Peaks T-Shirt (Product Add-On)", "quantity": 1, "cost": 25},
                  {"externalItemId": "373", "name": "Black T-shirt (H&M)", "quantity": 2, "cost": 30}]}),
    "939 customer note": (listed("fluxc_orders_list_partial_fields_refund_coupons.json", 939), {
        "externalOrderId": "939", "totalCost": 64, "status": "IN_PROGRESS", "statusDescription": "processing",
        "date": "2018-03-31T20:49:27+00:00", "currency": "USD", "email": "jake.jakeson@totallyrealemail.com",
        "phone": "3333333333", "firstName": "Jake", "lastName": "Jakeson", "shipping": 4, "discount": 0, "taxes": 0,
        "paymentMethod": "Cash on delivery", "deliveryAddress": "9303 Lyon Drive, Hill Valley, CA, 95420, US",
        "additionalInfo": {"orderNumber": "939", "comment": "test checkout field editor note"},
        "items": [{"externalItemId": "371", "name": "Blue T-shirt (Zara)", "quantity": 1, "cost": 60}]}),
    # Fees become items (quantity 1). This fixture's total ignores its fees: sent, with a warning.
    "949 fees": (listed("fluxc_orders_list_partial_fields_refund_coupons.json", 949), {
        "externalOrderId": "949", "totalCost": 44, "status": "IN_PROGRESS", "statusDescription": "processing",
        "date": "2018-04-02T14:57:39+00:00", "currency": "USD", "email": "jake.jakeson@totallyrealemail.com",
        "phone": "3333333333", "firstName": "Jake", "lastName": "Jakeson", "shipping": 4, "discount": 0, "taxes": 0,
        "paymentMethod": "Credit Card (Stripe)", "deliveryAddress": "9303 Lyon Drive, Hill Valley, CA, 95420, US",
        "additionalInfo": {"orderNumber": "949"},
        "items": [{"externalItemId": "290", "name": "PDF Doc (Downloadable Product)", "quantity": 1, "cost": 10},
                  {"externalItemId": "373", "name": "Black T-shirt (H&M)", "quantity": 1, "cost": 30},
                  {"externalItemId": "fee-28", "name": "$10.00 fee", "quantity": 1, "cost": 10},
                  {"externalItemId": "fee-30", "name": "12.00 fee", "quantity": 1, "cost": 12}]}),
    "897 stripe wc5.6": (load("order_897_usd_processing_stripe_wc5.6.json"), {
        "externalOrderId": "897", "totalCost": 28.44, "status": "IN_PROGRESS", "statusDescription": "processing",
        "date": "2021-09-06T18:05:09+00:00", "currency": "USD", "externalCustomerId": "1", "email": "customer@example.com",
        "firstName": "REDACTED", "lastName": "REDACTED", "shipping": 13.45, "discount": 0, "taxes": 0,
        "deliveryMethod": "Flat rate", "paymentMethod": "Credit Card (Stripe)",
        "deliveryAddress": "REDACTED, Lagos, TX, REDACTED, US", "additionalInfo": {"orderNumber": "897"},
        "items": [{"externalItemId": "753", "name": "Rhapsody of Realities- A Topical Compendium volume 5",
                   "quantity": 1, "cost": 14.99}]}),
    # Prices include tax: the item costs what the customer paid (26.86 + 5.64); float price ignored;
    # malformed date_modified_gmt tolerated; number "12345-xxx" from an order-number plugin.
    "12345 EUR prices include tax": (load("order_12345_eur_prices_incl_tax_hand_edited.json"), {
        "externalOrderId": "12345", "totalCost": 30.04, "status": "DELIVERED", "statusDescription": "completed",
        "date": "2021-09-17T12:25:08+00:00", "currency": "EUR", "externalCustomerId": "5",
        "email": "karel@webwinkelfacturen.nl", "firstName": "theo", "lastName": "vdb", "shipping": 0, "discount": 0,
        "taxes": 24.83, "deliveryAddress": "Stationstraat 12, Amsterdam, 1100 AA, NL",
        "additionalInfo": {"orderNumber": "12345-xxx"},
        "items": [{"externalItemId": "15597", "name": "DIY-Kit Maak je eigen Fiets", "quantity": 1, "cost": 32.5}]}),
    # Phone "123" is too short and is left out; the empty image is no imageUrl.
    "15 wc8.0 short phone": (load("webhook_order_15_usd_completed_wc8.0_pipedream.json"), {
        "externalOrderId": "15", "totalCost": 0, "status": "DELIVERED", "statusDescription": "completed",
        "date": "2023-08-16T07:45:56+00:00", "currency": "USD", "externalCustomerId": "1", "email": "user@example.com",
        "firstName": "Test", "lastName": "Test", "shipping": 0, "discount": 0, "taxes": 0,
        "deliveryAddress": "Test, Test, VN", "additionalInfo": {"orderNumber": "15"},
        "items": [{"externalItemId": "14", "name": "Pipedream 1442", "quantity": 1, "cost": 0}]}),
    "76 admin-created pending": (load("webhook_order_76_eur_created_pending_wc5.9.json")["body"], {
        "externalOrderId": "76", "totalCost": 0, "status": "INITIALIZED", "statusDescription": "pending",
        "date": "2022-06-03T20:28:09+00:00", "currency": "EUR", "externalCustomerId": "1",
        "email": "cochise.ruhulessin@unimatrixone.io", "shipping": 0, "discount": 0, "taxes": 0,
        "additionalInfo": {"orderNumber": "76"},
        "items": [{"externalItemId": "39", "name": "Test Product p", "quantity": 1, "cost": 0}]}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_translates_field_by_field(name):
    payload, expected = CASES[name]
    t = translate(payload)
    assert t.error is None and t.ignored is None
    assert set(t.wire) == set(expected), f"fields differ: {set(t.wire) ^ set(expected)}"
    for key, value in expected.items():
        assert t.wire[key] == value, key


def test_the_raw_delivery_body_translates_like_its_decoded_copy():
    raw = json.loads((F / "webhook_order_76_eur_created.body.raw").read_bytes())
    assert translate(raw).wire == CASES["76 admin-created pending"][1]


@pytest.mark.parametrize("name", ["727 guest processing", "723 completed with refunds", "786 coupons, number != id", "897 stripe wc5.6"])
def test_consistent_orders_reconcile_without_warning(name):
    assert translate(CASES[name][0]).warnings == ()


def test_an_order_whose_money_does_not_add_up_is_sent_with_a_warning():
    t = translate(CASES["949 fees"][0])
    assert t.order is not None and "does not reconcile" in t.warnings[0]


def test_updated_at_is_date_modified_gmt_and_a_malformed_one_is_none():
    assert translate(CASES["727 guest processing"][0]).updated_at.isoformat() == "2017-03-22T19:28:08+00:00"
    assert translate(CASES["12345 EUR prices include tax"][0]).updated_at is None


def incl_tax_order():
    """Order 12345 made consistent: 2 × 26.86 + tax, a 5.00 coupon, shipping 4.13 + 0.87 tax, EUR."""
    o = copy.deepcopy(CASES["12345 EUR prices include tax"][0])
    li = o["line_items"][0]
    li.update(quantity=2, subtotal="53.72", subtotal_tax="11.28", total="49.59", total_tax="10.41", price=24.795)
    o.update(discount_total="4.13", discount_tax="0.87", shipping_total="4.13", shipping_tax="0.87",
             total_tax="11.28", cart_tax="10.41", total="65.00")
    return o


def test_prices_including_tax_give_unit_prices_with_tax_that_add_up_to_the_total():
    t = translate(incl_tax_order())
    w = t.wire
    assert w["items"][0]["cost"] == 30.0 and w["items"][0]["quantity"] == 2      # (49.59 + 10.41) / 2
    assert w["shipping"] == 5.0 and w["discount"] == 5.0 and w["taxes"] == 11.28
    assert w["items"][0]["cost"] * 2 + w["shipping"] == w["totalCost"] == 65
    assert t.warnings == ()


def test_prices_excluding_tax_add_the_taxes():
    w = translate(CASES["727 guest processing"][0]).wire
    assert 2 * 3 + 12 + w["shipping"] + w["taxes"] == w["totalCost"]


def test_a_negative_fee_is_a_discount_spread_over_the_lines():
    o = copy.deepcopy(CASES["723 completed with refunds"][0])
    o["fee_lines"] = [{"id": 9, "name": "Loyalty", "total": "-2.90", "total_tax": "0.00"}]
    o["total"] = "36.10"
    t = translate(o)
    assert [i["cost"] for i in t.wire["items"]] == [8.1, 18]   # 9 − 0.90, 20 − 2.00
    assert t.wire["discount"] == 2.9 and t.warnings == ()


def test_fractional_unit_prices_round_and_still_reconcile():
    o = copy.deepcopy(CASES["723 completed with refunds"][0])
    o["line_items"][0].update(quantity=3, total="10.00")
    o["total"] = "40.00"
    t = translate(o)
    assert t.wire["items"][0]["cost"] == 3.33 and t.warnings == ()


def test_deleted_product_variation_and_image():
    o = copy.deepcopy(CASES["727 guest processing"][0])
    o["line_items"][0].update(product_id=0, variation_id=0)
    o["line_items"][1]["image"] = {"id": 5, "src": "https://example.com/wp-content/uploads/idea.jpg"}
    items = translate(o).wire["items"]
    assert items[0]["externalItemId"] == "line-315"
    assert items[1]["externalItemId"] == "23" and items[1]["imageUrl"].endswith("/idea.jpg")


def test_product_details_fill_url_and_category_by_parent_product():
    products = {22: Product(url="https://example.com/p/idea", category="Posters, Art")}
    item = translate(CASES["727 guest processing"][0], Options(), products).wire["items"][1]
    assert item["url"] == "https://example.com/p/idea" and item["category"] == "Posters, Art"


def test_prefix_applies_to_order_and_customer_ids():
    w = translate(CASES["723 completed with refunds"][0], options_of(woo_shop(order_id_prefix="eu-"))).wire
    assert w["externalOrderId"] == "eu-723" and w["externalCustomerId"] == "eu-26"


def test_status_table_and_overrides():
    o = copy.deepcopy(CASES["727 guest processing"][0])
    expected = {"pending": "INITIALIZED", "processing": "IN_PROGRESS", "on-hold": "IN_PROGRESS",
                "completed": "DELIVERED", "cancelled": "CANCELLED", "refunded": "CANCELLED", "failed": "CANCELLED",
                "trash": "CANCELLED", "ready-for-pickup": "IN_PROGRESS", "shipped": "INITIALIZED",
                "wc-completed": "DELIVERED"}
    for woo, ours in expected.items():
        assert translate(dict(o, status=woo)).wire["status"] == ours, woo
    opts = options_of(woo_shop(status_map={"shipped": "in_progress", "failed": "ignore"}))
    assert translate(dict(o, status="shipped"), opts).wire["status"] == "IN_PROGRESS"
    assert translate(dict(o, status="failed"), opts).ignored
    with pytest.raises(ConfigError, match="status_map.failed"):
        options_of(woo_shop(status_map={"failed": "LOST"}))


def test_checkout_draft_is_ignored_unless_abandoned_carts_are_on():
    o = dict(load("webhook_order_15_usd_completed_wc8.0_pipedream.json"), status="checkout-draft")
    assert "not an order yet" in translate(o).ignored
    t = translate(o, options_of(woo_shop(abandoned_carts=True)))
    # no restoreUrl: WooCommerce's order-pay page refuses a checkout-draft (test_review2_woo_statuses.py)
    assert t.wire["status"] == "ABANDONED_SHOPPING_CART" and "restoreUrl" not in t.wire
    anonymous = dict(o, customer_id=0, billing=dict(o["billing"], email="", phone=""))
    assert "without email or phone" in translate(anonymous, options_of(woo_shop(abandoned_carts=True))).ignored


def test_an_order_without_any_contact_is_an_error_with_the_wire_kept():
    o = copy.deepcopy(CASES["727 guest processing"][0])
    o["billing"].update(email="", phone="12")
    t = translate(o)
    assert t.order is None and "externalCustomerId/email/phone" in t.error and t.wire["externalOrderId"] == "727"


def test_missing_gmt_date_uses_the_site_offset_of_another_date_pair():
    o = copy.deepcopy(CASES["727 guest processing"][0])
    del o["date_created_gmt"]
    assert translate(o).wire["date"] == "2017-03-22T19:28:02+00:00"
    o.update(date_modified_gmt=None, date_paid_gmt=None)
    assert "date" in translate(o).error


def test_legacy_and_non_order_payloads_are_refused_with_a_reason():
    with pytest.raises(InvalidInput, match="API version"):
        translate({"order": {"id": 1, "total": "1.00"}})
    with pytest.raises(InvalidInput, match="integer \"id\""):
        translate([1, 2])


def test_an_amount_beyond_15_digits_is_an_error_with_the_wire_kept():
    o = copy.deepcopy(CASES["727 guest processing"][0])
    o["total"] = "10000000000000.00"
    t = translate(o)
    assert t.order is None and t.wire["externalOrderId"] == "727"
    assert t.error.startswith(f"totalCost: too large for {o['currency']}: at most 13 digits before the decimal point")
