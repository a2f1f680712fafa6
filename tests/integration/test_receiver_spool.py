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
from connector.spool import Spool
from connector.store import InboxDelivery, init_db, make_engine
from daemon.receiver import create_receiver_app, spool_dir
from tests.conftest import wait_until
from tests.integration.test_ops_receiver_disk_full import _post, shopify_receiver


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """(test client, engine, spool folder) of a receiver on a SQLite file, with the default spool."""
    monkeypatch.setattr("connector.spool.Mover.EVERY", 0.05)
    client, engine = shopify_receiver(tmp_path, monkeypatch)
    yield client, engine, inbox._spools[engine].spool
    engine.dispose()


def _db_and_spool(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    return db, Spool(tmp_path / "spool")


def _put(spool: Spool, delivery_id: str, body: bytes = b"{}") -> None:
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=body, delivery_id=delivery_id)


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
    db, spool = _db_and_spool(tmp_path)
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
    Spool(tmp_path / "webhook-spool").put(platform="woocommerce", shop="woo", topic="order.created", headers={},
                                                               body=b'{"id": 5}', delivery_id="d-5")
    init_db(engine)
    create_receiver_app(config, engine)
    assert wait_until(lambda: [d.delivery_id for d in _stored(engine)] == ["d-5"])
    engine.dispose()


def test_a_file_that_is_not_a_delivery_is_set_aside_and_named_not_dropped(tmp_path, caplog):
    db, spool = _db_and_spool(tmp_path)
    _put(spool, "a")
    bad = spool.folder / "00000000000000000001-x.delivery.json"
    bad.write_text("{half a file")
    odd = spool.folder / "00000000000000000001-y.delivery.json"      # whole JSON, but not a delivery
    odd.write_text(json.dumps({"platform": "shopify", "shop": "main", "topic": "t", "headers": {}, "body": "",
                               "received_at": "2026-01-01T00:00:00+00:00", "delivery_id": 7}))
    _put(spool, "b")
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["a", "b"]
    assert (spool.folder / "unreadable" / bad.name).read_text() == "{half a file"
    assert (spool.folder / "unreadable" / odd.name).exists()
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
    assert spool_dir(plain, "postgresql+psycopg://u:***@db:5432/ob") == os.path.join("var", "webhook-spool-ob")
    assert spool_dir(plain, "postgresql+psycopg://u:***@standby/ob?sslmode=require") == os.path.join("var", "webhook-spool-ob")
    assert spool_dir(plain, "postgresql+psycopg://u@db") == os.path.join("var", "webhook-spool-default")
    assert spool_dir(from_dict({"receiver": {"spool_dir": "/data/spool"}}), "sqlite:///x.db") == "/data/spool"
    assert spool_dir(from_dict({"receiver": {"spool_dir": ""}}), "sqlite:///x.db") is None


class _PgError(Exception):
    """A driver error with PostgreSQL's SQLSTATE, as psycopg raises them."""

    def __init__(self, sqlstate: str, message: str):
        super().__init__(message)
        self.sqlstate = sqlstate


def _refusing(monkeypatch, sqlstate: str, message: str, times: int = 1) -> None:
    real, calls = spool_module._record, []

    def refuse(engine, record):
        calls.append(record["delivery_id"])
        if len(calls) <= times:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, _PgError(sqlstate, message))
        return real(engine, record)
    monkeypatch.setattr(spool_module, "_record", refuse)


def test_a_failure_that_is_not_about_the_delivery_keeps_it_for_the_next_round(tmp_path, monkeypatch):
    """A standby reached during a failover answers 'read-only transaction' (25006): not the delivery's
    fault, so it is not set aside as unstorable; it waits for the next round."""
    db, spool = _db_and_spool(tmp_path)
    _put(spool, "a")
    _refusing(monkeypatch, "25006", "cannot execute INSERT in a read-only transaction")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        spool.drain(db)
    assert len(spool.waiting()) == 1 and not (spool.folder / "unreadable").exists()
    assert spool.drain(db) == 1 and [d.delivery_id for d in _stored(db)] == ["a"]


