"""The inbox's SQLite group-commit writer: every concurrent delivery stored once, ids right, crash-safe acks."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from connector.inbox import store_delivery
from connector.store import init_db, make_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    init_db(engine)
    yield engine
    engine.dispose()


def rows(engine) -> dict:
    """id -> (platform, shop, delivery_id, body) of every stored delivery."""
    with engine.connect() as c:
        return {r[0]: (r[1], r[2], r[3], bytes(r[4])) for r in
                c.exec_driver_sql("SELECT id, platform, shop, delivery_id, body FROM inbox")}


def store(engine, delivery_id, body=b"{}", shop="main"):
    return store_delivery(engine, platform="shopify", shop=shop, topic="orders/create",
                          headers={"X-Shopify-Topic": "orders/create", "Authorization": "secret"},
                          body=body, delivery_id=delivery_id)


def test_concurrent_senders_each_stored_exactly_once_with_their_own_id(engine):
    # 12 threads: 40 unique deliveries each, every 5th sent twice at once by two threads, some without an id
    results: dict = {}
    guard = threading.Lock()

    def sender(t: int) -> None:
        for k in range(40):
            key = f"d-{k}" if k % 5 == 0 else f"t{t}-{k}"     # d-* is sent by every thread: one must win
            did = None if k % 7 == 3 else key
            body = f"{t}/{k}".encode() if did != f"d-{k}" else f"shared {k}".encode()
            got = store(engine, did, body)
            with guard:
                results[(t, k)] = (did, body, got)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stored = rows(engine)
    new_ids = [got for _, _, got in results.values() if got is not None]
    assert len(new_ids) == len(set(new_ids)) == len(stored)          # every new id is its own row
    for did, body, got in results.values():
        if got is not None:
            assert stored[got] == ("shopify", "main", did, body)    # the id returned is the row written
    winners: dict = {}
    for did, _, got in results.values():
        if did is not None and did.startswith("d-"):
            winners.setdefault(did, []).append(got)
    for did, gots in winners.items():
        assert len(gots) == 12 and sum(g is not None for g in gots) == 1, did
    anonymous = [got for did, _, got in results.values() if did is None]
    assert anonymous and all(g is not None for g in anonymous)        # no id: never taken for a repeat


def test_repeats_of_stored_ids_mixed_with_new_ones(engine):
    first = store(engine, "a", b"A")
    assert first is not None
    assert store(engine, "a", b"A again") is None
    assert store(engine, "a", b"A", shop="other") is not None         # the key is platform + shop + id
    barrier = threading.Barrier(6)
    out: dict = {}

    def send(i: int) -> None:
        barrier.wait()
        out[i] = store(engine, "a" if i % 2 else f"n{i}", f"B{i}".encode())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stored = rows(engine)
    assert [out[i] for i in (1, 3, 5)] == [None, None, None]
    for i in (0, 2, 4):
        assert stored[out[i]] == ("shopify", "main", f"n{i}", f"B{i}".encode())
    assert len(stored) == 5


def test_a_failed_write_raises_for_its_sender_and_the_writer_keeps_working(engine):
    with pytest.raises(Exception):
        store(engine, "bad", body=None)                 # body is NOT NULL: the database refuses it
    assert store(engine, "good") is not None
    assert [r[2] for r in rows(engine).values()] == ["good"]


SERVER = textwrap.dedent("""
    import os, sys
    from connector.config import from_dict
    from daemon.receiver import create_receiver_app
    from daemon.serve import serve
    os.environ["KILL_SECRET"] = "s3cret"
    config = from_dict({"connector": {"database": sys.argv[1]},
                        "shops": [{"name": "main", "platform": "shopify", "webhook_secret_env": "KILL_SECRET"}]})
    serve(create_receiver_app(config), "127.0.0.1", 0, 8, on_ready=lambda h, p: print(p, flush=True))
""")


def test_receiver_killed_under_load_loses_no_acknowledged_delivery(tmp_path):
    db = tmp_path / "c.db"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, f"sqlite:///{db}"], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = int(proc.stdout.readline())
        acked: list[str] = []
        guard = threading.Lock()
        stop = threading.Event()

        def sender(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            k = 0
            while not stop.is_set():
                did, body = f"s{n}-{k}", f'{{"n": {n}, "k": {k}}}'.encode()
                sig = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
                try:
                    conn.request("POST", "/webhooks/shopify/main", body=body, headers={
                        "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Webhook-Id": did, "X-Shopify-Topic": "orders/create"})
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    return                                     # killed mid-request: not acknowledged
                if resp.status == 200:
                    with guard:
                        acked.append(did)
                k += 1

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(16)]
        for th in threads:
            th.start()
        give_up = time.monotonic() + 60                        # a guard against a hang, not a timing check
        while time.monotonic() < give_up and any(th.is_alive() for th in threads):
            with guard:
                if len(acked) >= 300:                          # kill once a good number is acknowledged
                    break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for th in threads:
            th.join()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(db)           # opening recovers the WAL the killed process left behind
    stored = {r[0] for r in conn.execute("SELECT delivery_id FROM inbox")}
    conn.close()
    assert len(acked) >= 300
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged deliveries were lost"
