"""Webhook signatures: base64 HMAC-SHA256 of the raw body, as Shopify and WooCommerce compute them."""
from __future__ import annotations

import base64
import hashlib
import hmac


def hmac_base64(secret: str, body: bytes) -> str:
    """base64 (not hex) of HMAC-SHA256 over the exact bytes received; never a re-serialised body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a computed signature with the one a request carried."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())
