"""Benchmark of the backend UI pages and report routes over 100k orders / 20k contacts / 300k events.

    python bench/pages.py                      # fresh data set in a temp dir
    python bench/pages.py --keep var/bench     # keep (and reuse) the data set in a folder

Setup bulk-inserts straight into SQLite (contacts, orders, events, workflows, runs, steps,
messages, and a connector outbox), then times every page through the Flask test client,
logged in: each page once to warm up, then the median and the worst of --runs requests.
The floor, measured in the same run, is the same client fetching a page that runs one
trivial query (`/healthz`); the ratio to it is printed beside each figure.
Prints figures; asserts nothing (target: every page ≤ 200 ms on SQLite).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATUSES = ["DELIVERED"] * 12 + ["IN_PROGRESS"] * 3 + ["CANCELLED"] * 2 + ["INITIALIZED"] * 2 + ["ABANDONED_SHOPPING_CART"]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
KEY = "bench-key"


def stamp(dt: datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime on SQLite."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed_backend(path: Path, contacts: int, orders: int, events: int, rnd: random.Random) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")          # setup only: a crash just means running it again
    db.executemany("INSERT INTO contacts (id, external_customer_id, email, email_lc, phone, first_name, last_name,"
                   " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                   ((i, f"cust-{i}", f"c{i}@example.com", f"c{i}@example.com", f"38050{i:07d}", f"First{i}",
                     f"Last{i}", stamp(NOW), stamp(NOW)) for i in range(1, contacts + 1)))
    rows = []
    for i in range(1, orders + 1):
        cid = rnd.randint(1, contacts)
        status, cur = rnd.choice(STATUSES), ("EUR" if rnd.random() < 0.1 else "USD")
        when = NOW - timedelta(minutes=rnd.randint(0, 2 * 365 * 24 * 60))
        total = round(rnd.uniform(5, 400), 2)
        payload = json.dumps({"externalOrderId": f"ord-{i}", "externalCustomerId": f"cust-{cid}", "status": status,
                              "totalCost": total, "currency": cur, "date": when.isoformat(), "email": f"c{cid}@example.com",
                              "items": [{"externalItemId": f"sku-{i % 300}", "quantity": 1, "cost": total,
                                         "name": f"Product {i % 300}"}]})
        rows.append((i, f"ord-{i}", cid, status, total, cur, stamp(when), "h", payload, stamp(when), stamp(when)))
    db.executemany("INSERT INTO orders (id, external_order_id, contact_id, status, total_cost, currency, date,"
                   " content_hash, payload, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    ev = []
    for i in range(1, events + 1):
        o = rows[rnd.randrange(len(rows))]
        params = json.dumps({"eventKey": o[1], "orderId": o[0], "contactId": o[2], "EmailAddress": f"c{o[2]}@example.com"})
        ev.append((i, f"order{o[3]}", o[1], o[2], o[0], params, stamp(NOW - timedelta(seconds=events - i))))
    db.executemany("INSERT INTO events (id, type, key, contact_id, order_id, params, created_at) VALUES (?,?,?,?,?,?,?)", ev)
    seed_workflows(db, contacts, rnd)
    db.commit()
    db.execute("ANALYZE")
    db.close()


def seed_workflows(db, contacts: int, rnd: random.Random, runs: int = 40000) -> None:
    db.executemany("INSERT INTO workflow_definitions (id, name, active, start_event, definition, version, created_at,"
                   " updated_at) VALUES (?,?,1,?,?,1,?,?)",
                   [(w, f"Workflow {w}", "orderDELIVERED", json.dumps({"steps": []}), stamp(NOW), stamp(NOW))
                    for w in (1, 2, 3)])
    states = ["completed"] * 6 + ["in_progress", "stopped", "error"]
    run_rows, step_rows, msg_rows = [], [], []
    for r in range(1, runs + 1):
        cid, wid = rnd.randint(1, contacts), rnd.randint(1, 3)
        when = NOW - timedelta(minutes=rnd.randint(0, 2 * 365 * 24 * 60))
        run_rows.append((r, wid, r, f"ord-{r}", cid, rnd.choice(states), "{}", stamp(when)))
        step_rows.append((2 * r - 1, r, "get_order", "get_order", "done", stamp(when)))
        step_rows.append((2 * r, r, "send", "send_message", "done", stamp(when)))
        msg_rows.append((r, wid, r, 2 * r, cid, "store", f"c{cid}@example.com", "Thanks", "Hello", "stored", stamp(when)))
    db.executemany("INSERT INTO workflow_runs (id, workflow_id, event_id, key, contact_id, state, context, started_at)"
                   " VALUES (?,?,?,?,?,?,?,?)", run_rows)
    db.executemany("INSERT INTO workflow_steps (id, run_id, step_id, step_type, state, due_at) VALUES (?,?,?,?,?,?)", step_rows)
    db.executemany("INSERT INTO messages (id, workflow_id, run_id, step_row_id, contact_id, channel, to_address, subject,"
                   " body, status, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", msg_rows)


def seed_connector(path: Path, n: int, rnd: random.Random) -> None:
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO outbox (shop, external_order_id, payload, content_hash, source, state, attempts,"
                   " next_attempt_at, last_error, created_at, updated_at) VALUES ('main',?,'{}','h','poll',?,?,?,?,?,?)",
                   ((f"ord-{i}", s, 1, stamp(NOW), "email: not an email" if s == "failed" else None, stamp(NOW), stamp(NOW))
                    for i in range(n) for s in [("failed" if rnd.random() < 0.05 else "sent")]))
    db.commit()
    db.execute("ANALYZE")
    db.close()


def build(folder: Path, args) -> tuple:
    from backend import create_app
    from connector.config import from_dict
    from connector.store import init_db, make_engine
    from daemon.status_ui import register_status_ui
    fresh = not (folder / "backend.db").exists()
    config = from_dict({"backend": {"database": f"sqlite:///{folder}/backend.db"}, "shops": [{"name": "main", "platform": "csv"}]})
    app = create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    conn_engine = make_engine(f"sqlite:///{folder}/connector.db")
    init_db(conn_engine)
    if fresh:
        rnd = random.Random(7)
        t0 = time.perf_counter()
        seed_backend(folder / "backend.db", args.contacts, args.orders, args.events, rnd)
        seed_connector(folder / "connector.db", args.orders, rnd)
        print(f"setup: {args.orders:,} orders, {args.contacts:,} contacts, {args.events:,} events, 40,000 runs and "
              f"messages, {args.orders:,} outbox rows in {time.perf_counter() - t0:.1f}s")
    register_status_ui(app, config, conn_engine)
    return app


def log_in(client) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text).group(1)
    assert client.post("/ui/login", data={"password": KEY, "csrf_token": token}).status_code == 302


def timed(client, url: str, runs: int, headers=None) -> tuple[float, float, float, int]:
    client.application.extensions.pop("orderbridge.report_cache", None)    # first request: cold
    t0 = time.perf_counter()
    r = client.get(url, headers=headers)          # first request: cold (reports not cached yet)
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
    return first, statistics.median(times), max(times), r.status_code


def pages(args) -> list[str]:
    mid_order, mid_event = args.orders // 2, args.events // 2
    since, until = (NOW - timedelta(days=3)).date().isoformat(), (NOW - timedelta(days=2)).date().isoformat()
    return [
        "/ui/orders", f"/ui/orders?before={mid_order}", f"/ui/orders?q=ord-{mid_order}", "/ui/orders?status=DELIVERED",
        "/ui/orders?status=CANCELLED&currency=EUR", "/ui/orders?contact=77", f"/ui/orders/{mid_order}",
        "/ui/events", f"/ui/events?before={mid_event}", "/ui/events?type=orderDELIVERED",
        "/ui/events?type=orderABANDONED_SHOPPING_CART&before=1000", f"/ui/events?key=ord-{mid_order}",
        "/ui/events?contact=77", f"/ui/events?since={since}&until={until}",
        "/ui/contacts", "/ui/contacts?avgCheckMin=300&currency=USD", "/ui/contacts?orderCountMin=12",
        "/ui/contacts?lastOrderBefore=2000-01-01", "/ui/contacts?rfm=0-0", "/ui/contacts?rfm=5-3", "/ui/contacts/77",
        "/ui/workflows", "/ui/workflows/1?tab=completed", "/ui/workflows/1?tab=error&before=20000", "/ui/runs/77",
        "/ui/messages", "/ui/messages?contact=77", "/ui/messages/77",
        "/ui/reports", "/ui/connector/",
        "/api/v1/reports/rfm", "/api/v1/reports/revenue?currency=USD&windowDays=5",
        "/api/v1/segments?avgCheckMin=150&orderCountMin=2&currency=USD", "/api/v1/segments?orderCountMax=0",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--contacts", type=int, default=20_000)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--keep", type=Path, help="folder to keep (and reuse) the data set in")
    args = p.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ob-bench-pages-"))
    folder.mkdir(parents=True, exist_ok=True)
    app = build(folder, args)
    client = app.test_client()
    log_in(client)
    api = {"Authorization": "Basic " + __import__("base64").b64encode(f"b:{KEY}".encode()).decode()}
    _, floor, _, _ = timed(client, "/healthz", args.runs * 3)
    print(f"floor (/healthz through the same client): {floor:.2f} ms")
    print("(first = the first request, before the report cache holds anything; median/worst of the rest)")
    print(f"{'page':58} {'first ms':>9} {'median ms':>10} {'worst ms':>9} {'× floor':>8}  status")
    slowest, slowest_first = (0.0, ""), (0.0, "")
    for url in pages(args):
        first, med, worst, status = timed(client, url, args.runs, api if url.startswith("/api/") else None)
        slowest, slowest_first = max(slowest, (med, url)), max(slowest_first, (first, url))
        flag = "" if med <= 200 else "   over 200 ms"
        print(f"{url:58} {first:9.1f} {med:10.1f} {worst:9.1f} {med / floor:8.1f}  {status}{flag}")
    print(f"slowest page (median): {slowest[1]} at {slowest[0]:.1f} ms (target ≤ 200 ms)")
    print(f"slowest first request: {slowest_first[1]} at {slowest_first[0]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
