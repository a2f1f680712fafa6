"""Benchmark: outbox → bundled backend, end to end, against the backend's own ingest rate in the same run.

    python bench/push.py [--n 100000] [--small 10000]

Prints, for an outbox of --small and of --n realistic orders: the push rate of `orderbridge push`
(a separate process, as the daemon would be) into a fresh backend process, the backend-alone rate
(the same orders posted straight from memory, 1000 a request, into another fresh backend: the floor),
their ratio, and the pushing process's peak RSS. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXE = str(Path(sys.executable).parent / "orderbridge")
KEY = "bench-key"
ENV = {**os.environ, "ORDERBRIDGE_API_KEY": KEY}


def realistic(i: int, rnd: random.Random) -> dict:
    items = [{"externalItemId": f"SKU-{rnd.randint(1, 5000)}", "name": f"Product {rnd.randint(1, 5000)} in blue, size M",
              "category": rnd.choice(["shoes", "shirts", "bags", "home"]), "quantity": rnd.randint(1, 3),
              "cost": round(rnd.uniform(5, 120), 2), "url": f"https://shop.example/p/{i}",
              "imageUrl": f"https://cdn.shop.example/p/{i}.jpg"} for _ in range(rnd.randint(1, 5))]
    shipping = 4.99
    total = round(sum(x["cost"] * x["quantity"] for x in items) + shipping, 2)
    c = rnd.randint(1, 30000)
    return {"externalOrderId": str(100000 + i), "externalCustomerId": str(c), "email": f"customer{c}@example.com",
            "phone": f"38050{c:07d}", "firstName": "Olena", "lastName": "Shevchenko", "totalCost": total,
            "shipping": shipping, "status": rnd.choice(["INITIALIZED", "IN_PROGRESS", "DELIVERED"]),
            "date": "2025-06-01T12:00:00+03:00", "currency": "UAH", "deliveryMethod": "Nova Poshta",
            "paymentMethod": "card", "deliveryAddress": "Kyiv, Khreshchatyk 1", "additionalInfo": {"orderNumber": f"#{i}"},
            "items": items}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(d: Path, port: int) -> Path:
    cfg = d / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{d}/connector.db"\n[target]\nurl = "http://127.0.0.1:{port}/api/v1"\n'
                   f'[backend]\ndatabase = "sqlite:///{d}/backend.db"\nrate_limit = 0\n')
    return cfg


def start_backend(d: Path) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    cfg = config(d, port)
    p = subprocess.Popen([EXE, "--config", str(cfg), "backend", "--host", "127.0.0.1", "--port", str(port)], cwd=d, env=ENV,
                         stdout=open(d / "backend.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return p, port, cfg
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"the backend did not start (see {d}/backend.log)")


def stop(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(30)


def enqueue_all(cfg_dir: Path, orders: list[dict]) -> float:
    from sqlalchemy.orm import Session

    from connector.outbox import Version, enqueue
    from connector.store import init_db, make_engine
    engine = make_engine(f"sqlite:///{cfg_dir}/connector.db")
    init_db(engine)
    t0 = time.perf_counter()
    for i in range(0, len(orders), 1000):
        with Session(engine) as s:
            enqueue(s, [Version("bench", o, source="bench") for o in orders[i:i + 1000]])
            s.commit()
    engine.dispose()
    return len(orders) / (time.perf_counter() - t0)


def backend_alone(orders: list[dict]) -> float:
    """The floor: the same orders posted straight from memory, 1000 a request, sequentially."""
    from connector.format import canonical_json
    bodies = [('{"orders":[' + ",".join(canonical_json(o) for o in orders[i:i + 1000]) + "]}").encode()
              for i in range(0, len(orders), 1000)]
    with tempfile.TemporaryDirectory(prefix="ob-bench-alone-") as tmp:
        p, port, _ = start_backend(Path(tmp))
        s = requests.Session()
        s.auth = ("bench", KEY)
        try:
            t0 = time.perf_counter()
            for b in bodies:
                r = s.post(f"http://127.0.0.1:{port}/api/v1/orders", data=b, headers={"Content-Type": "application/json"},
                           timeout=120)
                r.raise_for_status()
            return len(orders) / (time.perf_counter() - t0)
        finally:
            stop(p)


class PeakRSS:
    """VmHWM of a running process, sampled until it exits. (ru_maxrss from wait4 would count the
    pages the child shared with this big parent between fork and exec.)"""

    def __init__(self, pid: int):
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
                self.peak_kb = max(self.peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError):
                return
            time.sleep(0.02)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak_kb / 1024


def end_to_end(orders: list[dict]) -> tuple[float, float, float]:
    """(enqueue rate, push rate, peak RSS MB of the pushing process) on a fresh outbox and backend."""
    with tempfile.TemporaryDirectory(prefix="ob-bench-e2e-") as tmp:
        d = Path(tmp)
        p, port, cfg = start_backend(d)
        try:
            enq = enqueue_all(d, orders)
            child = subprocess.Popen([EXE, "--config", str(cfg), "push", "-q"], cwd=d, env=ENV, stdout=subprocess.PIPE)
            peak = PeakRSS(child.pid)
            out = child.stdout.read().decode().strip()
            status = child.wait()
            if status != 0 or f"sent {len(orders)}," not in out:
                raise SystemExit(f"push did not deliver everything: {out}")
            # Its own timing, from the first claim to the last settle: process start-up is not pushing.
            seconds = float(out.rsplit(" in ", 1)[1].split(" s ")[0])
            return enq, len(orders) / seconds, peak.stop()
        finally:
            stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    args = ap.parse_args()
    rnd = random.Random(42)
    orders = [realistic(i, rnd) for i in range(args.n)]
    print(f"orders: {args.n:,} realistic (1-5 items, all fields), pushed 1000 a request; cpus: {os.cpu_count()}")
    rows = []
    for n in (args.small, args.n):
        floor = backend_alone(orders[:n])
        enq, rate, rss = end_to_end(orders[:n])
        rows.append((n, rss))
        print(f"outbox {n:>7,}: end-to-end {rate:8.0f} orders/s | backend alone (floor) {floor:8.0f} orders/s | "
              f"ratio {rate / floor:5.2f} | enqueue {enq:6.0f} orders/s | push process peak RSS {rss:6.1f} MB", flush=True)
    print(f"peak RSS growth from {rows[0][0]:,} to {rows[1][0]:,}: {rows[1][1] - rows[0][1]:+.1f} MB")


if __name__ == "__main__":
    main()
