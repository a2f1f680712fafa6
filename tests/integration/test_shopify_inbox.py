"""Processing stored Shopify deliveries: orders, out-of-order versions, checkouts, refunds, compliance."""
from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.inbox import process
from connector.config import from_dict
from connector.inbox import mark, record_delivery
from connector.store import ComplianceRequest, InboxDelivery, OutboxRow, init_db, make_engine
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify, node_from_rest

SHOP = FIXTURES / "shopify"
CANCELLED = json.loads((SHOP / "webhook_orders_cancelled_refunded_hkd.json").read_text())
GUEST = json.loads((SHOP / "webhook_orders_create_guest_hkd_discounts.json").read_text())
CHECKOUT = json.loads((SHOP / "webhook_checkouts_create_docs_2026-07.json").read_text())
COMPLIANCE = json.loads((SHOP / "webhook_compliance_payloads_docs_2026-07.json").read_text())


def config(**options):
    return from_dict({"shops": [{"name": "main", "platform": "shopify", **options}]})


def deliver(engine, topic: str, payload, webhook_id: str, shop=None) -> str | None:
    """Store a delivery and process it as the daemon's inbox job does (one transaction, marked after)."""
    shop = shop or config().shop("main")
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with Session(engine) as s:
        new_id = record_delivery(s, platform="shopify", shop="main", topic=topic, headers={}, body=body, delivery_id=webhook_id)
        s.commit()
        delivery = s.get(InboxDelivery, new_id)
        reason = process(s, delivery, shop)
        mark(s, new_id, "ignored" if reason else "done", reason)
        s.commit()
        return reason


def outbox(engine) -> list[OutboxRow]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_order_webhook_enqueues_one_version(engine):
    assert deliver(engine, "orders/cancelled", CANCELLED, "w1") is None
    [row] = outbox(engine)
    wire = json.loads(row.payload)
    assert (row.state, row.external_order_id, row.source) == ("pending", "6198821716268", "webhook:w1")
    assert wire["status"] == "CANCELLED" and wire["externalCustomerId"] == "8658316394796"
    assert deliver(engine, "orders/updated", CANCELLED, "w2") == "identical to the version already enqueued"
    assert len(outbox(engine)) == 1


def test_older_version_arriving_late_is_ignored(engine):
    newer = CANCELLED
    older = {**CANCELLED, "cancelled_at": None, "closed_at": None, "financial_status": "paid", "refunds": [],
             "updated_at": "2025-01-23T05:18:48-05:00"}
    assert deliver(engine, "orders/cancelled", newer, "w-new") is None
    reason = deliver(engine, "orders/create", older, "w-old")
    assert reason.startswith("older than the version already enqueued")
    [row] = outbox(engine)
    assert json.loads(row.payload)["status"] == "CANCELLED"


def test_guest_order_without_contact_is_kept_as_failed_once(engine):
    assert deliver(engine, "orders/create", GUEST, "g1") is None
    assert deliver(engine, "orders/paid", GUEST, "g2") is None
    [row] = outbox(engine)
    assert row.state == "failed" and row.external_order_id == "6198424240428"
    assert "externalCustomerId/email/phone" in row.last_error


def test_abandoned_checkout(engine):
    assert deliver(engine, "checkouts/create", CHECKOUT, "c1") is None
    [row] = outbox(engine)
    wire = json.loads(row.payload)
    assert row.external_order_id == "checkout-981820079255243537"
    assert wire["status"] == "ABANDONED_SHOPPING_CART" and wire["restoreUrl"].endswith("/recover?key=example-secret-token")


def test_checkout_without_contact_or_completed_is_ignored_with_reason(engine):
    anonymous = {**CHECKOUT, "email": None, "customer": None, "billing_address": None, "shipping_address": None}
    assert "no email, phone or customer" in deliver(engine, "checkouts/update", anonymous, "c2")
    assert "completed" in deliver(engine, "checkouts/update", {**CHECKOUT, "completed_at": "2022-01-01T00:00:00Z"}, "c3")
    assert outbox(engine) == []


def test_unknown_topic_is_acknowledged_with_a_reason(engine):
    assert "not translated" in deliver(engine, "app/uninstalled", {"id": 1}, "u1")


def test_malformed_json_raises_so_the_delivery_is_marked_failed(engine):
    with pytest.raises(ValueError, match="not JSON"):
        deliver(engine, "orders/create", b'{"id": 1,', "bad")


def test_order_topic_with_something_else_than_an_order_fails_loudly(engine):
    with pytest.raises(ValueError, match="no id"):
        deliver(engine, "orders/updated", {"order_edit": {"id": 1}}, "oe")


def test_refund_without_credentials_relies_on_orders_updated(engine):
    refund = {**CANCELLED["refunds"][0]}
    reason = deliver(engine, "refunds/create", refund, "r1")
    assert "6198821716268" in reason and "orders/updated" in reason
    assert outbox(engine) == []


