"""The WooCommerce webhook endpoint (in a tiny Flask app as the receiver hosts it) and inbox processing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlmodel import Session

from adapters.woocommerce import inbox
from adapters.woocommerce.webhooks import blueprint, signature, verify
from connector.config import from_dict
from connector.errors import InvalidInput
from connector.store import FAILED, InboxDelivery, OutboxRow, init_db, make_engine
from tests.fakes.fake_woocommerce import php_json

F = Path(__file__).parents[1] / "fixtures" / "woocommerce"
RAW = (F / "webhook_order_76_eur_created.body.raw").read_bytes()
SECRET = "wc-test-secret"
URL = "/webhooks/woocommerce/main"


@pytest.fixture
def env(db_url, monkeypatch):
    monkeypatch.setenv("WOO_SECRET", SECRET)
    config = from_dict({"shops": [
        {"name": "main", "platform": "woocommerce", "url": "https://shop.example.com", "webhook_secret_env": "WOO_SECRET"},
        {"name": "carts", "platform": "woocommerce", "webhook_secret_env": "WOO_SECRET", "abandoned_carts": True,
         "order_id_prefix": "c-"},
        {"name": "shopify", "platform": "shopify", "webhook_secret_env": "WOO_SECRET"},
        {"name": "nosecret", "platform": "woocommerce"},
    ]})
    engine = make_engine(db_url)
    init_db(engine)
    app = Flask(__name__)
    app.config.update(OB_CONFIG=config, OB_ENGINE=engine)
    app.register_blueprint(blueprint)
    return app.test_client(), engine, config


def post(client, body, topic="order.created", sig=None, url=URL, delivery="d1", **extra):
    headers = {"Content-Type": "application/json", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": delivery,
               "X-WC-Webhook-Resource": topic.split(".")[0], "X-WC-Webhook-Event": topic.split(".")[-1], **extra}
    if sig is not False:
        headers["X-WC-Webhook-Signature"] = sig if sig is not None else signature(body, SECRET)
    return client.post(url, data=body, headers=headers)


def inbox_rows(engine):
    with Session(engine) as s:
        return list(s.execute(select(InboxDelivery).order_by(InboxDelivery.id)).scalars())


def outbox_rows(engine):
    with Session(engine) as s:
        return list(s.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars())


def process_all(engine, config):
    reasons = []
    with Session(engine) as s:
        for d in s.execute(select(InboxDelivery).order_by(InboxDelivery.id)).scalars():
            reasons.append(inbox.process(s, d, config.shop(d.shop)))
        s.commit()
    return reasons


# ---- signatures --------------------------------------------------------------------------------------

def test_signature_vector_over_the_raw_bytes():
    sig = signature(RAW, SECRET)
    assert verify(RAW, sig, SECRET)
    assert not verify(RAW.replace(b'"total":"0.00"', b'"total":"9.00"'), sig, SECRET)         # tampered
    assert not verify(json.dumps(json.loads(RAW)).encode(), sig, SECRET)                      # re-serialised
    assert not verify(RAW, sig, "another-secret") and not verify(RAW, None, SECRET) and not verify(RAW, sig, "")


def test_a_secret_with_html_entities_is_accepted_as_woocommerce_decodes_it():
    assert verify(RAW, signature(RAW, "a&b"), "a&amp;b")


def test_the_ping_gets_exactly_200_unsigned(env):
    client, engine, _ = env
    r = client.post(URL, data={"webhook_id": "3"})
    assert r.status_code == 200 and inbox_rows(engine) == []


def test_a_signed_delivery_is_stored_raw_and_answered_200(env):
    client, engine, _ = env
    r = post(client, RAW)
    assert r.status_code == 200
    [row] = inbox_rows(engine)
    assert row.body == RAW and row.topic == "order.created" and row.platform == "woocommerce" and row.shop == "main"
    assert row.delivery_id.startswith("d1:")


@pytest.mark.parametrize("case", ["tampered", "reserialised", "wrong secret", "missing", "unsigned json"])
def test_bad_signatures_are_401_and_store_nothing(env, case):
    client, engine, _ = env
    if case == "tampered":
        r = post(client, RAW.replace(b"pending", b"completed"), sig=signature(RAW, SECRET))
    elif case == "reserialised":
        r = post(client, json.dumps(json.loads(RAW)).encode(), sig=signature(RAW, SECRET))
    elif case == "wrong secret":
        r = post(client, RAW, sig=signature(RAW, "nope"))
    elif case == "missing":
        r = post(client, RAW, sig=False)
    else:
        r = client.post(URL, data=RAW, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and "signature" in r.get_json()["error"]["message"].lower()
    assert SECRET not in r.get_data(as_text=True)
    assert inbox_rows(engine) == []


def test_unknown_shop_other_platform_and_missing_secret(env):
    client, _, _ = env
    assert post(client, RAW, url="/webhooks/woocommerce/nope").status_code == 404
    assert post(client, RAW, url="/webhooks/woocommerce/shopify").status_code == 404
    r = post(client, RAW, url="/webhooks/woocommerce/nosecret")
    assert r.status_code == 401 and "secret" in r.get_json()["error"]["message"]


def test_same_delivery_twice_is_stored_once_but_two_bodies_in_one_second_are_both_kept(env):
    client, engine, _ = env
    other = php_json(dict(json.loads(RAW), id=77))
    assert post(client, RAW).status_code == 200 and post(client, RAW).status_code == 200
    assert post(client, other).status_code == 200            # same X-WC-Webhook-Delivery-ID, other order
    assert [json.loads(r.body)["id"] for r in inbox_rows(engine)] == [76, 77]


# ---- inbox processing --------------------------------------------------------------------------------

def test_created_delivery_becomes_an_outbox_version(env):
    client, engine, config = env
    post(client, RAW)
    assert process_all(engine, config) == [None]
    [row] = outbox_rows(engine)
    wire = json.loads(row.payload)
    assert row.state == "pending" and row.external_order_id == "76" and row.source.startswith("webhook:d1:")
    assert wire["status"] == "INITIALIZED" and wire["currency"] == "EUR" and wire["externalCustomerId"] == "1"


def test_deleted_cancels_a_known_order_and_ignores_an_unknown_one(env):
    client, engine, config = env
    post(client, RAW)
    post(client, b'{"id":76}', topic="order.deleted", delivery="d2")
    post(client, b'{"id":5}', topic="order.deleted", delivery="d3")
    reasons = process_all(engine, config)
    assert reasons[:2] == [None, None] and reasons[2].startswith("ignored: order 5")
    first, cancelled = outbox_rows(engine)
    assert json.loads(cancelled.payload) == dict(json.loads(first.payload), status="CANCELLED", statusDescription="trash")


def test_restored_updated_and_other_topics(env):
    client, engine, config = env
    post(client, php_json(dict(json.loads(RAW), status="processing", date_modified_gmt="2022-06-04T10:00:00")),
         topic="order.restored", delivery="d2")
    post(client, b'{"id":16}', topic="coupon.deleted", delivery="d3")
    reasons = process_all(engine, config)
    assert reasons[0] is None and "not an order topic" in reasons[1]
    assert json.loads(outbox_rows(engine)[0].payload)["status"] == "IN_PROGRESS"


def test_an_older_version_after_a_newer_one_is_not_enqueued(env):
    client, engine, config = env
    newer = php_json(dict(json.loads(RAW), status="completed", date_modified_gmt="2022-06-05T10:00:00"))
    post(client, newer, topic="order.updated", delivery="d2")
    post(client, RAW, delivery="d1")
    process_all(engine, config)
    assert [json.loads(r.payload)["status"] for r in outbox_rows(engine)] == ["DELIVERED"]


def test_checkout_draft_depends_on_the_shop_option(env):
    client, engine, config = env
    draft = php_json(dict(json.loads(RAW), status="checkout-draft"))
    post(client, draft, topic="order.updated")
    post(client, draft, topic="order.updated", url="/webhooks/woocommerce/carts")
    reasons = process_all(engine, config)
    assert "not an order yet" in reasons[0] and reasons[1] is None
    [row] = outbox_rows(engine)
    assert row.external_order_id == "c-76" and json.loads(row.payload)["status"] == "ABANDONED_SHOPPING_CART"


def test_an_order_without_contact_is_kept_as_a_failed_row_once(env):
    client, engine, config = env
    body = json.loads(RAW)
    body["billing"]["email"], body["customer_id"] = "", 0
    post(client, php_json(body), delivery="a")
    post(client, php_json(body), delivery="b")
    assert process_all(engine, config) == [None, None]
    [row] = outbox_rows(engine)
    assert row.state == FAILED and "externalCustomerId/email/phone" in row.last_error


def test_malformed_json_raises_for_the_daemon_to_mark(env):
    client, engine, config = env
    post(client, b"{not json", topic="order.updated")
    with Session(engine) as s:
        [d] = s.execute(select(InboxDelivery)).scalars()
        with pytest.raises(InvalidInput, match="not JSON"):
            inbox.process(s, d, config.shop("main"))


@pytest.mark.parametrize("fixture", ["webhook_order_76_eur_created_pending_wc5.9.json", "webhook_coupon_deleted_headers_hookdeck.json"])
def test_real_header_sets_lower_cased_by_a_proxy(env, fixture):
    # The published secrets are unknown: keep every real header, re-sign with ours.
    client, engine, config = env
    real = json.loads((F / fixture).read_text())
    body = RAW if "76" in fixture else php_json(real["body"])
    headers = {k: v for k, v in real["headers"].items() if k not in ("content-length", "accept-encoding")}
    headers["x-wc-webhook-signature"] = signature(body, SECRET)
    assert client.post(URL, data=body, headers=headers).status_code == 200
    [row] = inbox_rows(engine)
    assert row.topic == real["headers"]["x-wc-webhook-topic"]
    assert row.delivery_id.startswith(real["headers"]["x-wc-webhook-delivery-id"])
    [reason] = process_all(engine, config)
    assert (reason is None) if "76" in fixture else ("coupon.deleted" in reason)
