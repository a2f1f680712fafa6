"""Webhooks are answered within Shopify's 5 s while the inbox job waits on the Admin API (SQLite).

On SQLite (the embedded default of `orderbridge up`), the inbox job holds the database's write lock
for the whole delivery (daemon/jobs._next_new: BEGIN IMMEDIATE). The Shopify handlers call the Admin API
in that transaction: product details for order and checkout webhooks (timeout 5 s, and every THROTTLED
answer waited out, up to 100 times), the order itself for refunds/create (timeout 10 s, two attempts).
Meanwhile every webhook delivery waits for that lock before it can be stored and answered: a slow or
unreachable Admin API, or a bucket the poll has just emptied, made the receiver answer after Shopify's
5 s, so Shopify counted the delivery failed, retried it, and removes a subscription that keeps failing.
The API calls in the inbox now have a hard deadline and never wait for the bucket: a lookup that does
not answer in time leaves the order without product details (the cache fills for the next one), and a
refund whose order cannot be fetched in time relies on Shopify's orders/updated, as without credentials.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.webhooks import blueprint, sign
from connector.config import from_dict
from connector.store import InboxDelivery, OutboxRow, init_db, make_engine
from daemon import jobs
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify, node_from_rest

SECRET = "shpss_review2"
CANCELLED = (FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_bytes()
SHOPIFY_TIMEOUT = 5.0      # Shopify gives up on a delivery after 5 s


class SlowShopify(FakeShopify):
    """The Admin API answering after `delay` seconds (a slow or overloaded API, or a network that drops)."""

    def __init__(self, *a, delay: float, **kw):
        super().__init__(*a, **kw)
        self.delay, self.started = delay, threading.Event()

    def _answer(self, query, v):
        self.started.set()
        time.sleep(self.delay)
        return super()._answer(query, v)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_SECRET", SECRET)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)

    def build(fake, name):
        config = from_dict({"shops": [{"name": name, "platform": "shopify", "webhook_secret_env": "SHOP_SECRET",
                                       "api_url": fake.url, "domain": "fake.myshopify.com",
                                       "access_token_env": "SHOP_TOKEN"}]})
        app = Flask("receiver")
        app.config.update(OB_CONFIG=config, OB_ENGINE=engine)
        app.register_blueprint(blueprint)
        return config, app.test_client()
    yield engine, build
    engine.dispose()


def post(client, shop: str, topic: str, body: bytes, webhook_id: str):
    return client.post(f"/webhooks/shopify/{shop}", data=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(SECRET, body),
        "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Shop-Domain": "fake.myshopify.com"})


def answered_while_the_inbox_calls_the_api(engine, config, client, fake, shop: str, first: tuple[str, bytes]):
    """Store `first`, process it in the inbox job (which calls the slow API), and time a second delivery
    received meanwhile. Returns (seconds to answer it, the inbox job's outcome)."""
    assert post(client, shop, first[0], first[1], "first").status_code == 200
    rt = jobs.Runtime(config, engine, flusher=None)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(jobs.process_one(rt)))
    worker.start()
    assert fake.started.wait(10)                     # the inbox job is waiting on the Admin API now
    time.sleep(0.2)
    body = CANCELLED.replace(b'"#1065"', b'"#1066"').replace(b"6198821716268", b"6198821716269")
    t0 = time.monotonic()
    r = post(client, shop, "orders/create", body, "second")
    elapsed = time.monotonic() - t0
    worker.join(60)
    assert r.status_code == 200
    return elapsed, outcome[0]


def test_order_webhook_enrichment_does_not_hold_up_other_deliveries(setup):
    engine, build = setup
    with SlowShopify([], restore_rate=1e6, delay=4.5) as fake:
        config, client = build(fake, "slow-products")
        elapsed, outcome = answered_while_the_inbox_calls_the_api(engine, config, client, fake, "slow-products",
                                                                  ("orders/cancelled", CANCELLED))
    assert outcome == "done"                         # the order went out, without product details
    assert elapsed < SHOPIFY_TIMEOUT - 2, f"a webhook waited {elapsed:.1f}s for the inbox job's API call"
    with Session(engine) as s:
        [row] = s.scalars(select(OutboxRow)).all()
    assert row.state == "pending" and "url" not in json.loads(row.payload)["items"][0]


