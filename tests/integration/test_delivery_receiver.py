"""The webhook receiver app: health, body limit, the platforms' blueprints mounted, and the `up` dispatch."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.config import from_dict
from connector.store import InboxDelivery, init_db, make_engine
from daemon.receiver import create_receiver_app, dispatch_webhooks


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("OB_WOO_SECRET", "wsecret")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"}, "receiver": {"max_body": 2000},
                        "shops": [{"name": "woo", "platform": "woocommerce", "webhook_secret_env": "OB_WOO_SECRET"}]})
    engine = make_engine(config.database)
    init_db(engine)
    yield create_receiver_app(config, engine)
    engine.dispose()


def test_healthz(app):
    r = app.test_client().get("/healthz")
    assert r.status_code == 200 and r.get_json()["ok"] is True


def test_body_over_the_limit_is_413_with_a_json_error(app):
    r = app.test_client().post("/webhooks/woocommerce/woo", data=b"x" * 5000, content_type="application/json")
    assert r.status_code == 413
    assert "limit is 2000 bytes" in r.get_json()["error"]["message"]


def test_blueprints_are_mounted_and_store_verified_deliveries(app, fixtures_dir):
    from adapters.woocommerce.webhooks import signature
    body = (fixtures_dir / "woocommerce" / "webhook_order_76_eur_created.body.raw").read_bytes()[:1900]
    c = app.test_client()
    assert c.post("/webhooks/woocommerce/nope", data=body).status_code == 404
    assert c.post("/webhooks/woocommerce/woo", data=body, headers={"X-WC-Webhook-Signature": "bad",
                                                                    "X-WC-Webhook-Topic": "order.created"}).status_code == 401
    r = c.post("/webhooks/woocommerce/woo", data=body, headers={"X-WC-Webhook-Signature": signature(body, "wsecret"),
                                                                 "X-WC-Webhook-Topic": "order.created"})
    assert r.status_code == 200
    with Session(app.config["OB_ENGINE"]) as s:
        assert s.execute(select(InboxDelivery.__table__.c.body)).scalar() == body


def test_dispatch_sends_webhooks_to_the_receiver_and_the_rest_elsewhere(app):
    def rest(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"backend"]
    from werkzeug.test import Client
    c = Client(dispatch_webhooks(app, rest))
    assert c.get("/api/v1/orders").get_data() == b"backend"
    assert c.post("/webhooks/woocommerce/nope", data=b"{}").status_code == 404


def test_a_compressed_body_is_refused_before_it_is_acknowledged(app):
    """Stored and acknowledged, a gzip body would fail later as 'not JSON', with nothing to say it was
    compressed: the sender must hear it now, and retry."""
    import gzip

    from adapters.woocommerce.webhooks import signature
    body = gzip.compress(b'{"id": 76}')
    r = app.test_client().post("/webhooks/woocommerce/woo", data=body, headers={
        "Content-Encoding": "gzip", "X-WC-Webhook-Signature": signature(body, "wsecret"), "X-WC-Webhook-Topic": "order.created"})
    assert r.status_code == 415 and "Content-Encoding 'gzip' is not accepted" in r.get_json()["error"]["message"]
    with Session(app.config["OB_ENGINE"]) as s:
        assert s.execute(select(InboxDelivery.__table__.c.id)).first() is None
    assert app.test_client().get("/healthz", headers={"Content-Encoding": "identity"}).status_code == 200
