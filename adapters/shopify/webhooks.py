"""Shopify webhook receiver: verify the HMAC on the raw body, commit the delivery, answer 200.

The answer must come fast (Shopify gives up after 5 s and retries only 8 times), so nothing is
parsed or translated here: the inbox job does that later. See `connector.inbox.store_delivery`
for why the write is serialised per process on SQLite.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from adapters.webhook_http import first_header, json_error
from connector.inbox import store_delivery
from connector.signatures import hmac_base64, matches

PLATFORM = "shopify"
# The Events delivery mechanism drops the `X-` prefix (reference/shopify.md section 1.1): accept both.
HMAC_HEADERS = ("X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256")
ID_HEADERS = ("X-Shopify-Webhook-Id", "Shopify-Webhook-Id")
TOPIC_HEADERS = ("X-Shopify-Topic", "Shopify-Topic")
_KEPT_PREFIXES = ("x-shopify-", "shopify-", "content-type", "user-agent")

blueprint = Blueprint("shopify_webhooks", __name__)
log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """Shopify's signature: base64 (not hex) of HMAC-SHA256 over the raw body bytes."""
    return hmac_base64(secret, body)


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the signature of `body`; compared in constant time."""
    return matches(sign(secret, body), signature)


@blueprint.post("/webhooks/shopify/<shop>")
def receive(shop: str):
    config = current_app.config["OB_CONFIG"]
    shop_cfg = config.find_shop(shop)
    if shop_cfg is None or shop_cfg.platform != PLATFORM:
        return json_error(404, f"no Shopify shop named {shop!r} in the config")
    secret = shop_cfg.webhook_secret
    if not secret:
        # Without a secret nothing can be verified, and an unverified body is never stored. The operator
        # learns which variable to set from the log; the sender (anyone) learns nothing of the set-up.
        # Shopify retries a refused delivery 8 times over 4 hours (DESIGN.md): those made meanwhile arrive if it
        # is set within that time; the poll (with API credentials) catches up the rest.
        log.error("shop %s: no webhook secret, refusing deliveries: set the environment variable named by "
                  "webhook_secret_env (%s)", shop, shop_cfg.webhook_secret_env or "not configured")
        return json_error(401, "this shop has no webhook secret configured; deliveries cannot be verified")
    body = request.get_data(cache=False)
    if not verify(secret, body, first_header(request.headers, HMAC_HEADERS)):
        return json_error(401, "signature does not match the body (X-Shopify-Hmac-Sha256, base64 HMAC-SHA256 "
                           "of the raw body with the shop's webhook secret)")
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith(_KEPT_PREFIXES)}
    new_id = store_delivery(current_app.config["OB_ENGINE"], platform=PLATFORM, shop=shop, topic=first_header(request.headers, TOPIC_HEADERS) or "",
                            headers=headers, body=body, delivery_id=first_header(request.headers, ID_HEADERS))
    return jsonify({"ok": True, "duplicate": new_id is None}), 200