def test_a_delivery_the_database_refuses_for_good_does_not_hold_the_others(tmp_path, pg_url, caplog):
    """PostgreSQL refuses a delivery whose (unsigned) X-Shopify-Webhook-Id is too long for its index (54000):
    that one is set aside and named; those behind it are stored."""
    db = make_engine(pg_url)
    init_db(db)
    spool = Spool(tmp_path / "spool")
    huge = os.urandom(6000).hex()           # random: a compressed index entry is still above 2704 bytes
    for d in (huge, "b", "c"):
        spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id=d)
    assert spool.drain(db) == 2
    assert [d.delivery_id for d in _stored(db)] == ["b", "c"]
    assert len(list((spool.folder / "unreadable").iterdir())) == 1
    assert any("index row" in r.getMessage() and "maximum size" in r.getMessage() for r in caplog.records)
    db.dispose()


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


def test_a_spool_folder_that_cannot_be_read_for_a_while_is_said_and_emptied_afterwards(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("connector.spool.Mover.EVERY", 0.05)
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    Spool(tmp_path / "spool").put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}",
                                  delivery_id="kept")
    real, readable = Spool.waiting, threading.Event()

    def waiting(self):
        if not readable.is_set():
            raise PermissionError(13, "Permission denied", str(self.folder))
        return real(self)
    monkeypatch.setattr(Spool, "waiting", waiting)
    inbox.use_spool(db, tmp_path / "spool")
    assert wait_until(lambda: any("cannot be read" in r.getMessage() for r in caplog.records))
    readable.set()                          # the folder can be read again: what waits is moved, no outage needed
    assert wait_until(lambda: [d.delivery_id for d in _stored(db)] == ["kept"])


