"""Webhook acknowledgement latency: p99 at 50 concurrent senders, receiver vs. a bare-handler floor.

Both servers are the same waitress, started by `daemon.serve` as `orderbridge receiver` does (same
settings, same thread count), each in its own process; the floor answers
the same deliveries with a Flask handler that reads the body and stores nothing, the receiver
verifies the signature and commits the raw body to the inbox (SQLite, WAL) before answering.
Both are driven by the same load in the same run. Prints figures (server CPU and context switches
per delivery too: they vary less than a p99 on a shared machine); passes or fails nothing.

    python bench/webhooks.py [--senders 50] [--requests 40] [--threads 8]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench_secret"
SHOPIFY_BODY = (ROOT / "tests/fixtures/shopify/webhook_orders_cancelled_refunded_hkd.json").read_bytes()
WOO_BODY = (ROOT / "tests/fixtures/woocommerce/webhook_order_76_eur_created.body.raw").read_bytes()


# ---- servers (each in its own process) -----------------------------------------------------------

def floor_app():
    from flask import Flask, jsonify, request
    app = Flask("floor")

    @app.post("/webhooks/<platform>/<shop>")
    def bare(platform, shop):
        request.get_data()
        return jsonify({"ok": True}), 200
    return app


def receiver_app(db_path: str):
    from connector.config import from_dict
    from connector.store import init_db, make_engine
    from daemon.receiver import create_receiver_app
    os.environ["BENCH_SECRET"] = SECRET
    config = from_dict({"connector": {"database": f"sqlite:///{db_path}"}, "shops": [
        {"name": "main", "platform": "shopify", "webhook_secret_env": "BENCH_SECRET"},
        {"name": "woo", "platform": "woocommerce", "webhook_secret_env": "BENCH_SECRET"}]})
    engine = make_engine(config.database)
    init_db(engine)
    return create_receiver_app(config, engine)


def serve(kind: str, db_path: str, threads: int) -> None:
    # Both through daemon.serve, as `orderbridge receiver` runs: every server setting is the same.
    from daemon.serve import serve as run_server
    app = floor_app() if kind == "floor" else receiver_app(db_path)
    run_server(app, "127.0.0.1", 0, threads, on_ready=lambda _host, port: print(port, flush=True))


def start(kind: str, db_path: str, threads: int) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--db", db_path, "--threads", str(threads)],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return p, int(p.stdout.readline())


# ---- load ---------------------------------------------------------------------------------------

def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


SHOPIFY_SIG, WOO_SIG = _sign(SHOPIFY_BODY), _sign(WOO_BODY)


def delivery(i: int, run: str) -> tuple[str, bytes, dict]:
    if i % 2 == 0:
        return "/webhooks/shopify/main", SHOPIFY_BODY, {
            "Content-Type": "application/json", "X-Shopify-Topic": "orders/cancelled", "X-Shopify-Hmac-Sha256": SHOPIFY_SIG,
            "X-Shopify-Webhook-Id": f"{run}-{i}", "X-Shopify-Shop-Domain": "bench.myshopify.com"}
    return "/webhooks/woocommerce/woo", WOO_BODY, {
        "Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Signature": WOO_SIG,
        "X-WC-Webhook-Delivery-ID": f"{run}-{i}", "X-WC-Webhook-Source": "https://bench.example/"}


def _request(path: str, body: bytes, headers: dict) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode() + body


async def _exchange(reader, writer, data: bytes) -> int:
    writer.write(data)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def _sender(port: int, n: int, offset: int, run: str, out: list, start) -> None:
    import asyncio
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _exchange(reader, writer, _request(*delivery(offset, run + "-warm")))     # connection warm
    await start.wait()
    for k in range(n):
        path, body, headers = delivery(offset * n + k, run)
        data = _request(path, body, headers)
        t0 = time.perf_counter()
        status = await _exchange(reader, writer, data)
        out.append((path.split("/")[2], time.perf_counter() - t0, status))
    writer.close()


def load(port: int, senders: int, per_sender: int, run: str) -> tuple[list, float]:
    """`senders` keep-alive connections, each sending its deliveries one after another (closed loop).
    One asyncio loop drives them all: a light client leaves the CPU to the servers being measured."""
    import asyncio

    async def main() -> tuple[list, float]:
        results: list = []
        start = asyncio.Event()
        tasks = [asyncio.create_task(_sender(port, per_sender, i, run, results, start)) for i in range(senders)]
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return results, time.perf_counter() - t0
    return asyncio.run(main())


def cpu_seconds(pid: int) -> tuple[float, float, int]:
    """User CPU, system CPU and context switches of a process so far (Linux /proc; zeros elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        switches = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:           # voluntary and nonvoluntary, every thread
                    switches += int(line.split()[1])
        return int(fields[11]) / tick, int(fields[12]) / tick, switches
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0, 0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


def summary(name: str, results: list, elapsed: float) -> dict:
    bad = [s for _, _, s in results if s != 200]
    lat = [t for _, t, _ in results]
    per = {pl: p99([t for p, t, _ in results if p == pl]) for pl in ("shopify", "woocommerce")}
    print(f"{name:9s} {len(results)} deliveries in {elapsed:.2f}s ({len(results) / elapsed:.0f}/s), "
          f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99(lat):.1f} ms "
          f"(shopify {per['shopify']:.1f}, woocommerce {per['woocommerce']:.1f}), non-200: {len(bad)}")
    return {"p99": p99(lat), **per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senders", type=int, default=50)
    ap.add_argument("--requests", type=int, default=30, help="deliveries per sender per round")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads (as `orderbridge receiver`)")
    ap.add_argument("--rounds", type=int, default=4, help="floor and receiver alternate this many times")
    ap.add_argument("--serve", choices=("floor", "receiver"), help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.db, args.threads)
    tmp = tempfile.mkdtemp(prefix="ob-bench-webhooks-")
    db = os.path.join(tmp, "connector.db")
    procs = {k: start(k, db, args.threads) for k in ("floor", "receiver")}
    print(f"{args.senders} concurrent senders x {args.requests} deliveries, waitress threads={args.threads}, "
          f"{args.rounds} alternating rounds; half Shopify ({len(SHOPIFY_BODY)} B), half WooCommerce ({len(WOO_BODY)} B)")
    got = {"floor": [], "receiver": []}
    cpu = {"floor": [0.0, 0.0, 0], "receiver": [0.0, 0.0, 0]}
    try:
        for r in range(args.rounds):
            for kind in ("floor", "receiver"):
                before = cpu_seconds(procs[kind][0].pid)
                results, elapsed = load(procs[kind][1], args.senders, args.requests, f"r{r}")
                cpu[kind] = [t + a - b for t, a, b in zip(cpu[kind], cpu_seconds(procs[kind][0].pid), before)]
                got[kind].append((results, elapsed))
        figures = {k: summary(k, [x for res, _ in v for x in res], sum(e for _, e in v)) for k, v in got.items()}
        for k in cpu:
            n = sum(len(res) for res, _ in got[k])
            user, system, switches = cpu[k]
            print(f"{k:9s} server CPU {(user + system) / n * 1000:.2f} ms per delivery "
                  f"(user {user / n * 1000:.2f}, system {system / n * 1000:.2f}; {switches / n:.1f} context switches)")
    finally:
        for p, _ in procs.values():
            p.terminate()
            p.wait()
    import sqlite3
    stored = sqlite3.connect(db).execute("select count(*) from inbox").fetchone()[0]
    sent = sum(len(res) for res, _ in got["receiver"])
    print(f"inbox rows committed: {stored} of {sent} receiver deliveries")
    ratio = figures["receiver"]["p99"] / figures["floor"]["p99"]
    print(f"RESULT receiver p99 {figures['receiver']['p99']:.1f} ms, floor p99 {figures['floor']['p99']:.1f} ms, "
          f"ratio {ratio:.2f}x (targets: <= 50 ms and <= 2x floor)")


if __name__ == "__main__":
    main()
