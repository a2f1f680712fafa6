"""A delivery signed with the shop's secret but sent for another store must not act on this shop.

An app's webhook secret is its client secret, the same for every store the app is installed on, and
subscriptions made in `shopify.app.toml` and the compliance webhooks of the Partner Dashboard have one
URL for all of them. So when the app that feeds `main` is also installed on a development store, that
store's deliveries reach /webhooks/shopify/main with a valid signature. Only `X-Shopify-Shop-Domain` (and
`shop_domain` in compliance bodies) says whose they are. Uninstalling the app from the development store
sends `shop/redact` 48 hours later: without this check it erased every order of `main` and failed the
versions not sent yet.
"""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.inbox import DeliveryForAnotherStore, process
from connector.config import from_dict
from connector.inbox import mark, record_delivery
from connector.store import ComplianceRequest, InboxDelivery, OutboxRow
from tests.conftest import FIXTURES

SHOPIFY = FIXTURES / "shopify"
CANCELLED = json.loads((SHOPIFY / "webhook_orders_cancelled_refunded_hkd.json").read_text())
COMPLIANCE = json.loads((SHOPIFY / "webhook_compliance_payloads_docs_2026-07.json").read_text())
OURS, THEIRS = "main-store.myshopify.com", "dev-store.myshopify.com"


def shop():
    return from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": OURS}]}).shop("main")


def deliver(engine, topic: str, payload: dict, webhook_id: str, domain: str | None) -> str | None:
    """Store a delivery with the headers the receiver keeps, then process it as the inbox job does."""
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-API-Version": "2025-01"}
    if domain is not None:
        headers["X-Shopify-Shop-Domain"] = domain
    with Session(engine) as s:
        new_id = record_delivery(s, platform="shopify", shop="main", topic=topic, headers=headers,
                                 body=json.dumps(payload).encode(), delivery_id=webhook_id)
        s.commit()
        try:
            reason = process(s, s.get(InboxDelivery, new_id), shop())
            state = "ignored" if reason else "done"
        except DeliveryForAnotherStore as e:       # the inbox job marks it failed, for a replay
            reason, state = str(e), "failed"
        mark(s, new_id, state, reason)
        s.commit()
        return reason


def outbox(engine) -> list[OutboxRow]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def shop_redact(domain: str) -> dict:
    return {**COMPLIANCE["shop/redact"], "shop_domain": domain}


def test_shop_redact_of_another_store_erases_nothing_here(engine):
    assert deliver(engine, "orders/cancelled", CANCELLED, "w1", OURS) is None
    reason = deliver(engine, "shop/redact", shop_redact(THEIRS), "x1", THEIRS)
    assert reason and THEIRS in reason and OURS in reason
    [row] = outbox(engine)
    assert row.state == "pending" and "it@akastudio.com.hk" in row.payload
    with Session(engine) as s:
        assert s.scalars(select(ComplianceRequest)).all() == []
        body = s.scalars(select(InboxDelivery.body).where(InboxDelivery.delivery_id == "w1")).one()
    assert b"akastudio" in bytes(body)


def test_shop_redact_naming_another_store_only_in_its_body_erases_nothing(engine):
    """Compliance bodies carry shop_domain; a relay that drops the header must not make them apply here."""
    deliver(engine, "orders/cancelled", CANCELLED, "w1", OURS)
    assert THEIRS in deliver(engine, "shop/redact", shop_redact(THEIRS), "x1", None)
    assert outbox(engine)[0].state == "pending"


def test_customer_redact_of_another_store_erases_nothing_here(engine):
    deliver(engine, "orders/cancelled", CANCELLED, "w1", OURS)
    request = {**COMPLIANCE["customers/redact"], "shop_domain": THEIRS,
               "customer": {"id": 8658316394796, "email": "it@akastudio.com.hk", "phone": None}}
    assert THEIRS in deliver(engine, "customers/redact", request, "x2", THEIRS)
    assert outbox(engine)[0].state == "pending"


def test_orders_of_another_store_are_not_taken_for_this_shops(engine):
    reason = deliver(engine, "orders/cancelled", CANCELLED, "w2", THEIRS)
    assert reason and THEIRS in reason and "replay" in reason
    assert outbox(engine) == []
    with Session(engine) as s:
        assert s.scalar(select(InboxDelivery.state).where(InboxDelivery.delivery_id == "w2")) == "failed"


