"""Signed WooCommerce deliveries on an order topic that carry an error instead of the order.

WooCommerce builds an order webhook's body at delivery time by running `GET /wc/v3/orders/<id>` as the
webhook's owner (reference/woocommerce.md §1.4), and sends whatever that returns. When the owner was
deleted or may not read orders, every delivery is `{"code": "woocommerce_rest_cannot_view", ...}`
(woocommerce/woocommerce#37806); when the order was deleted between the change and the delivery, it is
`woocommerce_rest_shop_order_invalid_id`. WooCommerce counts these as delivered, so only we can say it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session

from adapters.woocommerce import inbox
from connector.errors import InvalidInput
from tests.fakes.fake_woocommerce import php_json
from tests.integration.test_woocommerce_webhooks import env, inbox_rows, outbox_rows, post  # noqa: F401 (fixture)

PAYLOADS = json.loads((Path(__file__).parents[1] / "fixtures" / "woocommerce"
                       / "webhook_order_error_payloads_wc_rest.json").read_text())


def process(engine, config):
    """Process the one stored delivery; returns its reason (None = done)."""
    [d] = inbox_rows(engine)
    with Session(engine) as s:
        d = s.merge(d)
        reason = inbox.process(s, d, config.shop(d.shop))
        s.commit()
    return reason


@pytest.mark.parametrize("case", ["owner_deleted_401", "owner_without_capability_403"])
def test_an_owner_that_cannot_read_orders_is_named_with_the_fix(env, case):  # noqa: F811
    """Before: 'not a WooCommerce order: expected a JSON object with an integer "id"', which says nothing
    of the webhook's owner; every order delivery of that webhook failed the same way."""
    client, engine, config = env
    assert post(client, php_json(PAYLOADS[case]), topic="order.updated").status_code == 200
    with pytest.raises(InvalidInput) as e:
        process(engine, config)
    message = str(e.value)
    assert "woocommerce_rest_cannot_view" in message and "owner" in message
    assert "Webhooks" in message and "administrator" in message.lower()
    assert outbox_rows(engine) == []


def test_an_order_gone_before_delivery_is_ignored_with_the_reason(env):  # noqa: F811
    client, engine, config = env
    post(client, php_json(PAYLOADS["order_gone_404"]), topic="order.updated")
    reason = process(engine, config)
    assert reason is not None and reason.startswith("ignored") and "no longer exists" in reason
    assert outbox_rows(engine) == []


def test_an_order_with_a_code_key_is_still_an_order(env):  # noqa: F811
    """Only the REST error shape (code + message + data.status, no id) is an error."""
    client, engine, config = env
    raw = (Path(__file__).parents[1] / "fixtures" / "woocommerce" / "webhook_order_76_eur_created.body.raw").read_bytes()
    order = dict(json.loads(raw), code="X1", message="gift note")
    post(client, php_json(order), topic="order.updated")
    assert process(engine, config) is None and len(outbox_rows(engine)) == 1
