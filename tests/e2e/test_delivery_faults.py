"""Delivery through faults, against the real bundled backend started as a process.

Backend down then up, 429/5xx bursts, SIGKILLed daemons, partial failures, two daemons on one
PostgreSQL outbox: every order arrives and the backend logs no duplicate event.
"""
from __future__ import annotations

import random
import signal
import subprocess
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from connector.client import AddOrdersClient, RetryPolicy
from connector.flush import Flusher
from connector.outbox import Version, enqueue
from connector.store import FAILED, IN_FLIGHT, SENT, OutboxRow, init_db, make_engine, utcnow
from tests.delivery_helpers import wire_order
from tests.e2e.delivery_support import EXE, KEY, Backend, FaultProxy, free_port, start, stop, write_config

pytestmark = pytest.mark.e2e
FAST = RetryPolicy(attempts=2, max_wait=0.05, max_total=5)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    b = Backend(tmp_path_factory.mktemp("backend"))
    yield b
    stop(b.proc)


@pytest.fixture
def proxy(backend):
    p = FaultProxy(backend.url)
    yield p
    p.close()


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(eng)
    yield eng
    eng.dispose()


class Clock:
    def __init__(self):
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self):
        return self.now


def orders(prefix: str, n: int, **kw) -> list[dict]:
    return [{**wire_order(i, **kw), "externalOrderId": f"{prefix}{i}"} for i in range(n)]


def put(engine, wires, shop="e2e"):
    with Session(engine) as s:
        enqueue(s, [Version(shop, w) for w in wires])
        s.commit()


def states(engine) -> Counter:
    with Session(engine) as s:
        return Counter(r.state for r in s.exec(select(OutboxRow)).scalars())


def flusher(engine, url, clock=None, batch_size=100, **kw) -> Flusher:
    return Flusher(engine, AddOrdersClient(url, KEY, timeout=10, retry=kw.pop("retry", FAST)), batch_size=batch_size,
                   lease=kw.pop("lease", 60), schedule=(30, 60), max_attempts=50, clock=clock or Clock(), **kw)


def assert_once_each(backend, prefix: str, n: int) -> None:
    keys = backend.event_keys(prefix)
    dupes = [k for k, c in Counter(keys).items() if c > 1]
    assert not dupes, f"duplicate events for {dupes[:5]}"
    assert len(set(keys)) == n, f"{len(set(keys))}/{n} orders have an event"