def test_refund_fetch_does_not_hold_up_other_deliveries(setup):
    engine, build = setup
    order = node_from_rest(json.loads(CANCELLED))
    refund = json.dumps(json.loads(CANCELLED)["refunds"][0]).encode()
    with SlowShopify([order], restore_rate=1e6, delay=7.0) as fake:
        config, client = build(fake, "slow-refund")
        elapsed, outcome = answered_while_the_inbox_calls_the_api(engine, config, client, fake, "slow-refund",
                                                                  ("refunds/create", refund))
    assert elapsed < SHOPIFY_TIMEOUT - 2, f"a webhook waited {elapsed:.1f}s for the inbox job's API call"
    assert outcome == "ignored"
    with Session(engine) as s:
        error = s.scalars(select(InboxDelivery.error).where(InboxDelivery.delivery_id == "first")).one()
    assert "orders/updated" in error


def test_a_throttled_bucket_is_not_waited_for_in_the_inbox(setup):
    """The poll may have just emptied the bucket: the inbox does not wait for it to refill."""
    engine, build = setup
    with FakeShopify([], bucket_size=1000, restore_rate=1.0) as fake:
        fake.bucket.available = 0
        config, client = build(fake, "throttled")
        assert post(client, "throttled", "orders/cancelled", CANCELLED, "t1").status_code == 200
        rt = jobs.Runtime(config, engine, flusher=None)
        t0 = time.monotonic()
        assert jobs.process_one(rt) == "done"
        assert time.monotonic() - t0 < 2.0
        assert fake.stats["throttled"] >= 1


class GatedShopify(FakeShopify):
    """The Admin API answering once the test lets it; counts the product look-ups."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.started, self.go, self.product_queries = threading.Event(), threading.Event(), 0

    def _answer(self, query, v):
        self.product_queries += "ids" in v
        self.started.set()
        self.go.wait(30)
        return super()._answer(query, v)


PRODUCTS = {"9782123692332": {"id": "gid://shopify/Product/9782123692332", "legacyResourceId": "9782123692332",
                              "onlineStoreUrl": "https://shop.example/products/aaa"}}


def processed_with_the_lock_free_while_the_api_answers(engine, build, fake, shop: str, first: tuple[str, bytes]):
    """Store `first` and process it in the inbox job; while the fake Admin API holds the job's first call,
    another writer (a receiver storing a webhook) must get SQLite's write lock at once. Returns the outcome."""
    import sqlite3
    config, client = build(fake, shop)      # a shop name of its own: the product cache is per shop and process
    assert post(client, shop, first[0], first[1], "first").status_code == 200
    rt = jobs.Runtime(config, engine, flusher=None)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(jobs.process_one(rt)))
    worker.start()
    try:
        assert fake.started.wait(10)                 # the inbox job is waiting on the Admin API now
        other = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")         # raises "database is locked" if the inbox held it
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        fake.go.set()
        worker.join(30)
    return outcome[0]


def test_product_details_are_fetched_before_the_inbox_takes_the_write_lock(setup, monkeypatch):
    """An order webhook: its products are looked up before the delivery's transaction, and used in it."""
    from adapters.shopify import inbox
    monkeypatch.setattr(inbox, "API_DEADLINE", 30.0)     # the gate, not the deadline, decides when it answers
    engine, build = setup
    with GatedShopify([], restore_rate=1e6, products=PRODUCTS) as fake:
        outcome = processed_with_the_lock_free_while_the_api_answers(engine, build, fake, "gated-order",
                                                                     ("orders/cancelled", CANCELLED))
    assert outcome == "done" and fake.product_queries == 1
    with Session(engine) as s:
        [row] = s.scalars(select(OutboxRow)).all()
    assert json.loads(row.payload)["items"][0]["url"] == "https://shop.example/products/aaa"


def test_a_refunds_order_is_fetched_before_the_inbox_takes_the_write_lock(setup, monkeypatch):
    """A refund: the order is fetched before the delivery's transaction, with its products, and enqueued in it."""
    from adapters.shopify import inbox
    monkeypatch.setattr(inbox, "API_DEADLINE", 30.0)
    engine, build = setup
    refund = json.dumps(json.loads(CANCELLED)["refunds"][0]).encode()
    with GatedShopify([node_from_rest(json.loads(CANCELLED))], restore_rate=1e6, products=PRODUCTS) as fake:
        outcome = processed_with_the_lock_free_while_the_api_answers(engine, build, fake, "gated-refund",
                                                                     ("refunds/create", refund))
    assert outcome == "done" and fake.product_queries == 1
    with Session(engine) as s:
        [row] = s.scalars(select(OutboxRow)).all()
    wire = json.loads(row.payload)
    assert wire["status"] == "CANCELLED" and wire["items"][0]["url"] == "https://shop.example/products/aaa"
