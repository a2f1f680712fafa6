"""The poll is the safety net for every webhook WooCommerce fails to deliver (it never retries, and disables a
webhook after repeated failures; reference/woocommerce.md §1.5). A trashed order reaches us only as
order.deleted: `GET /orders` answers `status=any` by default, which leaves trashed orders out, so a missed
order.deleted left the order paid and in progress for good. Trashing sets the order's modification date
(wp_trash_post; HPOS trash_order sets date_updated_gmt), so the poll also asks for `status=trash`.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlmodel import Session

from adapters.woocommerce import poller
from connector.errors import FatalAPIError
from connector.store import OutboxRow
from tests.fakes.fake_woocommerce import FakeWooCommerce, make_orders, woo_shop

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)


pytestmark = pytest.mark.usefixtures("woo_keys")


def shop_for(woo, **kw):
    return woo_shop(woo.url, poll_since="2d", per_page=3, **kw)


def outbox(engine):
    with Session(engine) as s:
        return [(r.external_order_id, json.loads(r.payload)["status"])
                for r in s.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars()]


@pytest.mark.parametrize("orderby_modified", [True, False], ids=["orderby-modified", "orderby-id"])
def test_an_order_trashed_without_a_webhook_is_cancelled_by_the_next_poll(engine, orderby_modified):
    with FakeWooCommerce(make_orders(5), orderby_modified=orderby_modified) as woo:
        shop = shop_for(woo)
        assert poller.poll(engine, shop, now=NOW) == 5
        woo.update(1002, "2026-01-01T13:00:00", status="trash")       # the order.deleted delivery was lost
        poller.poll(engine, shop, now=NOW)
        assert any(r.get("status") == "trash" for r in woo.requests)
    assert [s for oid, s in outbox(engine) if oid == "1002"] == ["IN_PROGRESS", "CANCELLED"]


def test_an_order_created_and_trashed_between_polls_is_not_sent(engine):
    """As with order.deleted: only an order sent before is cancelled (spam and test orders stay out)."""
    with FakeWooCommerce(make_orders(2), orderby_modified=True) as woo:
        shop = shop_for(woo)
        poller.poll(engine, shop, now=NOW)
        woo.orders[1009] = dict(make_orders(1, first_id=1009)[0], status="trash", date_modified_gmt="2026-01-01T13:00:00")
        assert poller.poll(engine, shop, now=NOW) == 0
    assert "1009" not in {oid for oid, _ in outbox(engine)}


def test_a_restored_order_comes_back_through_the_usual_poll(engine):
    with FakeWooCommerce(make_orders(2)) as woo:
        shop = shop_for(woo)
        poller.poll(engine, shop, now=NOW)
        woo.update(1001, "2026-01-01T13:00:00", status="trash")
        poller.poll(engine, shop, now=NOW)
        woo.update(1001, "2026-01-01T13:05:00", status="processing")    # untrashed: a new modification
        poller.poll(engine, shop, now=NOW)
    assert [s for oid, s in outbox(engine) if oid == "1001"] == ["IN_PROGRESS", "CANCELLED", "IN_PROGRESS"]


def test_a_store_without_orderby_modified_is_asked_once_per_poll(engine):
    with FakeWooCommerce(make_orders(2), orderby_modified=False) as woo:
        poller.poll(engine, shop_for(woo), now=NOW)
        assert [(r["orderby"], r.get("status", "any")) for r in woo.requests] == [
            ("modified", "any"), ("id", "any"), ("id", "trash")]


def test_a_store_that_refuses_status_trash_is_still_polled(engine):
    from flask import jsonify
    refusal = {"code": "rest_invalid_param", "message": "Invalid parameter(s): status",
               "data": {"status": 400, "params": {"status": "status[0] is not one of ..."}}}
    with FakeWooCommerce(make_orders(2)) as woo:
        original = woo._orders
        woo._orders = lambda args: (jsonify(refusal), 400) if args.get("status") == "trash" else original(args)
        assert poller.poll(engine, shop_for(woo), now=NOW) == 2
        # any other refusal of the trash walk is still an error of the poll
        refusal = {"code": "rest_invalid_param", "message": "Invalid parameter(s): per_page",
                   "data": {"status": 400, "params": {"per_page": "..."}}}
        with pytest.raises(FatalAPIError, match="per_page"):
            poller.poll(engine, shop_for(woo), now=NOW)


@pytest.mark.parametrize("body", ["[]", '"x"', "null", '{"code": "rest_invalid_param", "data": []}'])
def test_a_400_whose_json_is_not_a_refused_parameter_is_not_read_as_one(body):
    """A proxy or plugin may answer 400 with any JSON: it is the shop's refusal to report, not a crash."""
    assert poller._invalid_param(FatalAPIError("refused", status=400, body=body), "status") is False
    refused = json.dumps({"code": "rest_invalid_param", "data": {"params": {"status": "no"}}})
    assert poller._invalid_param(FatalAPIError("refused", status=400, body=refused), "status") is True
