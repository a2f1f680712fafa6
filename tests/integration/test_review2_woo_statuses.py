"""WooCommerce 11.3 added a core order status, `ready-for-pickup` (local pickup: paid, packed, waiting for
the buyer; reference/woocommerce.md §3.1). Unknown statuses default to INITIALIZED, which says "not paid
yet": a paid pickup order must not look like an unpaid one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.woocommerce.translate import options_of, translate
from connector.config import from_dict

ORDER = json.loads((Path(__file__).parents[1] / "fixtures" / "woocommerce"
                    / "rest_v3_order_727_guest_processing_docs.json").read_text())


def shop(**kw):
    return from_dict({"shops": [{"name": "w", "platform": "woocommerce", **kw}]}).shop("w")


@pytest.mark.parametrize("status", ["ready-for-pickup", "wc-ready-for-pickup"])
def test_ready_for_pickup_is_in_progress(status):
    t = translate(dict(ORDER, status=status), options_of(shop()))
    assert t.error is None and t.wire["status"] == "IN_PROGRESS" and t.wire["statusDescription"] == status


def test_the_shop_can_still_map_it_otherwise():
    t = translate(dict(ORDER, status="ready-for-pickup"), options_of(shop(status_map={"ready-for-pickup": "DELIVERED"})))
    assert t.wire["status"] == "DELIVERED"


def test_a_plugin_status_still_defaults_to_initialized():
    t = translate(dict(ORDER, status="awaiting-shipment"), options_of(shop()))
    assert t.wire["status"] == "INITIALIZED"


# ---- restoreUrl of an abandoned cart ---------------------------------------------------------------

CART = json.loads((Path(__file__).parents[1] / "fixtures" / "woocommerce"
                   / "webhook_order_15_usd_completed_wc8.0_pipedream.json").read_text())


def test_a_checkout_draft_gets_no_restore_url_that_woocommerce_would_refuse():
    """payment_url is the order-pay page, which serves only orders that need payment (pending, failed by
    default: WC_Order::needs_payment); for a checkout-draft it answers "This order's status is "Draft"—it
    cannot be paid for". Before, that page was sent as the cart's restoreUrl, to be mailed to the buyer."""
    t = translate(dict(CART, status="checkout-draft"), options_of(shop(abandoned_carts=True)))
    assert t.wire["status"] == "ABANDONED_SHOPPING_CART" and "restoreUrl" not in t.wire


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_an_unpaid_order_mapped_to_a_cart_keeps_its_payment_page(status):
    t = translate(dict(CART, status=status), options_of(shop(status_map={status: "ABANDONED_SHOPPING_CART"})))
    assert t.wire["status"] == "ABANDONED_SHOPPING_CART" and t.wire["restoreUrl"] == CART["payment_url"]
