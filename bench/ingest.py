"""Backend ingest benchmark: 1000-order requests to a real `orderbridge backend`, against a raw sqlite3 floor.

    python bench/ingest.py [--requests 20] [--profile]

Prints orders/s of the running backend (one process, SQLite, one client sending requests one
after another), the floor measured in the same run on the same bodies (JSON parse + raw
`sqlite3` executemany upsert of the orders and insert of their events, one transaction per
request), and the ratio. `--profile` also profiles the same requests in-process (Flask test
client) and prints where the time goes. It prints figures; it never passes or fails.
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import http.client
import json
import os
import pstats
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
BATCH = 1000


def realistic_order(i: int, rnd: random.Random) -> dict:
    """A 3-item order like a shop sends: a returning customer one time in three."""
    cust = rnd.randrange(i // 3 + 1)
    items = [{"externalItemId": f"SKU-{rnd.randrange(5000)}", "name": f"Product {rnd.randrange(5000)} – cotton, size M",
              "category": "apparel", "quantity": rnd.randint(1, 3), "cost": f"{rnd.randrange(500, 20000) / 100:.2f}",
              "url": f"https://shop.example.com/p/{rnd.randrange(5000)}",
              "imageUrl": f"https://cdn.example.com/p/{rnd.randrange(5000)}.jpg"} for _ in range(3)]
    total = sum(float(it["cost"]) * it["quantity"] for it in items) + 5
    return {"externalOrderId": f"{1000000 + i}", "externalCustomerId": f"C{cust}", "totalCost": round(total, 2),
            "status": rnd.choice(["INITIALIZED", "IN_PROGRESS", "DELIVERED"]),
            "date": f"2024-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}T1{rnd.randint(0, 9)}:30:00+02:00", "currency": "EUR",
            "email": f"customer{cust}@example.com", "phone": f"+38 (050) {cust % 1000:03d}-{cust % 100:02d}-67",
            "firstName": "Olena", "lastName": "Shevchenko", "shipping": 5, "discount": 0,
            "deliveryMethod": "courier", "paymentMethod": "card", "deliveryAddress": "Khreshchatyk 1, Kyiv",
            "items": items}


def bodies(n_requests: int) -> list[bytes]:
    rnd = random.Random(42)
    return [json.dumps({"orders": [realistic_order(r * BATCH + i, rnd) for i in range(BATCH)]}).encode()
            for r in range(n_requests)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_backend(tmp: Path, port: int) -> subprocess.Popen:
    cfg = tmp / "orderbridge.toml"
    cfg.write_text(f'[backend]\ndatabase = "sqlite:///{tmp}/backend.db"\nrate_limit = 0\n')
    env = dict(os.environ, ORDERBRIDGE_API_KEY=KEY, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(cfg), "backend", "--port", str(port)],
                            cwd=tmp, env=env, stdout=open(tmp / "backend.log", "wb"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"backend exited early; see {tmp}/backend.log")
            time.sleep(0.1)
    sys.exit("backend did not answer /healthz")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to compare work when the machine is busy."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.auth = "Basic " + base64.b64encode(f"bench:{KEY}".encode()).decode()

    def post(self, body: bytes) -> None:
        self.conn.request("POST", "/api/v1/orders", body, {"Content-Type": "application/json", "Authorization": self.auth})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200 or json.loads(data)["failedOrders"]:
            sys.exit(f"backend answered {resp.status}: {data[:300]!r}")


FLOOR_SCHEMA = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, external_order_id TEXT UNIQUE NOT NULL, contact_id INTEGER,
  status TEXT, total_cost REAL, currency TEXT, date TEXT, content_hash TEXT, payload TEXT NOT NULL,
  created_at TEXT, updated_at TEXT);
CREATE INDEX ix_status_date ON orders(status, date);
CREATE INDEX ix_contact_date ON orders(contact_id, date);
CREATE TABLE events (id INTEGER PRIMARY KEY, type TEXT, key TEXT, contact_id INTEGER, order_id INTEGER,
  params TEXT NOT NULL, created_at TEXT);
CREATE INDEX ix_ev_type ON events(type, id);
CREATE INDEX ix_ev_key ON events(key);
CREATE INDEX ix_ev_contact ON events(contact_id, id);
CREATE INDEX ix_ev_created ON events(created_at);
"""


