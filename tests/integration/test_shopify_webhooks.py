"""The Shopify webhook blueprint: signatures on raw bytes, 404/401, commit before 200, duplicate ids."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify.webhooks import blueprint, sign
from connector.config import from_dict
from connector.store import InboxDelivery, init_db, make_engine
from tests.conftest import FIXTURES

SECRET = "shpss_test_secret"
BODY = (FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_bytes()


@pytest.fixture
def env(db_url, monkeypatch):
    monkeypatch.setenv("SHOP_SECRET", SECRET)
    config = from_dict({"shops": [
        {"name": "main", "platform": "shopify", "webhook_secret_env": "SHOP_SECRET"},
        {"name": "nosecret", "platform": "shopify", "webhook_secret_env": "UNSET_SECRET_VAR"},
        {"name": "woo", "platform": "woocommerce", "webhook_secret_env": "SHOP_SECRET"},
    ]})
    engine = make_engine(db_url)
    init_db(engine)
    app = Flask("test")
    app.config.update(OB_CONFIG=config, OB_ENGINE=engine)
    app.register_blueprint(blueprint)
    yield app.test_client(), engine
    engine.dispose()


def headers(sig: str, webhook_id: str = "wh-1", topic: str = "orders/cancelled", new: bool = False) -> dict:
    p = "" if new else "X-"
    return {"Content-Type": "application/json", f"{p}Shopify-Topic": topic, f"{p}Shopify-Hmac-Sha256": sig,
            f"{p}Shopify-Webhook-Id": webhook_id, f"{p}Shopify-Shop-Domain": "webhook-manager-app.myshopify.com"}


def stored(engine) -> list[InboxDelivery]:
    with Session(engine) as s:
        return list(s.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def test_signed_delivery_is_committed_byte_for_byte(env):
    client, engine = env
    r = client.post("/webhooks/shopify/main", data=BODY, headers=headers(sign(SECRET, BODY)))
    assert r.status_code == 200
    [row] = stored(engine)
    assert bytes(row.body) == BODY
    assert (row.platform, row.shop, row.topic, row.delivery_id, row.state) == ("shopify", "main", "orders/cancelled", "wh-1", "new")
    assert json.loads(row.headers)["X-Shopify-Shop-Domain"] == "webhook-manager-app.myshopify.com"
    assert isinstance(row.received_at, datetime) and row.attempts == 0


def test_newer_header_names_without_x_prefix(env):
    client, engine = env
    r = client.post("/webhooks/shopify/main", data=BODY, headers=headers(sign(SECRET, BODY), "wh-new", new=True))
    assert r.status_code == 200
    [row] = stored(engine)
    assert (row.topic, row.delivery_id) == ("orders/cancelled", "wh-new")


@pytest.mark.parametrize("body,sig", [
    (BODY.replace(b'"99.00"', b'"9.00"', 1), sign(SECRET, BODY)),                       # tampered body
    (json.dumps(json.loads(BODY)).encode(), sign(SECRET, BODY)),                         # re-serialised body
    (BODY, sign("another_secret", BODY)),                                                # wrong secret
    (BODY, sign(SECRET, BODY).encode().hex()),                                           # hex instead of base64
    (BODY, ""),                                                                          # missing
], ids=["tampered", "reserialised", "wrong-secret", "hex", "missing"])
def test_bad_signatures_are_refused_and_nothing_is_stored(env, body, sig):
    client, engine = env
    r = client.post("/webhooks/shopify/main", data=body, headers=headers(sig))
    assert r.status_code == 401
    assert "signature" in r.get_json()["error"]["message"]
    assert stored(engine) == []


def test_reserialised_body_signed_over_its_own_bytes_is_accepted(env):
    client, _ = env
    body = json.dumps(json.loads(BODY)).encode()
    assert client.post("/webhooks/shopify/main", data=body, headers=headers(sign(SECRET, body))).status_code == 200


def test_shop_without_secret_is_refused_and_the_log_says_why(env, caplog):
    client, engine = env
    r = client.post("/webhooks/shopify/nosecret", data=BODY, headers=headers(sign(SECRET, BODY)))
    assert r.status_code == 401
    error = r.get_json()["error"]["message"]
    assert "no webhook secret" in error
    # the answer goes to anyone who posts: the set-up (the variable's name) is for the operator's log
    assert "UNSET_SECRET_VAR" not in error and SECRET not in error
    assert "UNSET_SECRET_VAR" in caplog.text
    assert stored(engine) == []


@pytest.mark.parametrize("shop", ["nope", "woo"])
def test_unknown_or_non_shopify_shop_is_404(env, shop):
    client, engine = env
    r = client.post(f"/webhooks/shopify/{shop}", data=BODY, headers=headers(sign(SECRET, BODY)))
    assert r.status_code == 404 and shop in r.get_json()["error"]["message"]
    assert stored(engine) == []


def test_duplicate_webhook_id_is_acknowledged_and_stored_once(env):
    client, engine = env
    h = headers(sign(SECRET, BODY), "wh-dup")
    assert client.post("/webhooks/shopify/main", data=BODY, headers=h).get_json()["duplicate"] is False
    r = client.post("/webhooks/shopify/main", data=BODY, headers=h)
    assert r.status_code == 200 and r.get_json()["duplicate"] is True
    assert len(stored(engine)) == 1


def test_unknown_topic_is_stored_not_lost(env):
    client, engine = env
    body = b'{"id": 1, "admin_graphql_api_id": "gid://shopify/App/1"}'
    r = client.post("/webhooks/shopify/main", data=body, headers=headers(sign(SECRET, body), "wh-app", "app/uninstalled"))
    assert r.status_code == 200
    [row] = stored(engine)
    assert row.topic == "app/uninstalled" and bytes(row.body) == body


def test_concurrent_deliveries_are_all_committed_once(env):
    """Many senders at once, each delivery sent twice: every one stored exactly once, none lost."""
    import threading

    from werkzeug.serving import make_server
    import requests
    client, engine = env
    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/shopify/main"
    statuses: list[int] = []

    def send(sender: int) -> None:
        with requests.Session() as http:
            for k in range(10):
                for _ in range(2):
                    r = http.post(url, data=BODY, headers=headers(sign(SECRET, BODY), f"c-{sender}-{k}"), timeout=30)
                    statuses.append(r.status_code)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.shutdown()
    assert statuses.count(200) == 240
    rows = stored(engine)
    assert len(rows) == 120 and len({r.delivery_id for r in rows}) == 120
    assert all(bytes(r.body) == BODY for r in rows)
