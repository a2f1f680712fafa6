"""WooCommerce benchmarks: translate throughput and webhook acknowledgement latency, each beside its floor.

    python bench/woocommerce.py [--orders 5000] [--senders 50] [--deliveries 2000] [--skip-ack]

1. translate: realistic 3-item orders as raw WooCommerce bytes → json.loads → translate → canonical wire
   JSON, in orders/s. Floor (same run, same bodies): json.loads + json.dumps of each order, the least any
   translation must do.
2. ack: signed order.created deliveries from `--senders` concurrent senders (a new connection per delivery,
   as WooCommerce does) to the receiver app (`daemon.receiver`, waitress, SQLite, raw body committed before
   the answer), p50/p99 in ms. Floor: the same waitress server answering the same deliveries with a bare
   handler that reads the body and stores nothing. Target: p99 ≤ 50 ms, and within 2× the floor's p99.
Prints figures; never passes or fails.
"""
from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.woocommerce.translate import translate  # noqa: E402
from adapters.woocommerce.webhooks import signature  # noqa: E402
from connector.format import canonical_json  # noqa: E402

SECRET = "bench-secret"
BASE = json.loads((ROOT / "tests/fixtures/woocommerce/rest_v3_order_727_guest_processing_docs.json").read_text())


def php_json(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def realistic_order(i: int, rnd: random.Random) -> dict:
    """Order 727 of the REST docs with three priced lines, a coupon, a registered customer one time in two."""
    o = copy.deepcopy(BASE)
    o["id"] = o["number"] = 10000 + i
    o["number"] = str(o["number"])
    o["customer_id"] = rnd.choice([0, rnd.randrange(1, 5000)])
    o["billing"]["email"] = f"buyer{rnd.randrange(20000)}@example.com"
    lines, goods = [], 0.0
    for n in range(3):
        qty, price = rnd.randint(1, 3), rnd.randrange(500, 9000) / 100
        line = copy.deepcopy(BASE["line_items"][n % 2])
        line.update(id=i * 10 + n, product_id=rnd.randrange(1, 3000), quantity=qty, price=price,
                    subtotal=f"{qty * price:.2f}", total=f"{qty * price * 0.9:.2f}", total_tax="0.00")
        line["image"] = {"id": 1, "src": f"https://shop.example.com/wp-content/uploads/{line['product_id']}.jpg"}
        goods += float(line["total"])
        lines.append(line)
    o["line_items"] = lines
    o["coupon_lines"] = [{"id": 1, "code": "tenoff", "discount": "1.00", "discount_tax": "0"}]
    o.update(total_tax="0.00", total=f"{goods + 10:.2f}", date_modified_gmt=f"2026-01-01T12:{i // 60 % 60:02d}:{i % 60:02d}")
    return o


def bench_translate(n: int) -> None:
    rnd = random.Random(5)
    bodies = [php_json(realistic_order(i, rnd)) for i in range(n)]
    t0 = time.perf_counter()
    for b in bodies:
        json.dumps(json.loads(b))
    floor = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in bodies:
        canonical_json(translate(json.loads(b)).wire)
    ours = n / (time.perf_counter() - t0)
    print(f"translate: {ours:,.0f} orders/s (3-item orders); floor json.loads+dumps {floor:,.0f} orders/s; "
          f"ratio {ours / floor:.2f} of the floor")


# ---- acknowledgement latency ----------------------------------------------------------------------------

SERVER = r"""
import os, sys
sys.path.insert(0, os.environ["ROOT"])
from flask import Flask, request
from waitress import serve
kind, port, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "floor":
    app = Flask("floor")
    @app.post("/webhooks/woocommerce/<shop>")
    def bare(shop):
        request.get_data()
        return "ok", 200
else:
    from connector.config import from_dict
    from daemon.receiver import create_receiver_app
    config = from_dict({"connector": {"database": f"sqlite:///{db}"},
                        "shops": [{"name": "main", "platform": "woocommerce", "webhook_secret_env": "WOO_SECRET"}]})
    app = create_receiver_app(config)
import logging; logging.getLogger("waitress.queue").setLevel(logging.ERROR)
serve(app, host="127.0.0.1", port=port, threads=int(os.environ.get("THREADS", "8")), _quiet=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, ROOT=str(ROOT), WOO_SECRET=SECRET)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), str(tmp / f"{kind}.db")], env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{kind} server did not start")


def send_all(port: int, deliveries: list[tuple[bytes, dict]], senders: int) -> list[float]:
    latencies: list[float] = []
    lock, it = threading.Lock(), iter(deliveries)

    def sender():
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            body, headers = nxt
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/webhooks/woocommerce/main", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status != 200:
                raise SystemExit(f"delivery answered {resp.status}")
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(latencies)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def bench_ack(senders: int, n: int) -> None:
    rnd = random.Random(9)
    deliveries = []
    for i in range(n):
        body = php_json(realistic_order(i, rnd))
        deliveries.append((body, {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created",
                                  "X-WC-Webhook-Signature": signature(body, SECRET),
                                  "X-WC-Webhook-Delivery-ID": f"bench-{i}"}))
    warm = deliveries[: min(100, n)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("floor", "receiver"):
            proc, port = start(kind, Path(tmp))
            try:
                send_all(port, [(b, dict(h, **{"X-WC-Webhook-Delivery-ID": "warm-" + h["X-WC-Webhook-Delivery-ID"]}))
                                for b, h in warm], senders)
                t0 = time.perf_counter()
                lat = send_all(port, deliveries, senders)
                results[kind] = (pct(lat, 0.5), pct(lat, 0.99), len(lat) / (time.perf_counter() - t0))
            finally:
                proc.terminate()
                proc.wait(10)
    (f50, f99, frate), (r50, r99, rrate) = results["floor"], results["receiver"]
    print(f"ack ({senders} senders, {n} deliveries): receiver p50 {r50:.1f} ms, p99 {r99:.1f} ms ({rrate:,.0f}/s, "
          f"raw body committed); floor bare handler p50 {f50:.1f} ms, p99 {f99:.1f} ms ({frate:,.0f}/s); "
          f"p99 ratio {r99 / f99:.2f}× the floor (target ≤ 50 ms and ≤ 2×)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--senders", type=int, default=50)
    ap.add_argument("--deliveries", type=int, default=2000)
    ap.add_argument("--skip-ack", action="store_true")
    args = ap.parse_args()
    bench_translate(args.orders)
    if not args.skip_ack:
        bench_ack(args.senders, args.deliveries)


if __name__ == "__main__":
    main()