class Floor:
    """JSON parse + raw sqlite3 executemany upsert and event insert of the same rows, WAL, per request."""

    def __init__(self, tmp: Path):
        self.db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(FLOOR_SCHEMA)

    def ingest(self, body: bytes) -> None:
        now = "2024-01-01 00:00:00"
        orders = json.loads(body)["orders"]
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT INTO orders (external_order_id, status, total_cost, currency, date, content_hash, payload, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(external_order_id) DO UPDATE SET status=excluded.status,"
            " total_cost=excluded.total_cost, payload=excluded.payload, updated_at=excluded.updated_at",
            [(o["externalOrderId"], o["status"], o["totalCost"], o["currency"], o["date"], "", json.dumps(o), now, now)
             for o in orders])
        self.db.executemany("INSERT INTO events (type, key, contact_id, order_id, params, created_at) VALUES (?,?,?,?,?,?)",
                            [("order" + o["status"], o["externalOrderId"], None, None,
                              json.dumps({"eventKey": o["externalOrderId"], "email": o["email"]}), now) for o in orders])
        self.db.execute("COMMIT")


def measure(port: int, pid: int, tmp: Path, reqs: list[bytes]) -> dict:
    """Backend and floor request by request, interleaved, so that both see the same machine load."""
    client, floor = Client(port), Floor(tmp)
    client.post(reqs[0])                      # warm-up: imports, schema, first connection
    floor.ingest(reqs[0])
    wall = cpu = fwall = fcpu = 0.0
    for body in reqs[1:]:
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        client.post(body)
        wall += time.perf_counter() - t0
        c1 = cpu_seconds(pid)
        cpu += (c1 - c0) if c0 is not None and c1 is not None else float("nan")
        t0, p0 = time.perf_counter(), time.process_time()
        floor.ingest(body)
        fwall += time.perf_counter() - t0
        fcpu += time.process_time() - p0
    return {"wall": wall, "cpu": cpu, "fwall": fwall, "fcpu": fcpu}


def profile(tmp: Path, reqs: list[bytes]) -> None:
    sys.path.insert(0, str(ROOT))
    from backend import create_app
    from daemon.commands.backend import tune_gc
    app = create_app(test_config={"DATABASE_URL": f"sqlite:///{tmp}/profile.db", "API_KEYS": [KEY], "RATE_LIMIT": 0})
    tune_gc()   # as `orderbridge backend` does after start-up
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{KEY}".encode()).decode()}
    prof = cProfile.Profile()
    prof.enable()
    for body in reqs:
        client.post("/api/v1/orders", data=body, headers=auth, content_type="application/json")
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20, help="1000-order requests to send (default 20)")
    ap.add_argument("--profile", action="store_true", help="also profile the same requests in-process")
    args = ap.parse_args()
    reqs = bodies(args.requests)
    with tempfile.TemporaryDirectory(prefix="ob-bench-") as d:
        tmp = Path(d)
        port = free_port()
        proc = start_backend(tmp, port)
        try:
            m = measure(port, proc.pid, tmp, reqs)
        finally:
            proc.terminate()
            proc.wait(30)
        n = (args.requests - 1) * BATCH
        rate, floor_rate = n / m["wall"], n / m["fwall"]
        print(f"backend ingest : {rate:9,.0f} orders/s  ({n} orders in {args.requests - 1} requests of {BATCH}, "
              f"3 items each, {m['wall']:.2f} s; backend CPU {m['cpu'] / n * 1e6:.0f} µs/order)")
        print(f"floor          : {floor_rate:9,.0f} orders/s  (JSON parse + raw sqlite3 executemany upsert + events; "
              f"CPU {m['fcpu'] / n * 1e6:.0f} µs/order)")
        print(f"ratio          : {rate / floor_rate:9.2f}  (by CPU time: {m['fcpu'] / m['cpu']:.2f}; "
              f"target: 5,000 orders/s ≈ 0.40 of the floor)")
        if args.profile:
            profile(tmp, reqs[1:])


if __name__ == "__main__":
    main()
