"""A real `orderbridge backend`: a customer erased while the delivered → 14 days → review request workflow
waits gets no review request, and the run says why."""
from __future__ import annotations

import base64
import json
import os
import signal
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from backend.db import make_engine
from backend.workflows.channels import ChannelSettings
from backend.workflows.runner import Runner
from tests.e2e.test_workflows_process import KEY, backend_mailing_reviews, healthy, post, wait_until

pytestmark = pytest.mark.e2e


def call(port: int, method: str, path: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_an_erased_customer_gets_no_review_request(tmp_path):
    inbox, smtp, db, port, proc = backend_mailing_reviews(tmp_path)
    try:
        wait_until(lambda: healthy(port), 30, "the backend to answer")
        post(port, [{"externalOrderId": "E-1", "externalCustomerId": "olena-1", "email": "olena@example.com",
                     "firstName": "Olena", "totalCost": 9.5, "status": "DELIVERED",
                     "date": "2025-09-01T10:00:00+00:00", "currency": "EUR"}])
        wait_until(lambda: inbox.mails, 20, "the thank-you mail from the running backend")
        assert call(port, "DELETE", "/api/v1/contact?externalCustomerId=olena-1&erase=true")["erased"] is True
        [run] = call(port, "GET", "/api/v1/workflows/1/runs")["runs"]
        assert run["state"] == "stopped" and "erased" in run["error"]
        messages = json.dumps(call(port, "GET", "/api/v1/messages"))
        assert "olena@example.com" not in messages and "Olena" not in messages
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    engine = make_engine(db)
    later = datetime.now(timezone.utc) + timedelta(days=15)
    Runner(engine, ChannelSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none"),
           clock=lambda: later).run_until_idle()
    assert len(inbox.mails) == 1                      # the thank-you only
    engine.dispose()
    smtp.stop()
