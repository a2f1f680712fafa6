"""A real `orderbridge backend` process runs a starter workflow, is killed mid-run, and the run resumes
in another worker without a second message."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from backend.db import make_engine
from backend.workflows.channels import ChannelSettings
from backend.workflows.runner import Runner
from backend.workflows.starters import STARTERS

pytestmark = pytest.mark.e2e
KEY = "wf-e2e-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def wait_until(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cli(cfg: Path, *args: str, **kw):
    env = dict(os.environ, ORDERBRIDGE_API_KEY=KEY)
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(cfg), *args], env=env,
                            cwd=cfg.parent, start_new_session=True, **kw)


def post(port: int, orders: list) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/orders", data=json.dumps({"orders": orders}).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["failedOrders"] == []


def healthy(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        return True
    except OSError:
        return False


def backend_mailing_reviews(tmp_path):
    """A mail catcher, and a real `orderbridge backend` process that mails through it, with the starter
    workflow delivered → thank you → 14 days → review request: (inbox, smtp, database URL, port, process)."""
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    db = f"sqlite:///{tmp_path}/backend.db"
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[backend]\ndatabase = "{db}"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\n'
                   f'smtp_tls = "none"\nmail_from = "shop@example.com"\n')
    assert cli(cfg, "workflows", "load", str(STARTERS / "02-delivered-thanks-review.json"),
               stdout=subprocess.DEVNULL).wait(30) == 0
    port = free_port()
    proc = cli(cfg, "backend", "--port", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return inbox, smtp, db, port, proc


def test_killed_backend_resumes_the_run_without_a_second_message(tmp_path):
    inbox, smtp, db, port, proc = backend_mailing_reviews(tmp_path)
    try:
        wait_until(lambda: healthy(port), 30, "the backend to answer")
        post(port, [{"externalOrderId": "E-1", "email": "buyer@example.com", "firstName": "Olena", "totalCost": 9.5,
                     "status": "DELIVERED", "date": "2025-09-01T10:00:00+00:00", "currency": "EUR",
                     "items": [{"externalItemId": "S", "name": "Green Mug", "quantity": 1, "cost": 9.5}]}])
        wait_until(lambda: inbox.mails, 20, "the thank-you mail from the running backend")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)       # killed while the run waits on its 14-day timer
        proc.wait(10)
    engine = make_engine(db)
    later = datetime.now(timezone.utc) + timedelta(days=14, minutes=1)
    settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none")
    Runner(engine, settings, clock=lambda: later).run_until_idle()
    subjects = [line for m in inbox.mails for line in m.splitlines() if line.startswith("Subject:")]
    assert subjects == ["Subject: Thank you for your order E-1", "Subject: How do you like your order E-1?"]
    assert "Green Mug" in inbox.mails[1]
    engine.dispose()
    smtp.stop()


def test_a_worker_killed_at_any_moment_loses_no_run_and_repeats_no_message(tmp_path):
    from sqlalchemy import func, select

    from backend import create_app
    from backend.workflows import storage as t
    from connector.config import from_dict

    db = f"sqlite:///{tmp_path}/backend.db"
    app = create_app(from_dict({"backend": {"database": db}}), test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    client, auth = app.test_client(), {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}
    assert client.post("/api/v1/workflows", headers=auth, json={
        "name": "two messages", "start": {"event": "orderINITIALIZED"}, "steps": [
            {"id": "o", "type": "get_order"},
            {"id": "a", "type": "send_message", "channel": "store", "body": "first ${eventKey}"},
            {"id": "b", "type": "send_message", "channel": "store", "body": "second ${eventKey}"}]}).status_code == 201
    n = 3000
    orders = [{"externalOrderId": f"K-{i}", "email": f"k{i}@example.com", "totalCost": 1, "status": "INITIALIZED",
               "date": "2025-09-01T10:00:00+00:00", "currency": "USD", "items": [{"externalItemId": "s", "quantity": 1, "cost": 1}]}
              for i in range(n)]
    for i in range(0, n, 1000):
        assert client.post("/api/v1/orders", headers=auth, json={"orders": orders[i:i + 1000]}).status_code == 200
    engine = app.extensions["orderbridge.engine"]

    def messages() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t.messages)).scalar_one()

    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[backend]\ndatabase = "{db}"\n')
    proc = cli(cfg, "backend", "--worker", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: messages() > 0, 30, "the worker process to start sending")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)      # wherever it is: mid-batch, between batches
        proc.wait(10)
    assert messages() < 2 * n, "the worker finished before it was killed: the test proves nothing"
    Runner(engine).run_until_idle(max_rounds=10_000)
    with engine.connect() as conn:
        bodies = [r[0] for r in conn.execute(select(t.messages.c.body))]
        states = dict(conn.execute(select(t.runs.c.state, func.count()).group_by(t.runs.c.state)).all())
    assert sorted(bodies) == sorted([f"first K-{i}" for i in range(n)] + [f"second K-{i}" for i in range(n)])
    assert states == {"completed": n}
    engine.dispose()