def test_outbox_status_says_what_waits_in_the_spool(tmp_path, capsys):
    from daemon.cli import main
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    assert main(["--config", str(cfg), "outbox", "status"]) == 0
    assert "spool" not in capsys.readouterr().out             # nothing there: nothing said
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    spool = Spool(tmp_path / "webhook-spool")
    for d in ("a", "b"):
        spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id=d)
    (spool.folder / "unreadable").mkdir()
    (spool.folder / "unreadable" / "x.delivery.json").write_text("{")
    assert main(["--config", str(cfg), "outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert "webhook spool: 2 deliveries wait in" in out and "1 deliveries could not be stored" in out
    engine.dispose()


def test_a_forked_receiver_moves_what_it_spools_itself(tmp_path, monkeypatch):
    """A server that forks workers after the app was made, while the parent's mover thread runs: that thread
    is not in the child, whose deliveries would otherwise wait in the spool behind a thread that never runs
    there. The child gets its own, and what it spools reaches the inbox."""
    monkeypatch.setattr("connector.spool.Mover.EVERY", 0.05)
    db, spool = _db_and_spool(tmp_path)
    gate = threading.Event()
    real_drain = Spool.drain
    monkeypatch.setattr(Spool, "drain", lambda self, e: gate.wait(30) and real_drain(self, e))
    _put(spool, "parent's")
    assert inbox.use_spool(db, spool.folder).busy()         # its thread runs, held at the gate
    child = os.fork()
    if child == 0:                          # the forked worker: stores one delivery, then waits for the inbox
        code = 1
        try:
            gate.set()                      # in this process only: its own mover may move files
            inbox.store_delivery(db, shop="main", topic="orders/create", headers={}, body=b"{}",
                                 delivery_id="child's", platform="shopify")
            code = 0 if wait_until(lambda: "child's" in [d.delivery_id for d in _stored(db)]) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    gate.set()
    assert os.waitstatus_to_exitcode(status) == 0
    assert wait_until(lambda: sorted(d.delivery_id for d in _stored(db)) == ["child's", "parent's"])


def test_a_database_set_up_wrongly_keeps_the_deliveries_for_when_it_is_fixed(tmp_path, monkeypatch):
    """A restore without grants (42501 permission denied), a missing table: a person fixes it, and the same
    deliveries are stored then. Set aside, they would be out of the pipeline for good."""
    db, spool = _db_and_spool(tmp_path)
    _put(spool, "a")
    _refusing(monkeypatch, "42501", "permission denied for table inbox", times=2)
    for _ in range(2):
        with pytest.raises(sqlalchemy.exc.OperationalError):
            spool.drain(db)
    assert len(spool.waiting()) == 1 and not (spool.folder / "unreadable").exists()
    assert spool.drain(db) == 1 and [d.delivery_id for d in _stored(db)] == ["a"]


def test_a_file_that_cannot_be_read_holds_up_no_other_and_is_set_aside_the_third_time(tmp_path, caplog):
    db, spool = _db_and_spool(tmp_path)
    _put(spool, "a")
    stuck = spool.folder / "00000000000000000002-stuck.delivery.json"
    stuck.mkdir()                           # reading it fails (EISDIR), as a root-owned file would (EACCES)
    _put(spool, "b")
    assert spool.drain(db) == 2 and [d.delivery_id for d in _stored(db)] == ["a", "b"]
    assert spool.waiting() == [stuck]
    spool.drain(db)
    spool.drain(db)
    assert spool.waiting() == [] and (spool.folder / "unreadable" / stuck.name).exists()
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_deliveries_another_receiver_spooled_go_first(receiver, monkeypatch):
    """Receivers on one machine share the folder: one that stored nothing in the spool itself still sends
    new deliveries after the ones waiting there, and helps move them."""
    client, engine, spool = receiver
    Spool(spool.folder).put(platform="shopify", shop="main", topic="orders/create", headers={},
                            body=b'{"id": 1}', delivery_id="from-the-other-receiver")
    assert _post(client, 2).status_code == 200
    assert wait_until(lambda: len(_stored(engine)) == 2)
    assert [d.delivery_id for d in _stored(engine)] == ["from-the-other-receiver", "wh-2"]


def test_when_no_thread_can_be_started_deliveries_are_stored_directly(receiver, monkeypatch):
    client, engine, spool = receiver
    mover = inbox._spools[engine]
    spool.put(platform="shopify", shop="main", topic="orders/create", headers={}, body=b"{}", delivery_id="kept")

    def refused(self):
        raise RuntimeError("can't start new thread")
    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", refused)
        with pytest.raises(RuntimeError):
            mover.start()
    spool.waiting()[0].unlink()             # say an operator moved it in by hand
    assert not mover.busy()
    assert _post(client, 3).status_code == 200 and [d.delivery_id for d in _stored(engine)] == ["wh-3"]


def test_the_mover_does_not_wait_between_rounds_that_move_deliveries(tmp_path, monkeypatch):
    """Under steady traffic every delivery comes through the spool until it is empty: a mover that slept
    between rounds (every EVERY seconds) would never catch up."""
    monkeypatch.setattr("connector.spool.Mover.EVERY", 60.0)
    db, spool = _db_and_spool(tmp_path)
    _put(spool, "a")
    real = spool_module._record

    def arriving(engine, record):       # a delivery arrives while the first round runs
        real(engine, record)
        if record["delivery_id"] == "a":
            _put(spool, "b")
    monkeypatch.setattr(spool_module, "_record", arriving)
    inbox.use_spool(db, tmp_path / "spool")
    assert wait_until(lambda: len(_stored(db)) == 2, timeout=20)      # a bound far below EVERY, not a timing


def test_a_pool_with_every_connection_busy_counts_as_unavailable():
    from connector import database
    assert database.is_unavailable(sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"))


def test_temporary_files_a_crash_left_are_deleted_when_the_receiver_starts(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(db)
    folder = tmp_path / "spool"
    folder.mkdir()
    old, new = folder / ".1-a.delivery.json.tmp", folder / ".2-b.delivery.json.tmp"
    for f in (old, new):
        f.write_text("{half")
    os.utime(old, (0, 0))
    inbox.use_spool(db, folder)
    assert not old.exists() and new.exists()        # a new one may be another receiver's, being written


def test_a_database_set_up_wrongly_keeps_new_deliveries_in_the_spool_too(receiver, monkeypatch):
    """A grant missing after a restore (42501): WooCommerce would lose a delivery answered 500, so it is kept
    like one the database could not take while down, and stored once a person has fixed the grant."""
    client, engine, spool = receiver
    real = inbox._store
    calls = []

    def refused(engine, **kw):
        calls.append(kw["delivery_id"])
        if len(calls) == 1:
            raise sqlalchemy.exc.ProgrammingError("INSERT", {}, _PgError("42501", "permission denied for table inbox"))
        return real(engine, **kw)
    monkeypatch.setattr(inbox, "_store", refused)
    assert _post(client, 2).status_code == 200
    assert wait_until(lambda: [d.delivery_id for d in _stored(engine)] == ["wh-2"])


def test_values_the_database_can_never_store_are_not_spooled(receiver, monkeypatch):
    client, engine, spool = receiver

    def refused(engine, **kw):
        raise sqlalchemy.exc.DataError("INSERT", {}, _PgError("54000", "index row size 9000 exceeds maximum 2704"))
    monkeypatch.setattr(inbox, "_store", refused)
    assert _post(client, 2).status_code == 500 and spool.waiting() == []
