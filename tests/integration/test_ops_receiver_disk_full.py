"""The receiver with its SQLite store full and no spool (or a spool on the same full disk): no delivery is
acknowledged unless stored, the log names the cause in one line per delivery (no traceback, no SQL), and
deliveries are stored again once space returns."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector import inbox
from connector.config import from_dict
from connector.store import InboxDelivery, init_db, make_engine
from daemon.receiver import create_receiver_app
from tests.conftest import load_fixture


def _post(client, order_id: int):
    order = json.loads(load_fixture("shopify/webhook_orders_create_guest_hkd_discounts.json"))
    order["id"] = order_id
    body = json.dumps(order).encode()
    sig = base64.b64encode(hmac.new(b"ssecret", body, hashlib.sha256).digest()).decode()
    return client.post("/webhooks/shopify/main", data=body, headers={
        "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": f"wh-{order_id}"})


def shopify_receiver(tmp_path, monkeypatch, **receiver):
    """(test client, engine) of a receiver for the Shopify shop `main` on a SQLite file in `tmp_path`;
    `receiver`: its [receiver] table (spool_dir="" for none)."""
    monkeypatch.setenv("OB_SHOP_SECRET", "ssecret")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"}, "receiver": receiver,
                        "shops": [{"name": "main", "platform": "shopify", "webhook_secret_env": "OB_SHOP_SECRET"}]})
    engine = make_engine(config.database)
    init_db(engine)
    inbox._writers.clear()
    inbox._by_engine.clear()
    return create_receiver_app(config, engine).test_client(), engine


def test_a_full_store_answers_503_and_logs_one_line_per_delivery(tmp_path, monkeypatch, caplog):
    client, engine = shopify_receiver(tmp_path, monkeypatch, spool_dir="")
    assert _post(client, 1).status_code == 200

    # The disk is full: SQLite answers SQLITE_FULL ("database or disk is full") to every write.
    full = {"on": True}
    real_connect = inbox._SQLiteWriter._connect

    def connect(self):
        conn = real_connect(self)
        if full["on"]:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn
    monkeypatch.setattr(inbox._SQLiteWriter, "_connect", connect)
    inbox._writers.clear()
    inbox._by_engine.clear()
    caplog.set_level(logging.INFO)
    answers = [_post(client, i) for i in range(2, 40)]
    assert {r.status_code for r in answers} == {503}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(answers)
    assert all(r.exc_info is None and "database or disk is full" in r.getMessage()
               and "INSERT" not in r.getMessage() for r in errors)

    full["on"] = False          # space is back
    inbox._writers.clear()
    inbox._by_engine.clear()
    assert _post(client, 2).status_code == 200
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(InboxDelivery)).scalar() == 2
    engine.dispose()
