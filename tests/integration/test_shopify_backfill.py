"""Backfill through a bulk operation: JSONL children joined, interrupted and resumed without duplicates."""
from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify import backfill
from connector.cursors import read as load_cursor
from connector.config import from_dict
from connector.errors import RetriableAPIError
from connector.store import OutboxRow, init_db, make_engine
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify, generated_orders, node_from_rest


@pytest.fixture
def make_shop(monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)

    def make(fake):
        return from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": "fake.myshopify.com",
                                     "api_url": fake.url, "access_token_env": "SHOP_TOKEN", "enrich_products": False}]}).shop("main")
    return make


def outbox(engine) -> list[OutboxRow]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def run(engine, shop, **kw):
    return backfill.run(engine, shop, progress=False, interval=0, sleep=lambda s: None, **kw)


def test_backfill_reads_orders_with_their_line_items(engine, make_shop):
    cancelled = json.loads((FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_text())
    with FakeShopify([node_from_rest(cancelled)] + generated_orders(5), restore_rate=1e6, bulk_polls_until_done=3) as fake:
        assert run(engine, make_shop(fake)) == 6
    rows = {r.external_order_id: json.loads(r.payload) for r in outbox(engine)}
    assert rows["6198821716268"]["status"] == "CANCELLED" and rows["6198821716268"]["items"][0]["cost"] == 99
    # in the shop's time zone, as the webhook wrote it: a backfill re-reading webhook orders adds no version
    assert rows["6198821716268"]["date"] == cancelled["processed_at"] == "2025-01-23T05:18:47-05:00"
    assert [len(rows[str(10_000 + i)]["items"]) for i in range(5)] == [1, 2, 3, 1, 2]


def test_since_limits_the_bulk_query(engine, make_shop):
    with FakeShopify(generated_orders(30), restore_rate=1e6) as fake:
        # generated orders are one second apart from 2026-01-01T00:00:00Z
        assert run(engine, make_shop(fake), since="2026-01-01T00:00:20+00:00") == 10


def test_interrupted_backfill_resumes_the_same_operation(engine, make_shop):
    with FakeShopify(generated_orders(600), restore_rate=1e6) as fake:
        shop = make_shop(fake)
        fake.break_download_after_lines = 1700          # about 425 orders in: the connection drops
        with pytest.raises(RetriableAPIError, match="resume"):
            run(engine, shop, chunk=100)
        first = len(outbox(engine))
        assert first == 400                             # four committed chunks of 100
        with Session(engine) as s:
            state = load_cursor(s, "main", "backfill")
        assert state["orders"] == 400 and not state.get("done")
        assert run(engine, shop, chunk=100) == 200      # only the rest is read again
        assert fake.stats["bulk_started"] == 1
    ids = [r.external_order_id for r in outbox(engine)]
    assert len(ids) == len(set(ids)) == 600


def test_missing_read_all_orders_is_said_clearly(engine, make_shop, capsys):
    with FakeShopify(generated_orders(2), restore_rate=1e6, scopes=("read_orders",)) as fake:
        backfill.run(engine, make_shop(fake), progress=True, interval=0, sleep=lambda s: None)
    err = capsys.readouterr().err
    assert "read_all_orders" in err and "60 days" in err


def test_a_finished_backfill_starts_a_new_operation_next_time(engine, make_shop):
    with FakeShopify(generated_orders(3), restore_rate=1e6) as fake:
        shop = make_shop(fake)
        assert run(engine, shop) == 3
        assert run(engine, shop) == 0                   # same orders: no new versions
        assert fake.stats["bulk_started"] == 2


def test_since_parsing_in_the_command():
    from daemon.commands.backfill import parse_since
    from connector.errors import InvalidInput
    assert parse_since("2024-01-31") == date(2024, 1, 31)
    with pytest.raises(InvalidInput, match="--since"):
        parse_since("31/01/2024")