def test_this_stores_own_deliveries_still_apply(engine):
    deliver(engine, "orders/cancelled", CANCELLED, "w1", OURS.upper())     # header case does not matter
    assert deliver(engine, "shop/redact", shop_redact(OURS), "x1", OURS) is None
    [row] = outbox(engine)
    assert row.state == "failed" and "akastudio" not in row.payload


def processed_for(engine, table: dict, sender: str):
    """What processing an order delivery that names `sender` gives for a shop configured as `table`."""
    with Session(engine) as s:
        new_id = record_delivery(s, platform="shopify", shop="main", topic="orders/cancelled",
                                 headers={"X-Shopify-Shop-Domain": sender}, body=json.dumps(CANCELLED).encode(),
                                 delivery_id=f"from-{sender}")
        s.commit()
        return process(s, s.get(InboxDelivery, new_id), from_dict({"shops": [table]}).shop("main"))


def test_without_a_configured_domain_nothing_is_compared(engine):
    """A webhook-only shop (no domain in its table) has nothing to compare with: as before."""
    assert processed_for(engine, {"name": "main", "platform": "shopify"}, THEIRS) is None


def test_a_storefront_domain_in_the_config_is_not_compared(engine):
    """X-Shopify-Shop-Domain is always the .myshopify.com name: a shop whose `domain` is its storefront's
    cannot be compared, and its own deliveries must not be refused for that."""
    assert processed_for(engine, {"name": "main", "platform": "shopify", "domain": "shop.example.com"}, OURS) is None


def test_the_other_stores_redaction_erases_what_it_sent_here_and_nothing_of_ours(engine):
    """Its deliveries were left alone but are held: its shop/redact applies to them, not to ours."""
    assert deliver(engine, "orders/cancelled", CANCELLED, "ours", OURS) is None
    guest = {**CANCELLED, "id": 1, "email": "dev-buyer@example.com", "customer": None}
    assert deliver(engine, "orders/create", guest, "theirs", THEIRS)
    reason = deliver(engine, "shop/redact", shop_redact(THEIRS), "x1", THEIRS)
    assert "2 webhook deliveries held here erased" in reason          # its order, and the request itself
    with Session(engine) as s:
        bodies = {d.delivery_id: bytes(d.body) for d in s.scalars(select(InboxDelivery))}
    assert b"dev-buyer" not in bodies["theirs"] and b"akastudio" in bodies["ours"]
    assert [r.state for r in outbox(engine)] == ["pending"]


def test_a_domain_typo_fails_the_deliveries_for_a_replay_instead_of_dropping_them(engine, caplog):
    """A webhook-only shop never used `domain` before this check: a typo there (or a store renamed since)
    must not drop every order without a word. The inbox job fails such a delivery, logs it, and a replay
    after the fix enqueues the order."""
    from daemon import jobs
    typo = from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": "main-stor.myshopify.com"}]})
    with Session(engine) as s:
        record_delivery(s, platform="shopify", shop="main", topic="orders/cancelled",
                        headers={"X-Shopify-Shop-Domain": OURS}, body=json.dumps(CANCELLED).encode(), delivery_id="t1")
        s.commit()
    assert jobs.process_one(jobs.Runtime(typo, engine, flusher=None)) == "failed"
    assert any("correct `domain` and replay" in r.getMessage() for r in caplog.records)
    assert outbox(engine) == []
    fixed = from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": OURS}]})
    assert len(jobs.replay_inbox(engine, None)) == 1
    assert jobs.process_one(jobs.Runtime(fixed, engine, flusher=None)) == "done"
    assert len(outbox(engine)) == 1


def test_another_stores_data_request_is_ignored_not_failed(engine):
    """Compliance URLs are app-wide, so another store's data requests always arrive here: failed, they would
    pile up with the failed deliveries and fail again at every replay."""
    request = {**COMPLIANCE["customers/data_request"], "shop_domain": THEIRS}
    assert THEIRS in deliver(engine, "customers/data_request", request, "dr1", THEIRS)
    with Session(engine) as s:
        assert s.scalar(select(InboxDelivery.state).where(InboxDelivery.delivery_id == "dr1")) == "ignored"
