"""CSV import end to end: real `orderbridge import-csv` and `push` processes into a real bundled backend."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e

API_KEY = "e2e-csv-key"
EXE = str(Path(sys.executable).parent / "orderbridge")
FIXTURES = Path(__file__).parents[1] / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stack(tmp_path):
    port = free_port()
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f"""
[connector]
database = "sqlite:///{tmp_path}/connector.db"
[target]
url = "http://127.0.0.1:{port}/api/v1"
api_key_env = "ORDERBRIDGE_API_KEY"
[backend]
database = "sqlite:///{tmp_path}/backend.db"
api_keys_env = "ORDERBRIDGE_API_KEY"
rate_limit = 0
[[shops]]
name = "legacy"
platform = "csv"
""")
    env = {**os.environ, "ORDERBRIDGE_API_KEY": API_KEY}
    log = open(tmp_path / "backend.log", "ab")
    backend = subprocess.Popen([EXE, "--config", str(cfg), "backend", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api/v1"
    for _ in range(200):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if backend.poll() is not None:
            pytest.fail(f"the backend exited; see {tmp_path}/backend.log")
        time.sleep(0.1)
    else:
        pytest.fail("the backend did not answer /healthz")

    def cli(*args):
        return subprocess.run([EXE, "--config", str(cfg), *map(str, args)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    def get(path):
        r = requests.get(api + path, auth=("csv", API_KEY), timeout=10)
        r.raise_for_status()
        return r.json()

    try:
        yield cli, get, tmp_path
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        try:
            backend.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(backend.pid, signal.SIGKILL)
        log.close()


def test_shopify_export_reaches_the_backend_once(stack):
    cli, get, d = stack
    f = d / "orders_export.csv"
    f.write_bytes((FIXTURES / "csv" / "shopify_orders_export_2026.csv").read_bytes())
    r = cli("import-csv", f, "--shop", "legacy", "--preset", "shopify")
    assert r.returncode == 0, r.stderr
    assert "enqueued:  5 orders" in r.stdout
    r = cli("push", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(get("/orders?limit=1000")["orders"]) == 5
    o = get("/orders/16718821261681")
    o = o.get("order", o)
    assert (o["status"], o["currency"], o["totalCost"], o["phone"]) == ("INITIALIZED", "BDT", 1700, "8801700000005")
    assert o["additionalInfo"]["orderNumber"] == "#71737" and len(o["items"]) == 2
    assert sum(i["cost"] * i["quantity"] for i in o["items"]) + o["shipping"] == o["totalCost"]
    events = len(get("/events?limit=1000")["events"])
    assert events >= 5

    r = cli("import-csv", f, "--shop", "legacy", "--preset", "shopify")      # a re-import is a no-op
    assert r.returncode == 0 and "enqueued:  0 orders" in r.stdout and "unchanged: 5 orders" in r.stdout
    cli("push", "-q")
    assert len(get("/events?limit=1000")["events"]) == events


def test_only_good_orders_of_a_broken_file_arrive(stack):
    cli, get, d = stack
    f = d / "broken.csv"
    f.write_bytes((FIXTURES / "csv_extra" / "shopify_broken.csv").read_bytes())
    r = cli("import-csv", f, "--shop", "legacy", "--preset", "shopify")
    assert r.returncode == 1 and "line 12, Created at" in r.stderr
    assert (d / "broken.rejected.csv").exists()
    assert cli("push", "-q").returncode == 0
    assert sorted(o["externalOrderId"] for o in get("/orders?limit=1000")["orders"]) == ["101", "113"]
