"""End to end: signed Shopify webhooks → `orderbridge up` (receiver, inbox, outbox, backend) → one event per order."""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from adapters.shopify.webhooks import sign
from tests.conftest import FIXTURES
from tests.fakes.fake_shopify import FakeShopify

pytestmark = pytest.mark.e2e

SECRET = "shpss_e2e_secret"
KEY = "e2e-shopify-key"
CANCELLED = (FIXTURES / "shopify" / "webhook_orders_cancelled_refunded_hkd.json").read_bytes()
CHECKOUT = (FIXTURES / "shopify" / "webhook_checkouts_create_docs_2026-07.json").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def up(tmp_path):
    port = free_port()
    (tmp_path / "orderbridge.toml").write_text(
        '[daemon]\nflush_every = "300ms"\n\n'
        # the store FakeShopify.send_webhook names in X-Shopify-Shop-Domain: another store's deliveries are left alone
        '[[shops]]\nname = "main"\nplatform = "shopify"\ndomain = "fake.myshopify.com"\nwebhook_secret_env = "E2E_SHOPIFY_SECRET"\n')
    env = {**os.environ, "ORDERBRIDGE_API_KEY": KEY, "E2E_SHOPIFY_SECRET": SECRET}
    log = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "orderbridge.toml"), "up",
                             "--port", str(port)], cwd=tmp_path, env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 30, proc, tmp_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_for(check, seconds: float, proc=None, folder=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"orderbridge up exited: {(folder / 'up.log').read_text()[-2000:]}")
        try:
            value = check()
            if value:
                return value
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds}s")


def api(base: str, path: str):
    auth = "Basic " + base64.b64encode(f"x:{KEY}".encode()).decode()
    r = requests.get(f"{base}/api/v1{path}", headers={"Authorization": auth}, timeout=5)
    return r.json() if r.status_code == 200 else None


def events_for(base: str, key: str) -> list[dict]:
    return [e for e in (api(base, "/events?limit=1000") or {}).get("events", []) if e.get("key") == key]


def test_signed_webhooks_reach_the_backend_once_for_the_right_contact(up):
    hook = f"{up}/webhooks/shopify/main"
    assert FakeShopify.send_webhook(hook, "orders/cancelled", CANCELLED, SECRET, webhook_id="e2e-1").status_code == 200
    # the same delivery again, and a stale version of the order (an older updated_at) arriving late
    assert FakeShopify.send_webhook(hook, "orders/cancelled", CANCELLED, SECRET, webhook_id="e2e-1").status_code == 200
    stale = json.loads(CANCELLED)
    stale.update(cancelled_at=None, financial_status="paid", updated_at="2025-01-23T05:18:48-05:00")
    assert FakeShopify.send_webhook(hook, "orders/create", json.dumps(stale).encode(), SECRET, webhook_id="e2e-0").status_code == 200
    # a tampered delivery is refused
    assert FakeShopify.send_webhook(hook, "orders/cancelled", CANCELLED.replace(b"99.00", b"9.00", 1), SECRET,
                                    webhook_id="e2e-x", signature=sign(SECRET, CANCELLED)).status_code == 401
    # an abandoned checkout, sent last: once it is in, everything before it was processed
    assert FakeShopify.send_webhook(hook, "checkouts/create", CHECKOUT, SECRET, webhook_id="e2e-2", new_headers=True).status_code == 200
    wait_for(lambda: events_for(up, "checkout-981820079255243537"), 40)

    order = api(up, "/orders/6198821716268")
    order = order.get("order", order)
    assert order["status"] == "CANCELLED" and order["currency"] == "HKD" and order["totalCost"] == 99
    assert order["externalCustomerId"] == "8658316394796" and order["additionalInfo"]["orderNumber"] == "#1065"
    [event] = events_for(up, "6198821716268")
    assert event["type"] == "orderCANCELLED"
    assert event["params"]["externalCustomerId"] == "8658316394796" and event["params"]["email"] == "it@akastudio.com.hk"
    contact = api(up, f"/contacts/{event['contactId']}")
    assert contact is not None and "it@akastudio.com.hk" in json.dumps(contact)

    [cart] = events_for(up, "checkout-981820079255243537")
    assert cart["type"] == "orderABANDONED_SHOPPING_CART" and cart["contactId"] != event["contactId"]
    assert cart["params"]["externalCustomerId"] == "603851970716743426"
