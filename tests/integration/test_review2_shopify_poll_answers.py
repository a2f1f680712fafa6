"""A 200 that is not a GraphQL answer must not pass for "no orders in this window".

A maintenance or login page, a proxy's own page, or an `api_url` pointing at the wrong service answers
200 with HTML (or JSON without `data`). The client took it for an answer with no data, the poller for an
empty page with no next page, and the cursor moved past the window: every order updated in it was never
polled again, the safety net silently torn for as long as the bad answers lasted.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import responses
from sqlalchemy.orm import Session

from adapters.shopify.client import ShopifyClient
from adapters.shopify.poller import poll
from connector.config import from_dict
from connector.cursors import read as load_cursor
from connector.errors import RetriableAPIError
from tests.fakes.fake_shopify import TOKEN

URL = "https://shop-under-maintenance.myshopify.com/admin/api/2025-01/graphql.json"
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)


@pytest.fixture
def shop(monkeypatch):
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    return from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": "shop-under-maintenance.myshopify.com",
                                 "access_token_env": "SHOP_TOKEN", "poll_checkouts": False,
                                 "enrich_products": False}]}).shop("main")


@pytest.mark.parametrize("answer", [
    {"body": "<html><body><h1>Shopify is down for maintenance</h1></body></html>", "content_type": "text/html"},
    {"json": {"message": "ok"}},
], ids=["html", "json-without-data"])
def test_a_200_that_is_not_graphql_is_retried_not_taken_for_no_orders(engine, shop, answer):
    with responses.RequestsMock() as rsps:
        rsps.post(URL, status=200, **answer)
        client = ShopifyClient.for_shop(shop, max_attempts=2, sleep=lambda s: None)
        with pytest.raises(RetriableAPIError, match="not a GraphQL answer"):
            poll(engine, shop, now=NOW, client=client)
    with Session(engine) as s:
        state = load_cursor(s, "main", "orders")
    assert state is None or state.get("until")          # the window is still to be read, not passed over
