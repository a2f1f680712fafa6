"""The real poller against the fake Shopify: cursor, overlap, throttling, resume, enrichment."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.shopify.client import ShopifyClient, graphql_url
from adapters.shopify.poller import has_credentials, poll
from connector.cursors import read as load_cursor
from connector.errors import RetriableAPIError
from connector.store import OutboxRow
from tests.conftest import FIXTURES, outbox_rows
from tests.fakes.fake_shopify import TOKEN, FakeShopify, checkout_node_from_rest, generated_orders, node_from_rest

SHOP = FIXTURES / "shopify"
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)
FAST = 1_000_000          # restore rate: tests never wait for the bucket unless they mean to


def rest(name: str) -> dict:
    return json.loads((SHOP / name).read_text())


rows = outbox_rows


def test_credentials_and_url(make_shop, monkeypatch):
    class F:
        url = "http://127.0.0.1:1"
    shop = make_shop(F)
    assert has_credentials(shop)
    assert graphql_url(shop) == "http://127.0.0.1:1/admin/api/2025-01/graphql.json"
    monkeypatch.delenv("SHOP_TOKEN")
    assert not has_credentials(shop)


def test_poll_enqueues_orders_and_checkouts_then_only_changes(engine, make_shop):
    orders = [node_from_rest(rest("webhook_orders_cancelled_refunded_hkd.json")),
              node_from_rest(rest("webhook_orders_create_guest_hkd_discounts.json"))] + generated_orders(60)
    checkout = checkout_node_from_rest(rest("rest_abandoned_checkouts_list_shopify_python_api.json")["checkouts"][0])
    with FakeShopify(orders, [checkout], restore_rate=FAST) as fake:
        shop = make_shop(fake)
        assert poll(engine, shop, now=NOW) == 62                 # 60 + cancelled + checkout; the guest fails
        states = {r.external_order_id: r.state for r in rows(engine)}
        assert states["6198821716268"] == "pending" and states["6198424240428"] == "failed"
        assert states["checkout-450789469"] == "pending"
        with Session(engine) as s:
            assert load_cursor(s, "main", "orders") == {"since": "2026-02-01T00:00:00Z", "until": None, "after": None}
        # the overlap re-reads nothing new: no new versions, no new failed rows
        assert poll(engine, shop, now=NOW + timedelta(minutes=5)) == 0
        assert len(rows(engine)) == 63
        # an order changes: exactly one new version
        changed = dict(orders[2], displayFulfillmentStatus="FULFILLED", updatedAt=(NOW + timedelta(minutes=7)).isoformat())
        fake.set_orders([changed] + orders[:2] + orders[3:])
        assert poll(engine, shop, now=NOW + timedelta(minutes=10)) == 1
        assert json.loads(rows(engine)[-1].payload)["status"] == "DELIVERED"


def test_poll_after_the_webhook_adds_no_second_version(engine, make_shop):
    from adapters.shopify.sink import store_orders
    order = rest("webhook_orders_cancelled_refunded_hkd.json")
    with FakeShopify([node_from_rest(order)], restore_rate=FAST) as fake:
        shop = make_shop(fake)
        with Session(engine) as s:
            assert store_orders(s, shop, [order], "webhook:1").enqueued == 1
            s.commit()
        assert poll(engine, shop, now=NOW) == 0
    assert len(rows(engine)) == 1


def test_throttled_requests_are_waited_out_and_resent(engine, make_shop):
    with FakeShopify(generated_orders(80), bucket_size=1000, restore_rate=5000) as fake:
        fake.bucket.available = 0              # another app just emptied the bucket
        shop = make_shop(fake, poll_checkouts=False)
        client = ShopifyClient.for_shop(shop)
        assert poll(engine, shop, now=NOW, client=client) == 80
        assert fake.stats["throttled"] >= 1 and client.pacer.throttled == fake.stats["throttled"]
    ids = [r.external_order_id for r in rows(engine)]
    assert len(ids) == len(set(ids)) == 80


def test_interrupted_poll_resumes_from_the_last_committed_page(engine, make_shop):
    with FakeShopify(generated_orders(100), restore_rate=FAST) as fake:
        shop = make_shop(fake, poll_checkouts=False)
        fake.fail_requests = {3}                   # the third page fails
        client = ShopifyClient.for_shop(shop, max_attempts=1, sleep=lambda s: None)
        with pytest.raises(RetriableAPIError):
            poll(engine, shop, now=NOW, client=client)
        done = len(rows(engine))
        assert 0 < done < 100
        with Session(engine) as s:
            state = load_cursor(s, "main", "orders")
        assert state["until"] == "2026-02-01T00:00:00Z" and state["after"]
        served_before = fake.stats["served"]
        assert poll(engine, shop, now=NOW + timedelta(hours=1)) == 100 - done
        # a first page of 6 at the estimated cost, then pages of 23 at the cost this fake reports: 6 + 23 were
        # committed; the resumed window takes 6, 23, 23 and 19, then one (empty) page of the next window
        assert done == 29
        assert fake.stats["served"] - served_before == 5
    ids = [r.external_order_id for r in rows(engine)]
    assert len(ids) == len(set(ids)) == 100


def test_orders_with_more_line_items_than_a_page_holds(engine, make_shop):
    big = generated_orders(1, items=(14,))
    with FakeShopify(big, restore_rate=FAST) as fake:
        shop = make_shop(fake, poll_checkouts=False, line_items_per_order=5)
        assert poll(engine, shop, now=NOW) == 1
    [row] = rows(engine)
    assert len(json.loads(row.payload)["items"]) == 14


def test_product_details_are_fetched_once_and_cached(engine, make_shop):
    products = {"600": {"id": "gid://shopify/Product/600", "legacyResourceId": "600", "onlineStoreUrl": "https://shop.example/t0",
                        "productType": "Things", "description": "Thing zero", "featuredImage": {"url": "https://cdn.example/t0.jpg"}}}
    with FakeShopify(generated_orders(3), restore_rate=FAST, products=products) as fake:
        shop = make_shop(fake, poll_checkouts=False, enrich_products=True, name="enriched")
        assert poll(engine, shop, now=NOW) == 3
    items = [i for r in rows(engine) for i in json.loads(r.payload)["items"]]
    first = next(i for i in items if i["externalItemId"] == "600")
    assert first["url"] == "https://shop.example/t0" and first["imageUrl"] == "https://cdn.example/t0.jpg"
    assert first["category"] == "Things" and first["description"] == "Thing zero"
    assert all("url" not in i for i in items if i["externalItemId"] != "600")


def test_refused_token_is_a_fatal_error_that_names_the_setting(engine, make_shop, monkeypatch):
    from connector.errors import FatalAPIError
    with FakeShopify([], restore_rate=FAST) as fake:
        shop = make_shop(fake)
        monkeypatch.setenv("SHOP_TOKEN", "wrong")
        with pytest.raises(FatalAPIError, match="access_token_env"):
            poll(engine, shop, now=NOW)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 0


@pytest.mark.parametrize("body", [{"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                                             "resume uninterrupted service."}, "Too Many Requests"])
def test_a_429_waits_as_long_as_shopify_says_whatever_its_body(body):
    """Shopify's 429 bodies are JSON: the Retry-After header was once read only from a text body."""
    import responses
    url = "https://x.myshopify.com/admin/api/2025-01/graphql.json"
    slept: list[float] = []
    with responses.RequestsMock() as rsps:
        kind = {"json": body} if isinstance(body, dict) else {"body": body}
        rsps.post(url, status=429, headers={"Retry-After": "20.0"}, **kind)
        rsps.post(url, status=429, headers={"Retry-After": "3600"}, **kind)
        rsps.post(url, json={"data": {"ok": 1}})
        client = ShopifyClient(url, TOKEN, sleep=slept.append)
        with pytest.raises(RetriableAPIError, match="wait 3600 s") as e:
            client.query("{ ok }")        # a wait longer than a minute ends the run: the next poll resumes
        assert slept == [20.0] and e.value.retry_after == 3600
        assert client.query("{ ok }") == {"ok": 1}
