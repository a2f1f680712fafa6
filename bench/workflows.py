"""Workflow runner benchmark: 10,000 order events through a 3-step workflow (get_order → timer → store message).

Prints steps/s for one worker on SQLite (with a floor measured in the same run: raw sqlite3 doing one
UPDATE and one INSERT per step, committed every 200 steps) and the lateness of due timers (p50/p99)
while events stream in. Run: `python bench/workflows.py [--events N]`.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select

from backend.db import init_schema, make_engine, write_transaction
from backend.storage import Contact, Event, StoredOrder
from backend.workflows import repo
from backend.workflows import storage as t
from backend.workflows.runner import IDLE_WAIT, Runner

TIMER_SECONDS = 2.0


def workflow(timer_seconds: float) -> dict:
    return {"name": "bench", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "order", "type": "get_order"},
        {"id": "wait", "type": "timer", "minutes": timer_seconds / 60},
        {"id": "mail", "type": "send_message", "channel": "store", "subject": "Order ${externalOrderId}",
         "body": "Hi ${firstName}: {% for i in items %}{{ i.name }} {% endfor %}"}]}


def order_rows(start: int, n: int, now: datetime) -> tuple[list, list, list]:
    """Contacts, orders and events as the backend's intake stores them (every event names its contact:
    one whose contact was deleted starts no run)."""
    contacts, orders, events = [], [], []
    for i in range(start, start + n):
        ext = f"B-{i}"
        contacts.append({"id": i + 1, "email": f"c{i}@example.com", "email_lc": f"c{i}@example.com", "first_name": "Ann",
                         "created_at": now, "updated_at": now})
        payload = {"externalOrderId": ext, "email": f"c{i}@example.com", "firstName": "Ann", "totalCost": 10.0,
                   "status": "INITIALIZED", "date": now.isoformat(), "currency": "USD",
                   "items": [{"externalItemId": "S1", "name": "Mug", "quantity": 1, "cost": 10.0}]}
        orders.append({"id": i + 1, "external_order_id": ext, "contact_id": i + 1, "status": "INITIALIZED",
                       "total_cost": 10.0, "currency": "USD", "date": now, "content_hash": str(i),
                       "payload": json.dumps(payload), "created_at": now, "updated_at": now})
        events.append({"type": "orderINITIALIZED", "key": ext, "order_id": i + 1, "contact_id": i + 1, "created_at": now,
                       "params": json.dumps({"eventKey": ext, "orderId": i + 1, "contactId": i + 1,
                                             "EmailAddress": f"c{i}@example.com"})})
    return contacts, orders, events


def feed(engine, start: int, n: int) -> None:
    contacts, orders, events = order_rows(start, n, datetime.now(timezone.utc))
    with write_transaction(engine) as conn:
        conn.execute(insert(Contact.__table__), contacts)
        conn.execute(insert(StoredOrder.__table__), orders)
        conn.execute(insert(Event.__table__), events)


def setup(path: Path, timer_seconds: float):
    engine = make_engine(f"sqlite:///{path}")
    init_schema(engine)
    with write_transaction(engine) as conn:
        repo.create(conn, workflow(timer_seconds), datetime.now(timezone.utc))
    return engine


def throughput(tmp: Path, n: int) -> tuple[float, int, float]:
    """Steps/s with every event already stored; the clock jumps over the timer (no waiting measured)."""
    engine = setup(tmp / "throughput.db", TIMER_SECONDS)
    feed(engine, 0, n)
    offset = [timedelta(0)]
    runner = Runner(engine, clock=lambda: datetime.now(timezone.utc) + offset[0])
    t0 = time.perf_counter()
    work = runner.run_until_idle(max_rounds=100_000)
    offset[0] = timedelta(seconds=TIMER_SECONDS + 1)
    work += runner.run_until_idle(max_rounds=100_000)
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        steps = conn.execute(select(t.steps.c.id).where(t.steps.c.state == t.DONE)).all()
        messages = len(conn.execute(select(t.messages.c.id)).all())
    engine.dispose()
    assert messages == n, f"expected {n} messages, got {messages}"
    return len(steps) / elapsed, len(steps), elapsed


def lateness(tmp: Path, n: int, rate: float) -> tuple[list[float], float]:
    """Events streamed in at `rate`/s while one worker loop runs on the real clock; timer lateness in s."""
    engine = setup(tmp / "lateness.db", TIMER_SECONDS)
    runner = Runner(engine)
    stop = threading.Event()

    def work():
        while not stop.is_set():
            if not runner.tick():
                stop.wait(IDLE_WAIT)

    worker = threading.Thread(target=work)
    worker.start()
    t0, chunk = time.perf_counter(), 50
    for start in range(0, n, chunk):
        feed(engine, start, min(chunk, n - start))
        time.sleep(max(0.0, t0 + (start + chunk) / rate - time.perf_counter()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if len(conn.execute(select(t.messages.c.id)).all()) >= n:
                break
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    stop.set()
    worker.join()
    with engine.connect() as conn:
        rows = conn.execute(select(t.steps.c.due_at, t.steps.c.done_at).where(t.steps.c.step_type == "timer")).all()
    engine.dispose()
    return sorted((r.done_at - r.due_at).total_seconds() for r in rows), elapsed


def floor(tmp: Path, steps: int, batch: int = 200) -> float:
    """Raw sqlite3: per step one UPDATE of its row and one INSERT of the next, a commit every `batch`."""
    db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, run INTEGER, state TEXT, due TEXT, result TEXT)")
    db.execute("CREATE INDEX s_due ON s (state, due)")
    db.executemany("INSERT INTO s (run, state, due) VALUES (?, 'pending', ?)",
                   [(i, "2025-01-01T00:00:00") for i in range(steps)])
    t0 = time.perf_counter()
    for start in range(0, steps, batch):
        db.execute("BEGIN IMMEDIATE")
        for sid in range(start + 1, min(start + batch, steps) + 1):
            db.execute("UPDATE s SET state='done', result='{}' WHERE id=?", (sid,))
            db.execute("INSERT INTO s (run, state, due) VALUES (?, 'next', '2025-01-01T00:00:01')", (sid,))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return steps / elapsed


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=500.0, help="events per second streamed in the lateness run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rate, steps, elapsed = throughput(tmp, args.events)
        base = floor(tmp, steps)
        print(f"throughput: {steps} steps ({args.events} events x 3 steps) in {elapsed:.2f} s = {rate:,.0f} steps/s "
              f"on SQLite, one worker (target >= 1,000)")
        print(f"floor:      raw sqlite3 UPDATE+INSERT per step = {base:,.0f} steps/s; ratio {rate / base:.2f}")
        late, took = lateness(tmp, args.events, args.rate)
        print(f"lateness:   {len(late)} timers of {TIMER_SECONDS:.0f} s, events streamed at {args.rate:.0f}/s "
              f"({took:.1f} s): p50 {pct(late, 50):.3f} s, p99 {pct(late, 99):.3f} s, max {max(late):.3f} s "
              f"(target p99 <= 2 s; mean {statistics.fmean(late):.3f} s)")


if __name__ == "__main__":
    main()
