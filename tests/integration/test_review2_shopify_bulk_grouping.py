"""Backfill with the Admin API versions whose bulk output is not grouped by parent (2026-01 and later).

Shopify changelog, 2025-10-29, "Bulk operations group objects default changed to false" (Action Required,
2026-01): `bulkOperationRunQuery` takes `groupObjects`, and from 2026-01 it defaults to false, so a line
item's JSONL row no longer follows its order; "To maintain grouped output: Set groupObjects: true". The
backfill read the file as grouped and stopped at the first child away from its parent ("child of ... does
not follow its parent"): with `api_version = "2026-01"` or later, and for everyone once Shopify falls the
default 2025-01 forward to a version that old, no backfill got past its first orders. Versions before
2025-10 do not know the argument and refuse a query that names it.
"""
from __future__ import annotations

import json

import pytest
from flask import jsonify
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.shopify import backfill
from connector.config import from_dict
from connector.store import OutboxRow
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import TOKEN, FakeShopify, generated_orders, node_from_rest


def ungrouped(jsonl: str) -> str:
    """The same rows as Shopify writes them without grouping: here every order first, then the children."""
    rows = [json.loads(line) for line in jsonl.splitlines() if line.strip()]
    parents = [r for r in rows if "__parentId" not in r]
    children = [r for r in rows if "__parentId" in r]
    return "".join(json.dumps(r) + "\n" for r in parents + children[::-1])


class Shopify2026(FakeShopify):
    """API 2026-01+: groupObjects is an argument, false unless asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.grouping: list = []

    def _bulk_run(self, v):
        cost, produce = super()._bulk_run(v)
        self.grouping.append(v.get("groupObjects"))

        def run():
            data, actual = produce()
            op = (data["bulkOperationRunQuery"].get("bulkOperation") or {}).get("id", "").rsplit("/", 1)[-1]
            if op and v.get("groupObjects") is not True:
                self.bulk_ops[op]["jsonl"] = ungrouped(self.bulk_ops[op]["jsonl"])
            return data, actual
        return cost, run


class Shopify2025(FakeShopify):
    """API before 2025-10: no groupObjects argument; a query naming it is refused by validation."""

    def _answer(self, query, v):
        if "groupObjects" in query:
            return jsonify({"errors": [{"message": "Field 'bulkOperationRunQuery' doesn't accept argument 'groupObjects'",
                                        "locations": [{"line": 3, "column": 35}], "path": ["mutation Run"],
                                        "extensions": {"code": "argumentNotAccepted", "name": "bulkOperationRunQuery",
                                                       "typeName": "Field", "argumentName": "groupObjects"}}]})
        return super()._answer(query, v)


@pytest.fixture
def make_shop(monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)

    def make(fake, version):
        return from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": "fake.myshopify.com",
                                     "api_url": fake.url, "api_version": version, "access_token_env": "SHOP_TOKEN",
                                     "enrich_products": False}]}).shop("main")
    return make


def outbox(engine) -> dict:
    with Session(engine) as s:
        return {r.external_order_id: json.loads(r.payload) for r in s.scalars(select(OutboxRow))}


def orders():
    cancelled = json.loads((FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_text())
    return [node_from_rest(cancelled)] + generated_orders(5)


def run(engine, shop):
    return backfill.run(engine, shop, progress=False, interval=0, sleep=lambda s: None)


def test_backfill_on_2026_api_gets_every_order_with_its_lines(engine, make_shop):
    with Shopify2026(orders(), restore_rate=1e6) as fake:
        assert run(engine, make_shop(fake, "2026-01")) == 6
        assert fake.grouping == [True]
    rows = outbox(engine)
    assert rows["6198821716268"]["items"][0]["cost"] == 99
    assert [len(rows[str(10_000 + i)]["items"]) for i in range(5)] == [1, 2, 3, 1, 2]


def test_backfill_on_an_api_without_the_argument_still_runs(engine, make_shop):
    with Shopify2025(orders(), restore_rate=1e6) as fake:
        assert run(engine, make_shop(fake, "2025-01")) == 6
        assert fake.stats["bulk_started"] == 1
    assert len(outbox(engine)["10002"]["items"]) == 3


def test_an_ungrouped_file_is_refused_with_a_reason_not_misread():
    """Should a file come ungrouped anyway, no order is built from part of its lines."""
    jsonl = ungrouped("".join(json.dumps(r) + "\n" for r in [
        {"id": "gid://shopify/Order/1", "legacyResourceId": "1"},
        {"id": "gid://shopify/LineItem/11", "__parentId": "gid://shopify/Order/1"},
        {"id": "gid://shopify/Order/2", "legacyResourceId": "2"},
        {"id": "gid://shopify/LineItem/21", "__parentId": "gid://shopify/Order/2"}]))
    with pytest.raises(ValueError, match="groupObjects"):
        list(backfill.orders_from_jsonl(jsonl.splitlines()))
