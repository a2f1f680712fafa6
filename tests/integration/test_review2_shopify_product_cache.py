"""A webhook's product look-up gets one short attempt (it must not hold up the inbox); when it fails, only
later webhooks skip the look-up for a while: the poll, in the same process, still reads product details,
or its orders would go without url/image for a minute and go out again once they have them."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify import poller
from adapters.shopify.inbox import process
from adapters.shopify.poller import poll
from connector.config import from_dict
from connector.inbox import mark, record_delivery
from connector.store import InboxDelivery, OutboxRow, init_db, make_engine
from tests.conftest import load_fixture
from tests.fakes.fake_shopify import TOKEN, FakeShopify, node_from_rest

CANCELLED = json.loads(load_fixture("shopify/webhook_orders_cancelled_refunded_hkd.json"))
PID = str(CANCELLED["line_items"][0]["product_id"])
PRODUCTS = {PID: {"id": f"gid://shopify/Product/{PID}", "legacyResourceId": PID, "onlineStoreUrl": "https://shop.example/p",
                  "productType": "T", "description": "d", "featuredImage": {"url": "https://cdn.example/p.jpg"}}}


def test_a_throttled_webhook_look_up_leaves_the_poll_its_product_details(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    monkeypatch.setattr(poller, "_PRODUCT_CACHES", {})
    polled = {**CANCELLED, "id": 777, "name": "#2000", "updated_at": "2026-01-31T10:00:00+00:00"}
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    with FakeShopify([node_from_rest(polled)], bucket_size=1000, restore_rate=1e6, products=PRODUCTS) as fake:
        shop = from_dict({"shops": [{"name": "main", "platform": "shopify", "api_url": fake.url,
                                     "domain": "fake.myshopify.com", "access_token_env": "SHOP_TOKEN",
                                     "poll_checkouts": False, "poll_lookback": "3650d"}]}).shop("main")
        fake.bucket.available, fake.bucket.rate = 0, 0.0      # the poll has just emptied the cost bucket
        with Session(engine) as s:
            i = record_delivery(s, platform="shopify", shop="main", topic="orders/cancelled", headers={},
                                body=json.dumps(CANCELLED).encode(), delivery_id="w1")
            s.commit()
            process(s, s.get(InboxDelivery, i), shop)       # its look-up is answered THROTTLED: no details
            mark(s, i, "done")
            s.commit()
        fake.bucket.available, fake.bucket.rate = 1000, 1e6   # full again
        assert poll(engine, shop, now=datetime(2026, 2, 1, tzinfo=timezone.utc)) == 1
    with Session(engine) as s:
        rows = {r.external_order_id: json.loads(r.payload) for r in s.scalars(select(OutboxRow))}
    assert rows["777"]["items"][0]["url"] == "https://shop.example/p"


def test_a_failed_quick_look_up_rests_the_webhook_path_for_seconds_not_a_minute():
    """A bucket the poll emptied refills in about a second; a webhook order without details goes out again
    once it has them, so the webhook path tries again soon."""
    now = [0.0]
    cache = poller.ProductCache(clock=lambda: now[0])
    calls = []

    def failing():
        calls.append(now[0])
        raise RuntimeError("Products: still THROTTLED")
    cache.lookup(failing, ["1"], quick=True)
    now[0] = cache.quick_pause + 0.1
    cache.lookup(failing, ["1"], quick=True)
    assert calls == [0.0, cache.quick_pause + 0.1] and cache.quick_pause < cache.pause