def test_refund_with_credentials_fetches_and_requeues_the_order(engine, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    with FakeShopify([node_from_rest(CANCELLED)], restore_rate=100000) as fake:
        shop = config(api_url=fake.url, domain="x.myshopify.com", access_token_env="SHOP_TOKEN", enrich_products=False).shop("main")
        assert deliver(engine, "refunds/create", CANCELLED["refunds"][0], "r2", shop) is None
    [row] = outbox(engine)
    assert json.loads(row.payload)["status"] == "CANCELLED" and row.source == "webhook:r2"


def _customer_payload(topic: str) -> dict:
    """The documented compliance payload, aimed at the customer of the cancelled fixture."""
    p = json.loads(json.dumps(COMPLIANCE[topic]))
    p["customer"] = {"id": 8658316394796, "email": "it@akastudio.com.hk", "phone": None}
    return p


def test_data_request_is_recorded_without_the_customers_email(engine):
    deliver(engine, "orders/cancelled", CANCELLED, "w1")
    assert deliver(engine, "customers/data_request", _customer_payload("customers/data_request"), "d1") is None
    with Session(engine) as s:
        [req] = s.scalars(select(ComplianceRequest))
        body = s.scalars(select(InboxDelivery.body).where(InboxDelivery.delivery_id == "d1")).one()
    assert req.topic == "customers/data_request" and "1 webhook deliveries and 1 order versions" in req.result
    assert "it@akastudio.com.hk" not in req.payload and "8658316394796" in req.payload
    assert b"it@akastudio.com.hk" not in bytes(body)


def test_customer_redact_erases_that_customer_only(engine):
    deliver(engine, "orders/cancelled", CANCELLED, "w1")
    deliver(engine, "checkouts/create", CHECKOUT, "c1")          # another customer
    assert deliver(engine, "customers/redact", _customer_payload("customers/redact"), "x1") is None
    with Session(engine) as s:
        bodies = {d.delivery_id: bytes(d.body) for d in s.scalars(select(InboxDelivery))}
        [req] = s.scalars(select(ComplianceRequest))
    rows = {r.external_order_id: r for r in outbox(engine)}
    order = rows["6198821716268"]
    assert order.state == "failed" and "customers/redact" in order.last_error
    assert "it@akastudio.com.hk" not in order.payload and "8658316394796" not in order.payload
    assert b"akastudio" not in bodies["w1"] and b"akastudio" not in bodies["x1"]
    assert b"example@email.com" in bodies["c1"] and rows["checkout-981820079255243537"].state == "pending"
    assert req.done_at is not None and "erased 2 webhook deliveries and 1 order versions" in req.result


def test_shop_redact_erases_the_whole_shop(engine):
    deliver(engine, "orders/cancelled", CANCELLED, "w1")
    deliver(engine, "checkouts/create", CHECKOUT, "c1")
    assert deliver(engine, "shop/redact", COMPLIANCE["shop/redact"], "s1") is None
    with Session(engine) as s:
        bodies = [bytes(d.body) for d in s.scalars(select(InboxDelivery))]
    assert all(b"@" not in b for b in bodies)
    assert all(r.state == "failed" and "@" not in r.payload for r in outbox(engine))


@pytest.fixture(autouse=True)
def _no_token(monkeypatch):
    if "SHOP_TOKEN" in os.environ:
        monkeypatch.delenv("SHOP_TOKEN")


def test_webhook_orders_get_product_details_when_credentials_are_set(engine, monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    products = {"9782123692332": {"id": "gid://shopify/Product/9782123692332", "legacyResourceId": "9782123692332",
                                  "onlineStoreUrl": "https://shop.example/products/aaa", "productType": "Test",
                                  "description": "", "featuredImage": {"url": "https://cdn.example/aaa.jpg"}}}
    with FakeShopify([], restore_rate=100000, products=products) as fake:
        shop = from_dict({"shops": [{"name": "enrich-inbox", "platform": "shopify", "api_url": fake.url,
                                     "domain": "x.myshopify.com", "access_token_env": "SHOP_TOKEN"}]}).shop("enrich-inbox")
        assert deliver(engine, "orders/cancelled", CANCELLED, "e1", shop) is None
    [item] = json.loads(outbox(engine)[0].payload)["items"]
    assert item["url"] == "https://shop.example/products/aaa" and item["imageUrl"] == "https://cdn.example/aaa.jpg"
    assert item["category"] == "Test" and "description" not in item


def test_unreachable_api_never_blocks_an_order(engine, monkeypatch):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    shop = from_dict({"shops": [{"name": "enrich-down", "platform": "shopify", "api_url": f"http://127.0.0.1:{closed}",
                                 "domain": "x.myshopify.com", "access_token_env": "SHOP_TOKEN"}]}).shop("enrich-down")
    assert deliver(engine, "orders/cancelled", CANCELLED, "d1", shop) is None
    [row] = outbox(engine)
    assert row.state == "pending" and "url" not in json.loads(row.payload)["items"][0]
