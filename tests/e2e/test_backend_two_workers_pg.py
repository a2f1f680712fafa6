"""Two backend workers (processes, each its own app and engine) on one PostgreSQL database, posting at
the same moment: one contact per person, no enrichment lost, no deadlock answered with a 500."""
from __future__ import annotations

import base64
import multiprocessing

import pytest
import sqlalchemy as sa

KEY = "two-workers-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}
ROUNDS = 15


def order(ext: str, **kw) -> dict:
    return {"externalOrderId": ext, "totalCost": 10, "status": "INITIALIZED", "date": "2024-01-01T10:00:00+00:00",
            "currency": "EUR", **kw}


def app_for(url: str):
    from backend import create_app
    from connector.config import from_dict
    return create_app(from_dict({"backend": {"database": url}}), test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})


def worker(url: str, side: int, barrier, plans: list, results) -> None:
    client = app_for(url).test_client()
    statuses = []
    for plan in plans:
        barrier.wait(timeout=60)
        statuses.append(client.post("/api/v1/orders", json={"orders": plan[side]}, headers=AUTH).status_code)
    results.put(statuses)


def race(url: str, plans: list) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, side, barrier, plans, results)) for side in (0, 1)]
    for p in procs:
        p.start()
    statuses = [s for _ in procs for s in results.get(timeout=300)]
    for p in procs:
        p.join(timeout=60)
    return statuses


def scalar(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def url(pg_url):
    app_for(pg_url).extensions["orderbridge.engine"].dispose()      # the schema, made once before the race
    return pg_url


def test_one_email_from_two_workers_is_one_contact(url):
    plans = [([order(f"A{i}", email=f"p{i}@example.com")], [order(f"B{i}", email=f"P{i}@EXAMPLE.COM")])
             for i in range(ROUNDS)]
    assert set(race(url, plans)) == {200}
    assert scalar(url, "SELECT count(*) FROM (SELECT email_lc FROM contacts GROUP BY email_lc HAVING count(*) > 1) d") == 0


def test_an_email_and_a_phone_added_at_once_are_both_kept(url):
    client = app_for(url).test_client()
    for i in range(ROUNDS):
        assert client.post("/api/v1/orders", json={"orders": [order(f"S{i}", externalCustomerId=f"C{i}")]},
                           headers=AUTH).status_code == 200
    plans = [([order(f"A{i}", externalCustomerId=f"C{i}", email=f"m{i}@example.com")],
              [order(f"B{i}", externalCustomerId=f"C{i}", phone=f"3805000{i:05d}")]) for i in range(ROUNDS)]
    assert set(race(url, plans)) == {200}
    assert scalar(url, "SELECT count(*) FROM contacts WHERE email IS NULL OR phone IS NULL") == 0


def test_the_same_new_orders_in_opposite_order_never_deadlock_into_a_500(url):
    plans = [([order(f"X{i}", email="a@example.com"), order(f"Y{i}", email="a@example.com")],
              [order(f"Y{i}", email="a@example.com", totalCost=11), order(f"X{i}", email="a@example.com", totalCost=11)])
             for i in range(ROUNDS)]
    assert set(race(url, plans)) == {200}
    assert scalar(url, "SELECT count(*) FROM orders") == 2 * ROUNDS
