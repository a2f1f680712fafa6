"""One abandoned checkout is one order in the target, whether a webhook or the poll brought it.

Real checkout webhooks from Shopify's new checkout (fixtures/shopify/webhook_checkouts_new_checkout_
rudderstack_2024.json) carry `id` 35374569160817, `token` e89d4437…, and a recovery URL
`…/checkouts/ac/<cart_token>/recover`: the URL holds the *cart* token, not the checkout token. The GraphQL
AbandonedCheckout has no token at all (id, name, abandonedCheckoutUrl, …). Webhooks were keyed by `token`
and the poll by the token read from the URL, so every abandoned checkout of a polled shop went to the
target twice, as two orders (checkout-e89d44… and checkout-Z2NwLX…), and the abandoned-cart workflow ran
twice for the same buyer. The only key all sources share is the numeric id (`name` is "#" + id, and the
2026-07 docs sample, which has no `id`, has that name).

Under one key the contents must match too, or each poll overlap sends another version (another event):
the webhook's created_at is in UTC ("+00:00") where the poll writes the shop's offset, the webhook named its
tokens in additionalInfo, and only the webhook has shipping lines.
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify import graphql as gql
from adapters.shopify.inbox import process
from adapters.shopify.poller import poll
from adapters.shopify.translate import checkout_key, translate_checkout
from connector.config import from_dict
from connector.format import content_hash
from connector.inbox import mark, record_delivery
from connector.store import InboxDelivery, OutboxRow
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify

REAL = json.loads((FIXTURES / "shopify" / "webhook_checkouts_new_checkout_rudderstack_2024.json").read_text())
CREATED, UPDATED = REAL["checkouts/create"], REAL["checkouts/update"]
ZONE = "America/New_York"          # the store's: its updated_at reads -05:00 in November, -04:00 in September


def money(amount: str) -> dict:
    return {"shopMoney": {"amount": amount, "currencyCode": "USD"}, "presentmentMoney": {"amount": amount, "currencyCode": "USD"}}


def graphql_node(hook: dict, created_utc: str, updated_utc: str) -> dict:
    """The same checkout as the GraphQL Admin API's AbandonedCheckout shows it (the fields orderbridge asks
    for): ids as gids, dates in UTC, money as MoneyBags, no token, no shipping lines."""
    c = hook.get("customer")
    a = hook.get("shipping_address") or None
    return {
        "id": f"gid://shopify/AbandonedCheckout/{hook['id']}", "name": hook["name"],
        "abandonedCheckoutUrl": hook["abandoned_checkout_url"], "createdAt": created_utc, "updatedAt": updated_utc,
        "completedAt": None, "taxesIncluded": hook["taxes_included"] if "taxes_included" in hook else False,
        "totalPriceSet": money(hook["total_price"]), "subtotalPriceSet": money(hook["subtotal_price"]),
        "totalDiscountSet": money(hook["total_discounts"]), "totalTaxSet": money(hook["total_tax"]),
        "totalDutiesSet": money(hook["total_duties"]),
        "customer": c and {"legacyResourceId": str(c["id"]), "email": c["email"], "phone": c["phone"],
                           "firstName": c["first_name"], "lastName": c["last_name"]},
        "billingAddress": None,
        "shippingAddress": a and {"firstName": a["first_name"], "lastName": a["last_name"], "phone": a["phone"],
                                  "address1": a["address1"], "address2": a["address2"], "city": a["city"],
                                  "province": a["province"], "zip": a["zip"], "country": a["country"]},
        "lineItems": {"nodes": [{"id": f"gid://shopify/AbandonedCheckoutLineItem/{li['key']}", "title": li["title"],
                                 "quantity": li["quantity"], "sku": li["sku"],
                                 "variant": {"legacyResourceId": str(li["variant_id"])},
                                 "product": {"legacyResourceId": str(li["product_id"])},
                                 "originalUnitPriceSet": money(li["price"]),
                                 "discountedTotalPriceSet": money(li["line_price"])} for li in hook["line_items"]]},
    }


def shop(**kw):
    return from_dict({"shops": [{"name": "main", "platform": "shopify", **kw}]}).shop("main")


@pytest.mark.parametrize("hook", [CREATED, UPDATED], ids=["checkouts/create", "checkouts/update"])
def test_webhook_and_poll_key_a_new_checkout_alike(hook):
    polled = gql.checkout_from_node(graphql_node(hook, "2024-11-06T02:22:00Z", "2024-11-06T02:22:02Z"), ZONE)
    assert checkout_key(hook) == checkout_key(polled) == str(hook["id"])


def test_the_docs_sample_without_an_id_is_keyed_by_its_number():
    sample = json.loads((FIXTURES / "shopify" / "webhook_checkouts_create_docs_2026-07.json").read_text())
    assert "id" not in sample and sample["name"] == "#981820079255243537"
    assert checkout_key(sample) == "981820079255243537"


def updated_with_its_created_at_readable() -> dict:
    """c002 as recorded has a garbled created_at ("2024-09-16T03:50:1500:00"): read here as 03:50:15 UTC."""
    hook = copy.deepcopy(UPDATED)
    hook["created_at"] = "2024-09-16T03:50:15+00:00"
    return hook


def test_webhook_and_poll_give_the_same_version():
    hook = updated_with_its_created_at_readable()
    node = graphql_node(hook, "2024-09-16T03:50:15Z", "2024-09-17T07:29:02Z")
    by_hook = translate_checkout(hook, shop())
    by_poll = translate_checkout(gql.checkout_from_node(node, ZONE), shop())
    assert by_hook.error is None and by_poll.error is None
    assert by_poll.wire == by_hook.wire
    assert content_hash(by_poll.wire) == content_hash(by_hook.wire)
    assert by_hook.wire["externalOrderId"] == "checkout-35374569160817"
    assert by_hook.wire["shipping"] == 6.9 and by_hook.mismatch is None        # 736.85 − 729.95 − 0 tax


def test_a_garbled_created_at_falls_back_to_updated_at():
    t = translate_checkout(UPDATED, shop())
    assert t.error is None and t.wire["date"] == "2024-09-17T07:29:02+00:00"


def test_a_polled_shop_sends_one_abandoned_cart_per_checkout(engine, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    hook = updated_with_its_created_at_readable()
    node = graphql_node(hook, "2024-09-16T03:50:15Z", "2024-09-17T07:29:02Z")
    node["lineItems"] = node["lineItems"]["nodes"]          # the fake holds a connection's nodes as a list
    with FakeShopify([], [node], restore_rate=1e6) as fake:
        polled = shop(api_url=fake.url, domain="pixel-testing-rs.myshopify.com", access_token_env="SHOP_TOKEN",
                      enrich_products=False, poll_lookback="9000d")
        with Session(engine) as s:
            new_id = record_delivery(s, platform="shopify", shop="main", topic="checkouts/update", headers={},
                                     body=json.dumps(hook).encode(), delivery_id="c002")
            s.commit()
            assert process(s, s.get(InboxDelivery, new_id), polled) is None
            mark(s, new_id, "done")
            s.commit()
        assert poll(engine, polled, now=datetime(2024, 9, 18, tzinfo=timezone.utc)) == 0
    with Session(engine) as s:
        rows = s.scalars(select(OutboxRow)).all()
    assert [r.external_order_id for r in rows] == ["checkout-35374569160817"]


@pytest.mark.parametrize("earlier", ["token", "recovery URL"])
def test_a_checkout_open_across_the_upgrade_keeps_the_key_it_was_sent_under(engine, earlier):
    """Before checkouts were keyed by id, a webhook keyed one by its token and the poll by the token in
    its recovery URL. A checkout sent that way and updated after the upgrade must stay one abandoned cart,
    not become a second one (and a second reminder to its buyer)."""
    from connector.outbox import Version, enqueue
    old_key = "checkout-" + ("84ad78572dae52a8cbea7d55371afe89" if earlier == "token"
                             else "Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgzNUJUN1BTNjEzRFdRUFFQ")
    sent = translate_checkout({**CREATED, "email": "buyer@example.com"}, shop())
    with Session(engine) as s:             # what the earlier version of orderbridge enqueued
        enqueue(s, [Version("main", {**sent.wire, "externalOrderId": old_key})])
        s.commit()
    update = {**CREATED, "email": "buyer@example.com", "updated_at": "2024-11-05T21:40:00-05:00",
              "total_price": "700.00", "subtotal_price": "700.00"}       # the buyer came back and changed the cart
    with Session(engine) as s:
        i = record_delivery(s, platform="shopify", shop="main", topic="checkouts/update", headers={},
                            body=json.dumps(update).encode(), delivery_id="after-upgrade")
        s.commit()
        assert process(s, s.get(InboxDelivery, i), shop()) is None
        mark(s, i, "done")
        s.commit()
        keys = [r.external_order_id for r in s.scalars(select(OutboxRow).order_by(OutboxRow.id))]
    assert keys == [old_key, old_key]
