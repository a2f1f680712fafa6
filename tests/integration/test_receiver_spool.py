"""The webhook spool: while the connector database cannot be used, a delivery is kept on disk (synced) and
acknowledged, because WooCommerce never sends a refused delivery again and disables the webhook after a
few refusals, and Shopify gives up after 4 hours; once the database works again the receiver moves the
delivery into the inbox, and the daemon's inbox job turns it into an order like any other."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import inbox
from connector.config import from_dict
from connector.spool import Spool
from connector.store import InboxDelivery, init_db, make_engine
from daemon.receiver import create_receiver_app, spool_dir
from tests.conftest import wait_until
from tests.integration.test_ops_receiver_disk_full import _post


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """(test client, engine, spool folder) of a receiver on a SQLite file, with the default spool."""
    monkeypatch.setenv("OB_SHOP_SECRET", "ssecret")
    monkeypatch.setattr("connector.spool.Mover.EVERY", 0.05)
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"},
                        "shops": [{"name": "main", "platform": "shopify", "webhook_secret_env": "OB_SHOP_SECRET"}]})
    engine = make_engine(config.database)
    init_db(engine)
    inbox._writers.clear()
    inbox._by_engine.clear()
    yield create_receiver_app(config, engine).test_client(), engine, tmp_path / "webhook-spool"
    engine.dispose()


def _stored(engine) -> list[InboxDelivery]:
    with Session(engine) as s:
        return list(s.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def test_a_delivery_the_database_cannot_take_is_spooled_acknowledged_and_moved_in_later(receiver, caplog):
    client, engine, folder = receiver
    caplog.set_level(logging.INFO)
    assert _post(client, 1).status_code == 200
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")       # the database is locked past the receiver's busy timeout
    try:
        answer = _post(client, 2)
        assert answer.status_code == 200 and answer.get_json()["duplicate"] is False
        files = Spool(folder).waiting()
        assert len(files) == 1
        assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600     # bodies hold customers' data
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert any("kept in the spool" in r.getMessage() and "database is locked" in r.getMessage()
                   for r in caplog.records)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # the receiver's own thread moves it in once the lock is gone
    assert wait_until(lambda: len(_stored(engine)) == 2)
    assert Spool(folder).waiting() == []
    first, moved = _stored(engine)
    assert moved.delivery_id == "wh-2" and moved.topic == "orders/create" and moved.shop == "main"
    assert json.loads(moved.body)["id"] == 2
    assert json.loads(moved.headers)["X-Shopify-Webhook-Id"] == "wh-2"
    assert moved.received_at >= first.received_at
    assert any("1 deliveries moved into the inbox" in r.getMessage() for r in caplog.records)


def test_a_spooled_delivery_that_also_arrived_again_is_stored_once(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    spool = Spool(tmp_path / "spool")
    kept = dict(platform="shopify", shop="main", topic="orders/create", headers={"X-Shopify-Webhook-Id": "wh-9"},
                body=b'{"id": 9}', delivery_id="wh-9")
    spool.put(**kept)
    spool.put(**kept)           # Shopify's retry, spooled too
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["wh-9"]
    assert spool.waiting() == []


def test_deliveries_a_receiver_left_in_the_spool_are_moved_in_when_it_starts_again(tmp_path, monkeypatch):
    monkeypatch.setenv("OB_SHOP_SECRET", "ssecret")
    Spool(tmp_path / "webhook-spool").put(platform="woocommerce", shop="woo", topic="order.created", headers={},
                                          body=b'{"id": 5}', delivery_id="d-5")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"}})
    engine = make_engine(config.database)
    init_db(engine)
    create_receiver_app(config, engine)
    assert wait_until(lambda: [d.delivery_id for d in _stored(engine)] == ["d-5"])
    engine.dispose()


def test_a_file_that_is_not_a_delivery_is_set_aside_and_named_not_dropped(tmp_path, caplog):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    spool = Spool(tmp_path / "spool")
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="a")
    bad = spool.folder / "00000000000000000001-x.delivery.json"
    bad.write_text("{half a file")
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="b")
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["a", "b"]
    assert (spool.folder / "unreadable" / bad.name).read_text() == "{half a file"
    assert any(bad.name in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)


def test_when_the_spool_cannot_be_written_either_the_delivery_is_refused_with_503(receiver, caplog):
    client, engine, folder = receiver
    folder.write_text("a file where the folder should be")      # mkdir fails: as a full disk would
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert _post(client, 3).status_code == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert any("cannot keep the delivery either" in r.getMessage() for r in caplog.records)


def test_the_spool_folder_defaults_beside_a_sqlite_database_and_can_be_turned_off():
    plain = from_dict({})
    assert spool_dir(plain, "sqlite:////srv/ob/connector.db") == "/srv/ob/webhook-spool"
    assert spool_dir(plain, "sqlite:///var/connector.db") == os.path.join("var", "webhook-spool")
    assert spool_dir(plain, "postgresql+psycopg://u:***@db/ob") == os.path.join("var", "webhook-spool")
    assert spool_dir(from_dict({"receiver": {"spool_dir": "/data/spool"}}), "sqlite:///x.db") == "/data/spool"
    assert spool_dir(from_dict({"receiver": {"spool_dir": ""}}), "sqlite:///x.db") is None
