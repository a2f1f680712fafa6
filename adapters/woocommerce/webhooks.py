"""The WooCommerce webhook endpoint: answer the save-time ping, verify the signature on raw bytes, store, 200."""
from __future__ import annotations

import hashlib
import html
import logging
import re

from flask import Blueprint, current_app, jsonify, request

from adapters.webhook_http import json_error
# One writer path for every platform: on SQLite it serialises commits per process (see its docstring).
from connector.inbox import store_delivery
from connector.signatures import hmac_base64, matches

log = logging.getLogger(__name__)
blueprint = Blueprint("woocommerce_webhooks", __name__)

# The ping WooCommerce sends when a webhook is saved: a form body, no X-WC headers, no signature,
# and anything but exactly 200 shows the merchant "Delivery URL returned response code" (WH deliver_ping).
_PING = re.compile(rb"^webhook_id=\d+$")


def signature(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(raw body, secret)), as WC_Webhook::generate_signature computes it."""
    return hmac_base64(secret, body)


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True when `header` signs exactly these bytes. Constant time.

    WooCommerce HTML-decodes the stored secret before signing (wp_specialchars_decode), so a secret
    copied from the admin with `&amp;` in it is accepted in both spellings.
    """
    if not secret:
        return False
    return any([matches(signature(body, s), header) for s in dict.fromkeys((secret, html.unescape(secret)))])


def delivery_key(header_id: str | None, body: bytes) -> str:
    """The inbox dedupe key. X-WC-Webhook-Delivery-ID is wp_hash(webhook id . second), so two different
    deliveries of one webhook in the same second share it: only the same id AND the same body is a repeat."""
    return f"{header_id or '-'}:{hashlib.sha256(body).hexdigest()[:16]}"


@blueprint.post("/webhooks/woocommerce/<shop>")
def receive(shop: str):
    config = current_app.config["OB_CONFIG"]
    found = config.find_shop(shop)
    if found is None or found.platform != "woocommerce":
        return json_error(404, f"no WooCommerce shop named {shop!r} is configured")
    body = request.get_data(cache=True)
    topic = request.headers.get("X-WC-Webhook-Topic")
    if topic is None and _PING.match(body.strip()):
        return jsonify({"ok": True, "ping": True}), 200
    secret = found.webhook_secret
    if not secret:
        log.error("shop %s: webhook_secret_env is not set or its variable is empty; refusing deliveries", shop)
        return json_error(401, "this shop has no webhook secret configured; deliveries cannot be verified")
    if not verify(body, request.headers.get("X-WC-Webhook-Signature"), secret):
        return json_error(401, "X-WC-Webhook-Signature is missing or does not match the raw body "
                           "(check the webhook secret of this shop)")
    stored = store_delivery(current_app.config["OB_ENGINE"], platform="woocommerce", shop=shop, topic=topic or "",
                            headers=dict(request.headers), body=body,
                            delivery_id=delivery_key(request.headers.get("X-WC-Webhook-Delivery-ID"), body))
    return jsonify({"ok": True, "duplicate": stored is None}), 200
