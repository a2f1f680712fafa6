"""`orderbridge backend` and `orderbridge up` as real processes on free loopback ports, driven over HTTP."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method: str, url: str, key: str | None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Basic " + base64.b64encode(f"user:{key}".encode()).decode()
    req = urllib.request.Request(url, json.dumps(body).encode() if body else None, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ORDERBRIDGE_API_KEY"} | env | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_up(proc: subprocess.Popen, port: int) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("no answer on /healthz")


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM, then the process must exit on its own, with status 0."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    return out


def test_backend_process_takes_orders_over_http_and_stops_cleanly(tmp_path):
    port = free_port()
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[backend]\ndatabase = "sqlite:///{tmp_path}/backend.db"\n')
    proc = start(["--config", str(cfg), "backend", "--port", str(port), "--threads", "2"], tmp_path,
                 {"ORDERBRIDGE_API_KEY": "k1,k2"})
    try:
        wait_up(proc, port)
        base = f"http://127.0.0.1:{port}/api/v1"
        seed = json.loads((FIXTURES / "yespo/add-orders.request.docs-example.json").read_text())
        assert call("POST", base + "/orders", "k2", seed) == (200, {"failedOrders": []})
        status, body = call("GET", base + "/events?type=orderINITIALIZED", "k1")
        assert status == 200 and [e["key"] for e in body["events"]] == ["100500"]
        status, body = call("POST", base + "/orders", "wrong", seed)
        assert status == 401 and body["error"]["status"] == 401
    finally:
        if proc.poll() is None:
            stop(proc)


def test_backend_refuses_to_start_without_an_api_key(tmp_path):
    proc = start(["backend", "--port", str(free_port())], tmp_path, {})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "ORDERBRIDGE_API_KEY" in out and "Traceback" not in out


def test_up_creates_a_key_once_prints_it_and_serves_with_it(tmp_path):
    port = free_port()
    proc = start(["up", "--port", str(port)], tmp_path, {})
    try:
        wait_up(proc, port)
        key_file = tmp_path / "var" / "api_key"
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (tmp_path / "var" / "backend.db").exists()
        seed = json.loads((FIXTURES / "yespo/add-orders.request.docs-example.json").read_text())
        assert call("POST", f"http://127.0.0.1:{port}/api/v1/orders", key, seed) == (200, {"failedOrders": []})
    finally:
        out = stop(proc)
    assert key in out and f"http://127.0.0.1:{port}/api/v1" in out and "/webhooks/" in out
    # a second start reuses the stored key and the stored orders
    proc = start(["up", "--port", str(port)], tmp_path, {})
    try:
        wait_up(proc, port)
        status, body = call("GET", f"http://127.0.0.1:{port}/api/v1/orders/100500", key)
        assert status == 200 and body["externalOrderId"] == "100500"
    finally:
        stop(proc)
    assert key_file.read_text().strip() == key


def test_backend_worker_mode_runs_without_http_and_stops_on_sigterm(tmp_path):
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[backend]\ndatabase = "sqlite:///{tmp_path}/backend.db"\n')
    proc = start(["--config", str(cfg), "backend", "--worker"], tmp_path, {})
    for _ in range(100):
        if (tmp_path / "backend.db").exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    assert proc.poll() is None
    stop(proc)
