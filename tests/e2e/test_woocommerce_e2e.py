"""WooCommerce end to end: real `orderbridge` processes (backend, receiver, daemon --once, backfill, push)
and a local fake WooCommerce that sends signed webhooks and serves the REST API."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_woocommerce import KEY as CK, SECRET as CS, FakeWooCommerce, fixture_orders, make_orders, sign

pytestmark = pytest.mark.e2e

API_KEY = "e2e-woo-key"
WEBHOOK_SECRET = "e2e-woo-webhook-secret"
EXE = str(Path(sys.executable).parent / "orderbridge")
RAW_76 = (Path(__file__).parents[1] / "fixtures/woocommerce/webhook_order_76_eur_created.body.raw").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The config, the environment and the processes of one test."""

    def __init__(self, d: Path, woo: FakeWooCommerce):
        self.d, self.procs = d, []
        self.backend_port, self.receiver_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.backend_port}/api/v1"
        self.hook = f"http://127.0.0.1:{self.receiver_port}/webhooks/woocommerce/main"
        self.cfg = d / "orderbridge.toml"
        self.cfg.write_text(f"""
[connector]
database = "sqlite:///{d}/connector.db"
[target]
url = "{self.api}"
api_key_env = "ORDERBRIDGE_API_KEY"
[backend]
database = "sqlite:///{d}/backend.db"
api_keys_env = "ORDERBRIDGE_API_KEY"
rate_limit = 0
[[shops]]
name = "main"
platform = "woocommerce"
url = "{woo.url}"
consumer_key_env = "WOO_CK"
consumer_secret_env = "WOO_CS"
webhook_secret_env = "WOO_WEBHOOK_SECRET"
poll_since = "20000d"
per_page = 3
product_details = false
""")
        self.env = {**os.environ, "ORDERBRIDGE_API_KEY": API_KEY, "WOO_CK": CK, "WOO_CS": CS,
                    "WOO_WEBHOOK_SECRET": WEBHOOK_SECRET}

    def serve(self, command: str, port: int) -> None:
        p = subprocess.Popen([EXE, "--config", str(self.cfg), command, "--port", str(port)], cwd=self.d, env=self.env,
                             stdout=open(self.d / f"{command}.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        for _ in range(150):
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if p.poll() is not None:
                pytest.fail(f"{command} exited; see {self.d}/{command}.log")
            time.sleep(0.1)
        pytest.fail(f"{command} did not answer /healthz")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([EXE, "--config", str(self.cfg), *args], cwd=self.d, env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def order(self, oid: str) -> dict | None:
        r = requests.get(f"{self.api}/orders/{oid}", auth=("x", API_KEY), timeout=10)
        return r.json() if r.status_code == 200 else None

    def events(self, key: str) -> list[str]:
        r = requests.get(f"{self.api}/events", params={"key": key}, auth=("x", API_KEY), timeout=10)
        return [e["type"] for e in r.json()["events"]]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # One stack for the module (process start-up is most of the time); the tests use different orders.
    with FakeWooCommerce(make_orders(4)) as woo:
        s = Stack(tmp_path_factory.mktemp("woo-e2e"), woo)
        s.woo = woo
        try:
            s.serve("backend", s.backend_port)
            s.serve("receiver", s.receiver_port)
            yield s
        finally:
            s.stop()


def test_webhooks_and_polling_reach_the_backend(stack):
    woo = stack.woo
    assert woo.send_ping(stack.hook).status_code == 200
    assert woo.send_webhook(stack.hook, "order.created", RAW_76, WEBHOOK_SECRET).status_code == 200
    assert woo.send_webhook(stack.hook, "order.created", json.dumps(json.loads(RAW_76)).encode(), WEBHOOK_SECRET,
                            signature=sign(RAW_76, WEBHOOK_SECRET)).status_code == 401   # re-serialised
    stack.cli("daemon", "--once")

    o = stack.order("76")
    assert o["status"] == "INITIALIZED" and o["currency"] == "EUR" and o["externalCustomerId"] == "1"
    assert o["email"] == "cochise.ruhulessin@unimatrixone.io" and o["additionalInfo"]["orderNumber"] == "76"
    for oid in ("1001", "1002", "1003", "1004"):          # polled from the REST API, 3 per page
        assert stack.order(oid)["status"] == "IN_PROGRESS"

    # trash in WooCommerce = order.deleted with only the id: the known order becomes CANCELLED
    assert woo.send_webhook(stack.hook, "order.deleted", {"id": 76}, WEBHOOK_SECRET, delivery_id="d-2").status_code == 200
    # an order completed in the shop whose webhook was lost: the next poll brings it
    woo.update(1003, "2026-01-01T13:00:00", status="completed")
    stack.cli("daemon", "--once")
    assert stack.order("76")["status"] == "CANCELLED" and stack.order("1003")["status"] == "DELIVERED"
    assert stack.events("76") == ["orderINITIALIZED", "orderCANCELLED"]
    assert stack.events("1001") == ["orderIN_PROGRESS"]   # polled twice (overlap), one event


def test_backfill_brings_the_history(stack):
    stack.woo.orders.update({o["id"]: o for o in fixture_orders() if o["id"] != 76})
    out = stack.cli("backfill", "main", "--quiet").stdout
    assert "enqueued" in out
    stack.cli("push")
    o = stack.order("786")
    assert o["additionalInfo"]["orderNumber"] == "56AQ" and o["status"] == "DELIVERED" and o["totalCost"] == 7.59
    assert stack.order("88")["status"] == "CANCELLED" and stack.order("12345")["currency"] == "EUR"
