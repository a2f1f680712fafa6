"""The webhook channel against a local receiver (signature, bounded retries) and the `workflows` CLI."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend import create_app
from backend.workflows.runner import Runner, settings_of
from backend.workflows.channels import ChannelSettings
from connector.config import from_dict
from daemon.cli import main

KEY = "wf-test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}
SECRET = "hook-secret-123"


class Receiver:
    """A local HTTP receiver that answers the statuses it is told to, in turn (after `delay` seconds)."""

    def __init__(self, statuses: list[int], delay: float = 0.0, headers: dict | None = None):
        self.statuses, self.requests = list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                time.sleep(delay)
                self.send_response(outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0])
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()

            def do_GET(self):
                outer.requests.append((dict(self.headers), b"GET"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _backend(tmp_path, receiver: Receiver, timeout: float = 5):
    app = create_app(from_dict({"backend": {"database": f"sqlite:///{tmp_path}/b.db"}}),
                     test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    client = app.test_client()
    r = client.post("/api/v1/workflows", headers=AUTH, json={
        "name": "hook", "start": {"event": "orderINITIALIZED"},
        "steps": [{"id": "o", "type": "get_order"}, {"id": "h", "type": "send_message", "channel": "webhook", "url": receiver.url,
                   "secret_env": "WF_HOOK_SECRET", "subject": "order ${eventKey}", "body": "{{ items|length }} items"}]})
    assert r.status_code == 201, r.json
    order = {"externalOrderId": "W-1", "email": "a@example.com", "totalCost": 5, "status": "INITIALIZED",
             "date": "2025-09-01T10:00:00+00:00", "currency": "USD", "items": [{"externalItemId": "x", "quantity": 1, "cost": 5}]}
    assert client.post("/api/v1/orders", headers=AUTH, json={"orders": [order]}).status_code == 200
    settings = ChannelSettings(webhook_retry_delays=(0.0, 0.0), webhook_timeout=timeout)
    return app, client, Runner(app.extensions["orderbridge.engine"], settings)


@pytest.fixture
def hook_secret(monkeypatch):
    monkeypatch.setenv("WF_HOOK_SECRET", SECRET)


def test_webhook_is_signed_and_retried_until_accepted(tmp_path, hook_secret):
    receiver = Receiver([503, 500, 200])
    app, client, runner = _backend(tmp_path, receiver)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "sent" and len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Orderbridge-Signature"], expected)
    assert headers["X-Orderbridge-Message-Id"] == str(m["id"])
    assert json.loads(body)["subject"] == "order W-1" and json.loads(body)["body"] == "1 items"
    receiver.close()


def test_webhook_retries_are_bounded_and_a_client_error_is_not_retried(tmp_path, hook_secret):
    receiver = Receiver([500])
    app, client, runner = _backend(tmp_path, receiver)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "after 3 attempts" in m["error"] and len(receiver.requests) == 3
    receiver.close()
    receiver = Receiver([400])
    app, client, runner = _backend(tmp_path / "x", receiver)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "answered 400" in m["error"] and len(receiver.requests) == 1
    receiver.close()


def test_a_redirect_is_a_failure_not_a_body_less_get(tmp_path, hook_secret):
    receiver = Receiver([301], headers={"Location": "/elsewhere"})
    app, client, runner = _backend(tmp_path, receiver)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "redirects (301) to /elsewhere" in m["error"]
    assert [body for _, body in receiver.requests] != [] and all(body != b"GET" for _, body in receiver.requests)
    assert len(receiver.requests) == 1
    receiver.close()


def test_a_late_answer_is_not_followed_by_a_second_send(tmp_path, hook_secret):
    """The receiver got the message and answered after the timeout: sending again would deliver it twice."""
    receiver = Receiver([200], delay=1.5)
    app, client, runner = _backend(tmp_path, receiver, timeout=0.5)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "not sent again" in m["error"] and len(receiver.requests) == 1
    receiver.close()


def test_webhook_without_its_secret_in_the_environment_fails_without_sending(tmp_path, monkeypatch):
    monkeypatch.delenv("WF_HOOK_SECRET", raising=False)
    receiver = Receiver([200])
    app, client, runner = _backend(tmp_path, receiver)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "WF_HOOK_SECRET is not set" in m["error"] and receiver.requests == []
    receiver.close()


# --- orderbridge workflows load / list -----------------------------------------------------------

TOML_WORKFLOW = '''
name = "Thanks"
start = { event = "orderDELIVERED" }
stop = { event = "orderCANCELLED", match = "key" }

[[steps]]
id = "mail"
type = "send_message"
channel = "store"
body = "Thanks ${firstName}"
'''


def test_cli_loads_toml_and_json_and_lists(tmp_path, capsys):
    cfg = tmp_path / "ob.toml"
    cfg.write_text(f'[backend]\ndatabase = "sqlite:///{tmp_path}/b.db"\n')
    (tmp_path / "wf.toml").write_text(TOML_WORKFLOW)
    assert main(["--config", str(cfg), "workflows", "load", str(tmp_path / "wf.toml")]) == 0
    assert "created workflow 1: Thanks" in capsys.readouterr().out
    assert main(["--config", str(cfg), "workflows", "load", str(tmp_path / "wf.toml")]) == 0
    assert "replaced workflow 1: Thanks" in capsys.readouterr().out
    bad = {"workflows": [{"name": "ok", "start": {"event": "e"}, "steps": [{"id": "a", "type": "get_order"}]},
                         {"name": "bad", "start": {"event": "e"}, "steps": [{"id": "a", "type": "timer", "weeks": 2}]}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["--config", str(cfg), "workflows", "load", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "workflow #2 ('bad') is invalid: steps[0] (id 'a').weeks: unknown field" in err
    assert main(["--config", str(cfg), "workflows", "list"]) == 0
    out = capsys.readouterr().out
    assert "Thanks" in out and "orderDELIVERED" in out and "ok" not in out.split("Thanks")[1]
