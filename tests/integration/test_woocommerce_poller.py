"""Polling and backfill against a local fake WooCommerce (real HTTP, real pagination headers, real auth rules)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlmodel import Session

from adapters.woocommerce import backfill, poller
from connector import cursors
from adapters.woocommerce.client import WooClient, check, has_credentials, products_for
from connector.config import from_dict
from connector.errors import ConfigError, FatalAPIError, RetriableAPIError
from connector.store import OutboxRow
from tests.fakes.fake_woocommerce import SECRET, FakeWooCommerce, fixture_orders, make_orders, woo_shop

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)


pytestmark = pytest.mark.usefixtures("woo_keys")


def shop_for(woo, **kw):
    return woo_shop(woo.url, **kw)


def outbox(engine):
    with Session(engine) as s:
        return [(r.external_order_id, json.loads(r.payload)) for r in s.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars()]


def cursor(engine, name):
    with Session(engine) as s:
        return cursors.read(s, "main", name)


def test_credentials_come_from_the_environment(monkeypatch):
    with FakeWooCommerce([]) as woo:
        assert has_credentials(shop_for(woo))
        monkeypatch.delenv("WOO_CS")
        assert not has_credentials(shop_for(woo))
        with pytest.raises(ConfigError, match="consumer_secret_env"):
            WooClient(shop_for(woo))
    monkeypatch.setenv("WOO_CS", SECRET)
    with pytest.raises(ConfigError, match="https://"):
        WooClient(from_dict({"shops": [{"name": "x", "platform": "woocommerce", "url": "http://shop.example.com",
                                        "consumer_key_env": "WOO_CK", "consumer_secret_env": "WOO_CS"}]}).shop("x"))


def test_check_says_how_many_orders_the_key_sees(monkeypatch):
    with FakeWooCommerce(make_orders(3)) as woo:
        assert check(shop_for(woo)) == "REST API reachable, 3 orders visible"
        monkeypatch.setenv("WOO_CK", "ck_other")
        with pytest.raises(FatalAPIError, match="refused the REST API key"):
            check(shop_for(woo))


def test_poll_walks_several_pages_and_advances_the_cursor(engine):
    with FakeWooCommerce(make_orders(7)) as woo:
        shop = shop_for(woo, per_page=3, poll_since="2d")
        assert poller.poll(engine, shop, now=NOW) == 7
        first = woo.requests[0]
        assert first["orderby"] == "modified" and first["order"] == "asc" and first["dates_are_gmt"] == "true"
        assert first["modified_after"] == "2025-12-31T00:00:00" and first["per_page"] == "3"
        assert cursor(engine, "orders") == {"modified_after": "2026-01-01T12:00:06"}
        assert [oid for oid, _ in outbox(engine)] == [str(i) for i in range(1001, 1008)]
        # the next poll starts from the cursor minus the overlap; what it sees again is a no-op
        before = len(woo.requests)
        assert poller.poll(engine, shop, now=NOW) == 0
        assert woo.requests[before]["modified_after"] == "2026-01-01T11:50:06"


def test_an_order_updated_during_the_walk_is_not_missed_and_ends_in_its_latest_version(engine):
    with FakeWooCommerce(make_orders(9)) as woo:
        # after the first page, order 1002 (already read) changes: it moves to the end of the list,
        # which would push an unread order back onto page 1 in a plain page walk
        woo.after_page[1] = lambda w: w.update(1002, "2026-01-01T12:30:00", status="completed")
        shop = shop_for(woo, per_page=3, poll_since="2d")
        assert poller.poll(engine, shop, now=NOW) == 10
    rows = outbox(engine)
    assert sorted({oid for oid, _ in rows}) == [str(i) for i in range(1001, 1010)]
    assert [w["status"] for oid, w in rows if oid == "1002"] == ["IN_PROGRESS", "DELIVERED"]
    assert cursor(engine, "orders") == {"modified_after": "2026-01-01T12:30:00"}


def test_a_store_without_orderby_modified_is_polled_by_id_and_the_cursor_moves_at_the_end(engine):
    with FakeWooCommerce(make_orders(7), orderby_modified=False) as woo:
        # order 1001 (page 1, read) changes while page 2 is read: this walk does not see it again, but
        # its new modification is later than the cursor, so the next poll does
        woo.after_page[3] = lambda w: w.update(1001, "2026-01-01T12:30:00", status="completed")
        shop = shop_for(woo, per_page=3, poll_since="2d")
        assert poller.poll(engine, shop, now=NOW) == 7
        # (then one request for trashed orders, by id at once: see test_review2_woo_poll_trash.py)
        assert [r["orderby"] for r in woo.requests if "status" not in r] == ["modified", "id", "id", "id"]
        assert cursor(engine, "orders") == {"modified_after": "2026-01-01T12:00:06"}
        assert poller.poll(engine, shop, now=NOW) == 1
    assert cursor(engine, "orders") == {"modified_after": "2026-01-01T12:30:00"}
    assert [w["status"] for oid, w in outbox(engine) if oid == "1001"] == ["IN_PROGRESS", "DELIVERED"]


def test_without_pagination_headers_full_pages_mean_more(engine):
    with FakeWooCommerce(make_orders(6), pagination_headers=False) as woo:
        assert poller.poll(engine, shop_for(woo, per_page=3, poll_since="2d"), now=NOW) == 6
        assert backfill.run(engine, shop_for(woo, per_page=3), progress=False) == 0
        # each read starts at the last order of the one before; a short read is the end
        assert [r.get("offset") for r in woo.requests][-3:] == ["0", "2", "4"]


def test_poll_of_the_fixture_orders(engine):
    with FakeWooCommerce() as woo:
        shop = shop_for(woo, poll_since="20000d")
        n = poller.poll(engine, shop, now=NOW)
    ids = {oid for oid, _ in outbox(engine)}
    assert n == len(fixture_orders()) == len(ids) and {"727", "723", "786", "12345", "76"} <= ids


def test_401_says_what_to_check_and_never_shows_the_secret(engine, monkeypatch):
    monkeypatch.setenv("WOO_CS", "cs_wrong_secret")
    with FakeWooCommerce(make_orders(1)) as woo:
        with pytest.raises(FatalAPIError) as e:
            poller.poll(engine, shop_for(woo), now=NOW)
    assert e.value.status == 401 and "woocommerce_rest_authentication_error" in str(e.value)
    # WooCommerce read the key and says what is wrong with it: that is quoted, and the env variables named
    # (not query_string_auth, which is for a key WooCommerce never saw)
    assert "Consumer key is invalid." in str(e.value) and "consumer_secret_env" in str(e.value)
    assert "cs_wrong_secret" not in str(e.value)
    assert cursor(engine, "orders") is None


def test_a_site_without_pretty_permalinks_is_named_and_rest_route_works(engine):
    with FakeWooCommerce(make_orders(2), pretty_permalinks=False) as woo:
        with pytest.raises(FatalAPIError, match="rest_route = true"):
            poller.poll(engine, shop_for(woo), now=NOW)
        assert poller.poll(engine, shop_for(woo, rest_route=True, poll_since="2d"), now=NOW) == 2


def test_query_string_auth_for_hosts_that_strip_authorization(engine):
    with FakeWooCommerce(make_orders(2)) as woo:
        assert poller.poll(engine, shop_for(woo, query_string_auth=True, poll_since="2d"), now=NOW) == 2


def test_429_and_5xx_are_retried_a_bounded_number_of_times(engine):
    with FakeWooCommerce(make_orders(2)) as woo:
        woo.fail_next(429, headers={"Retry-After": "0"})
        woo.fail_next(503)
        assert poller.poll(engine, shop_for(woo, poll_since="2d"), now=NOW) == 2
        woo.fail_next(500, times=3)
        with pytest.raises(RetriableAPIError, match="500"):
            poller.poll(engine, shop_for(woo, retry_attempts=3, poll_since="2d"), now=NOW)


def test_backfill_interrupted_then_resumed_reads_each_page_once(engine):
    with FakeWooCommerce(make_orders(10)) as woo:
        shop = shop_for(woo, per_page=4, retry_attempts=1)
        woo.after_page[2] = lambda w: w.fail_next(500)     # the third request fails
        with pytest.raises(RetriableAPIError):
            backfill.run(engine, shop, progress=False)
        assert len(outbox(engine)) == 7
        assert cursor(engine, "backfill") == {"offset": 6, "last_id": 1007, "since": None}
        assert backfill.run(engine, shop, progress=False) == 3
        offsets = [r["offset"] for r in woo.requests if r["route"] == "orders"]
        assert offsets == ["0", "3", "6", "6", "9"] and all(r["orderby"] == "id" for r in woo.requests)
    assert [oid for oid, _ in outbox(engine)] == [str(i) for i in range(1001, 1011)]
    assert cursor(engine, "backfill") is None


def test_backfill_misses_no_order_when_orders_already_read_are_deleted_meanwhile(engine):
    """Orders trashed during a long backfill move the rest of the list up: read page by page, the orders
    that moved onto a page already read were skipped for good (1005 and 1006 here)."""
    with FakeWooCommerce(make_orders(10)) as woo:
        def trash(w):
            w.orders.pop(1002)
            w.orders.pop(1003)
        woo.after_page[1] = trash                            # after the first read (1001-1004)
        assert backfill.run(engine, shop_for(woo, per_page=4), progress=False) == 10
        offsets = [r["offset"] for r in woo.requests]
    assert offsets == ["0", "3", "0", "3", "6"]         # the shift seen, a page read again, then on
    assert [oid for oid, _ in outbox(engine)] == [str(i) for i in range(1001, 1011)]     # each once


def test_backfill_since_and_a_rerun_that_changes_nothing(engine):
    with FakeWooCommerce(make_orders(5)) as woo:
        shop = shop_for(woo)
        assert backfill.run(engine, shop, since="2026-01-01T12:00:03+00:00", progress=False) == 2
        assert woo.requests[0]["modified_after"] == "2026-01-01T12:00:02"
        assert backfill.run(engine, shop, progress=False) == 3
        assert backfill.run(engine, shop, progress=False) == 0
        with pytest.raises(ConfigError, match="--since"):
            backfill.run(engine, shop, since="last tuesday", progress=False)


def test_product_details_are_fetched_once_and_cached():
    products = {93: {"id": 93, "permalink": "https://shop/p/single", "categories": [{"name": "Music &amp; Albums"}]}}
    with FakeWooCommerce([], products=products) as woo:
        shop = shop_for(woo, name="cache-test", product_details=True)
        orders = make_orders(3)
        first = products_for(shop, orders)
        again = products_for(shop, orders[:1])
        assert first == again and first[93].category == "Music & Albums" and first[22].url is None
        assert [r["include"] for r in woo.requests if r["route"] == "products"] == ["22,93"]


def test_a_failing_product_lookup_leaves_items_plain_and_pauses_lookups():
    with FakeWooCommerce([]) as woo:
        shop = shop_for(woo, name="flaky", product_details=True)
        woo.fail_next(500, times=2)
        assert products_for(shop, make_orders(1)) == {}           # two attempts, both 500
        assert products_for(shop, make_orders(1)) == {}           # paused: no request at all
        assert len([r for r in woo.requests if r["route"] == "products"]) == 2


def test_polled_items_carry_product_url_and_category(engine):
    products = {93: {"id": 93, "permalink": "https://shop/p/single", "categories": [{"name": "Singles"}]}}
    with FakeWooCommerce(make_orders(2), products=products) as woo:
        poller.poll(engine, shop_for(woo, name="enriched", product_details=True, poll_since="2d"), now=NOW)
    item = outbox(engine)[0][1]["items"][0]
    assert item["url"] == "https://shop/p/single" and item["category"] == "Singles"


def test_backfill_stops_with_a_reason_when_the_server_ignores_offset(engine, monkeypatch):
    """A proxy or plugin that drops `offset` would serve the first orders again and again: the walk must not
    loop forever."""
    with FakeWooCommerce(make_orders(10)) as woo:
        original = woo._orders
        monkeypatch.setattr(woo, "_orders", lambda args: original({k: v for k, v in args.items() if k != "offset"}))
        with pytest.raises(ConfigError, match="seems to ignore `offset`"):
            backfill.run(engine, shop_for(woo, per_page=4), progress=False)
    assert len(outbox(engine)) == 4         # the first read's orders, enqueued
