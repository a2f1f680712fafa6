"""The Shopify export's status columns → add-orders status (DESIGN.md section 3), and status_map."""
from __future__ import annotations

import pytest

from adapters.csv.presets.shopify import shopify_status, status_rules
from connector.errors import ConfigError


@pytest.mark.parametrize("financial, fulfilment, cancelled, want", [
    ("paid", "fulfilled", True, "CANCELLED"),            # Cancelled at wins over everything
    ("voided", "unfulfilled", False, "CANCELLED"),
    ("refunded", "fulfilled", False, "CANCELLED"),
    ("paid", "fulfilled", False, "DELIVERED"),
    ("pending", "fulfilled", False, "DELIVERED"),
    ("paid", "unfulfilled", False, "IN_PROGRESS"),
    ("authorized", "", False, "IN_PROGRESS"),
    ("partially_paid", "unfulfilled", False, "IN_PROGRESS"),
    ("partially_refunded", "unfulfilled", False, "IN_PROGRESS"),
    ("pending", "partial", False, "IN_PROGRESS"),
    ("pending", "unfulfilled", False, "INITIALIZED"),
    ("expired", "unfulfilled", False, "INITIALIZED"),     # not in DESIGN's CANCELLED row: everything else
])
def test_default_rules(financial, fulfilment, cancelled, want):
    assert shopify_status(financial, fulfilment, cancelled) == want


def test_status_map_overrides_in_place_and_adds_tokens():
    rules, fallback = status_rules({"paid": "DELIVERED", "expired": "CANCELLED", "default": "IN_PROGRESS"})
    assert shopify_status("paid", "unfulfilled", False, rules, fallback) == "DELIVERED"
    assert shopify_status("expired", "unfulfilled", False, rules, fallback) == "CANCELLED"
    assert shopify_status("pending", "unfulfilled", False, rules, fallback) == "IN_PROGRESS"
    with pytest.raises(ConfigError, match="expected one of"):
        status_rules({"paid": "SHIPPED"})
