"""refunds/create re-reads the order: it must read as the order webhooks and the poll write it.

For a shop with product details on (`enrich_products`, the default with API credentials), the order that
refunds/create fetched was enqueued without url/image/category, while orders/updated (which Shopify sends
for the same refund) and the poll enqueue it with them. One refund made two versions, two events; and
when orders/updated came first, the order ended in the target without its product details.
"""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.inbox import process
from connector.config import from_dict
from connector.inbox import mark, record_delivery
from connector.store import InboxDelivery, OutboxRow
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify, node_from_rest

CANCELLED = json.loads((FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_text())
PRODUCTS = {"9782123692332": {"id": "gid://shopify/Product/9782123692332", "legacyResourceId": "9782123692332",
                              "onlineStoreUrl": "https://shop.example/products/aaa", "productType": "Test",
                              "description": "A test product", "featuredImage": {"url": "https://cdn.example/aaa.jpg"}}}


def deliver(engine, shop, topic: str, payload: dict, webhook_id: str) -> str | None:
    with Session(engine) as s:
        new_id = record_delivery(s, platform="shopify", shop=shop.name, topic=topic, headers={},
                                 body=json.dumps(payload).encode(), delivery_id=webhook_id)
        s.commit()
        reason = process(s, s.get(InboxDelivery, new_id), shop)
        mark(s, new_id, "ignored" if reason else "done", reason)
        s.commit()
        return reason


def test_refund_after_orders_updated_adds_no_version_and_keeps_product_details(engine, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    with FakeShopify([node_from_rest(CANCELLED)], restore_rate=1e6, products=PRODUCTS) as fake:
        shop = from_dict({"shops": [{"name": "refund-products", "platform": "shopify", "api_url": fake.url,
                                     "domain": "x.myshopify.com", "access_token_env": "SHOP_TOKEN"}]}).shop("refund-products")
        assert deliver(engine, shop, "orders/updated", CANCELLED, "u1") is None
        assert deliver(engine, shop, "refunds/create", CANCELLED["refunds"][0], "r1") == "the refund did not change the order"
    with Session(engine) as s:
        [row] = s.scalars(select(OutboxRow)).all()
    item = json.loads(row.payload)["items"][0]
    assert item["url"] == "https://shop.example/products/aaa" and item["category"] == "Test"