def test_backend_down_then_up(engine, tmp_path):
    port = free_port()
    put(engine, orders("DOWN", 120))
    clock = Clock()
    f = flusher(engine, f"http://127.0.0.1:{port}/api/v1", clock)
    report = f.flush()
    assert report.unreachable and report.sent == 0
    assert states(engine) == Counter({"pending": 120})
    late = Backend.__new__(Backend)   # the backend comes up on the port the connector was told about
    late.port, late.url = port, f"http://127.0.0.1:{port}/api/v1"
    from tests.e2e.delivery_support import wait_http
    late.proc = start(["--config", str(write_config(tmp_path, late.url)), "backend", "--host", "127.0.0.1",
                       "--port", str(port)], tmp_path, "backend.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        clock.now += timedelta(seconds=31)
        assert f.flush().sent == 120
        assert_once_each(late, "DOWN", 120)
    finally:
        stop(late.proc)


def test_429_and_5xx_bursts_back_off_and_arrive_once(engine, backend, proxy):
    put(engine, orders("BURST", 300))
    proxy.faults = [429, 503, 500, 503, 503, 500, "drop", 429, 503]
    clock = Clock()
    f = flusher(engine, proxy.url, clock)
    for _ in range(30):
        if states(engine)[SENT] == 300:
            break
        f.flush()
        clock.now += timedelta(seconds=61)
    assert states(engine) == Counter({SENT: 300})
    assert_once_each(backend, "BURST", 300)


def test_only_the_orders_in_failed_orders_fail(engine, backend, proxy):
    good = orders("PART", 30)
    bad = [{k: v for k, v in o.items() if k != "currency"} for o in orders("PARTBAD", 3)]
    put(engine, good[:10] + bad + good[10:])
    report = flusher(engine, proxy.url).flush()
    assert (report.sent, report.failed) == (30, 3)
    with Session(engine) as s:
        failed = {r.external_order_id: r.last_error for r in s.exec(select(OutboxRow).where(OutboxRow.state == FAILED)).scalars()}
    assert set(failed) == {"PARTBAD0", "PARTBAD1", "PARTBAD2"}
    assert all("currency" in e for e in failed.values())
    assert_once_each(backend, "PART", 30)


def test_daemon_sigkilled_mid_flush_again_and_again(tmp_path, backend, proxy):
    n = 800
    cfg = write_config(tmp_path, proxy.url, flush_every="200ms", lease="3s", retry_schedule=["200ms", "500ms"])
    cfg.write_text(cfg.read_text().replace("timeout = \"10s\"", "timeout = \"10s\"\nbatch_size = 50"))
    engine = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(engine)
    put(engine, orders("KILL", n))
    proxy.faults = [0.02] * 100000          # every request takes a little while: kills land mid-flush
    rnd = random.Random(3)
    for _ in range(4):
        d = start(["--config", str(cfg), "daemon"], tmp_path, "daemon.log")
        threading.Event().wait(rnd.uniform(0.7, 1.2))
        stop(d, signal.SIGKILL)
    r = subprocess.run([EXE, "--config", str(cfg), "daemon", "--once"], cwd=tmp_path, capture_output=True, text=True,
                       env={**__import__("os").environ, "ORDERBRIDGE_API_KEY": KEY}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert states(engine) == Counter({SENT: n})
    assert_once_each(backend, "KILL", n)
    engine.dispose()


def test_sigterm_finishes_the_batch_in_flight(tmp_path, backend, proxy):
    cfg = write_config(tmp_path, proxy.url, flush_every="200ms")
    cfg.write_text(cfg.read_text().replace("timeout = \"10s\"", "timeout = \"10s\"\nbatch_size = 20"))
    engine = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(engine)
    put(engine, orders("TERM", 400))
    proxy.faults = [0.05] * 100000
    d = start(["--config", str(cfg), "daemon"], tmp_path, "daemon.log")
    for _ in range(300):          # wait until it is flushing (its signal handlers are in place by then)
        if states(engine)[SENT]:
            break
        threading.Event().wait(0.1)
    d.send_signal(signal.SIGTERM)
    assert d.wait(30) == 0
    assert states(engine)[IN_FLIGHT] == 0      # nothing left claimed: the batch in flight was settled
    engine.dispose()


def test_daemon_once_exits_non_zero_when_the_target_is_down(tmp_path):
    cfg = write_config(tmp_path, f"http://127.0.0.1:{free_port()}/api/v1")
    engine = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(engine)
    put(engine, orders("ONCE", 3))
    r = subprocess.run([EXE, "--config", str(cfg), "daemon", "--once"], cwd=tmp_path, capture_output=True, text=True,
                       env={**__import__("os").environ, "ORDERBRIDGE_API_KEY": KEY}, timeout=60)
    assert r.returncode == 1 and "could not be reached" in r.stdout
    assert states(engine) == Counter({"pending": 3})
    engine.dispose()


def test_two_daemons_on_one_postgresql_outbox_push_no_version_twice(pg_url, backend, proxy):
    engine = make_engine(pg_url)
    init_db(engine)
    put(engine, orders("PG", 400, status="INITIALIZED"))
    put(engine, orders("PG", 200, status="DELIVERED"))       # a second version of half of them
    flushers = [flusher(engine, proxy.url, batch_size=25) for _ in range(2)]
    reports = [None, None]
    threads = [threading.Thread(target=lambda i=i: reports.__setitem__(i, flushers[i].flush())) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    while flushers[0].flush().batches:      # versions that were waiting for an older one in flight
        pass
    assert states(engine) == Counter({SENT: 600})
    pushed = Counter(proxy.pushed)
    assert max(pushed.values()) == 1, [k for k, c in pushed.items() if c > 1][:5]
    assert len(pushed) == 600
    for i in range(200):     # versions of one order went out in the order they were enqueued
        seq = [s for oid, s in proxy.pushed if oid == f"PG{i}"]
        assert seq == ["INITIALIZED", "DELIVERED"]
    assert all(r.sent > 0 for r in reports)
    engine.dispose()
