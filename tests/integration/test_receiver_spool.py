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
import threading

import pytest
import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import inbox
from connector import spool as spool_module
from connector.config import from_dict
from connector.spool import Spool, database_of
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
    client = create_receiver_app(config, engine).test_client()
    yield client, engine, inbox._spools[engine].spool
    engine.dispose()


def _stored(engine) -> list[InboxDelivery]:
    with Session(engine) as s:
        return list(s.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def test_a_delivery_the_database_cannot_take_is_spooled_acknowledged_and_moved_in_later(receiver, caplog):
    client, engine, spool = receiver
    folder = spool.folder
    caplog.set_level(logging.INFO)
    assert _post(client, 1).status_code == 200
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")       # the database is locked past the receiver's busy timeout
    try:
        answer = _post(client, 2)
        assert answer.status_code == 200 and answer.get_json()["duplicate"] is False
        files = spool.waiting()
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
    assert spool.waiting() == []
    first, moved = _stored(engine)
    assert moved.delivery_id == "wh-2" and moved.topic == "orders/create" and moved.shop == "main"
    assert json.loads(moved.body)["id"] == 2
    assert json.loads(moved.headers)["X-Shopify-Webhook-Id"] == "wh-2"
    assert moved.received_at >= first.received_at
    assert any("1 deliveries moved into the inbox" in r.getMessage() for r in caplog.records)


def test_a_spooled_delivery_that_also_arrived_again_is_stored_once(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    spool = Spool(tmp_path / "spool", database_of(db))
    kept = dict(platform="shopify", shop="main", topic="orders/create", headers={"X-Shopify-Webhook-Id": "wh-9"},
                body=b'{"id": 9}', delivery_id="wh-9")
    spool.put(**kept)
    spool.put(**kept)           # Shopify's retry, spooled too
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["wh-9"]
    assert spool.waiting() == []


def test_deliveries_a_receiver_left_in_the_spool_are_moved_in_when_it_starts_again(tmp_path, monkeypatch):
    monkeypatch.setenv("OB_SHOP_SECRET", "ssecret")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"}})
    engine = make_engine(config.database)
    Spool(tmp_path / "webhook-spool", database_of(engine)).put(platform="woocommerce", shop="woo", topic="order.created", headers={},
                                                               body=b'{"id": 5}', delivery_id="d-5")
    init_db(engine)
    create_receiver_app(config, engine)
    assert wait_until(lambda: [d.delivery_id for d in _stored(engine)] == ["d-5"])
    engine.dispose()


def test_a_file_that_is_not_a_delivery_is_set_aside_and_named_not_dropped(tmp_path, caplog):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    spool = Spool(tmp_path / "spool", database_of(db))
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="a")
    bad = spool.folder / f"00000000000000000001-x{spool.suffix}"
    bad.write_text("{half a file")
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="b")
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["a", "b"]
    assert (spool.folder / "unreadable" / bad.name).read_text() == "{half a file"
    assert any(bad.name in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)


def test_when_the_spool_cannot_be_written_either_the_delivery_is_refused_with_503(receiver, caplog):
    client, engine, spool = receiver
    spool.folder.write_text("a file where the folder should be")      # mkdir fails: as a full disk would
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


def test_receivers_of_two_databases_sharing_a_folder_each_move_only_their_own(tmp_path, caplog):
    one, two = (make_engine(f"sqlite:///{tmp_path}/{n}.db") for n in ("one", "two"))
    for e in (one, two):
        init_db(e)
    folder = tmp_path / "shared-spool"
    for e, ids in ((one, ("a1", "a2")), (two, ("b1",))):
        for d in ids:
            Spool(folder, database_of(e)).put(platform="shopify", shop="main", topic="orders/create", headers={},
                                              body=b"{}", delivery_id=d)
    assert Spool(folder, database_of(one)).drain(one) == 2
    assert [d.delivery_id for d in _stored(one)] == ["a1", "a2"] and _stored(two) == []
    assert [p.name for p in Spool(folder, database_of(two)).waiting()] == [p.name for p in Spool(folder, database_of(one)).others()]
    assert Spool(folder, database_of(two)).drain(two) == 1
    assert [d.delivery_id for d in _stored(two)] == ["b1"]


def test_a_failure_that_is_not_about_the_delivery_keeps_it_for_the_next_round(tmp_path, monkeypatch):
    """A standby reached during a failover (read-only transaction), a pool timeout: not the delivery's fault,
    so it is not set aside as unstorable; it waits for the next round."""
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    spool = Spool(tmp_path / "spool", database_of(db))
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="a")
    real = spool_module._record
    calls = []

    def flaky(engine, record):
        calls.append(record["delivery_id"])
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("cannot execute INSERT in a read-only transaction"))
        return real(engine, record)
    monkeypatch.setattr(spool_module, "_record", flaky)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        spool.drain(db)
    assert len(spool.waiting()) == 1 and not (spool.folder / "unreadable").exists()
    assert spool.drain(db) == 1 and [d.delivery_id for d in _stored(db)] == ["a"]


def test_deliveries_reach_the_inbox_in_the_order_they_came_while_the_spool_is_emptied(receiver, monkeypatch):
    """Once a delivery waits in the spool, later ones go after it, even when the database works again before
    the spool is emptied: a WooCommerce order.deleted spooled and then its order.restored stored directly
    would otherwise be processed the other way round, and the order would end cancelled."""
    client, engine, spool = receiver
    gate = threading.Event()
    real_drain = Spool.drain

    def gated(self, e):
        gate.wait(30)
        return real_drain(self, e)
    monkeypatch.setattr(Spool, "drain", gated)
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert _post(client, 2).status_code == 200     # spooled: the database is locked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _post(client, 3).status_code == 200         # the database works again, but 2 has not moved yet
    gate.set()
    assert wait_until(lambda: len(_stored(engine)) == 2)
    assert [d.delivery_id for d in _stored(engine)] == ["wh-2", "wh-3"]


def test_a_spool_folder_that_cannot_be_read_is_said_and_stops_no_receiver(tmp_path, monkeypatch, caplog):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)

    def unreadable(self):
        raise PermissionError(13, "Permission denied", str(self.folder))
    monkeypatch.setattr(Spool, "_names", unreadable)
    mover = inbox.use_spool(db, tmp_path / "spool")
    assert not mover.busy()
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_outbox_status_says_what_waits_in_the_spool(tmp_path, capsys):
    from daemon.cli import main
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    assert main(["--config", str(cfg), "outbox", "status"]) == 0
    assert "spool" not in capsys.readouterr().out             # nothing there: nothing said
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    spool = Spool(tmp_path / "webhook-spool", database_of(engine))
    for d in ("a", "b"):
        spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id=d)
    (spool.folder / "unreadable").mkdir()
    (spool.folder / "unreadable" / "x.delivery.json").write_text("{")
    assert main(["--config", str(cfg), "outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert "webhook spool: 2 deliveries wait in" in out and "1 deliveries could not be stored" in out
    engine.dispose()
