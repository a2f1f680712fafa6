"""A message that did not go out shows in the launch history: on its step and on its run.

Before, a run whose every mail the SMTP server refused read `completed`, each step `done`, and the send step's
result kept saying `sending`: only the Messages list told, and the workflow's "with errors" tab stayed empty.
"""
from __future__ import annotations

import dataclasses

from sqlalchemy import update

from backend import create_app
from backend.workflows import install_starters
from backend.workflows import storage as t
from backend.workflows.runner import Runner, settings_of
from connector.config import from_dict
from tests.integration.test_workflows_runner import AUTH, KEY, Backend, Clock, free_port, order, smtp  # noqa: F401


def refused(db_url):
    """A backend whose SMTP server is down (nothing listens on the port), with the starters."""
    cfg = {"database": db_url, "smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_tls": "none"}
    app = create_app(from_dict({"backend": cfg}), test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    engine = app.extensions["orderbridge.engine"]
    install_starters(engine)
    clock = Clock()
    quick = dataclasses.replace(settings_of(app), email_retry_delays=(0, 0))   # refused three times, at once
    return app, engine, clock, Runner(engine, quick, clock=clock)


def runs_of(client, name: str) -> list[dict]:
    wid = next(w["id"] for w in client.get("/api/v1/workflows", headers=AUTH).json["workflows"]
               if w["name"].startswith(name))
    return client.get(f"/api/v1/workflows/{wid}/runs", headers=AUTH).json["runs"]


def test_a_refused_mail_puts_its_run_with_the_errors_and_fails_its_step(db_url):
    app, engine, _, runner = refused(db_url)
    client = app.test_client()
    client.post("/api/v1/orders", json={"orders": [order()]}, headers=AUTH)
    runner.run_until_idle()
    [m] = client.get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed"
    [run] = runs_of(client, "Order confirmation")
    assert run["state"] == "error" and f"message #{m['id']} failed: email channel: ConnectionRefusedError" in run["error"]
    send = run["path"][-1]
    assert send["state"] == "failed" and send["result"]["status"] == "failed"
    assert "ConnectionRefusedError" in send["result"]["error"]
    engine.dispose()


def test_a_run_whose_first_mail_failed_goes_on_and_ends_with_the_errors(db_url):
    app, engine, clock, runner = refused(db_url)
    client = app.test_client()
    client.post("/api/v1/orders", json={"orders": [order("DELIVERED")]}, headers=AUTH)
    runner.run_until_idle()
    [run] = runs_of(client, "Delivered")
    assert run["state"] == "in_progress" and "failed: email channel" in run["error"]      # waiting, and saying so
    assert [p["state"] for p in run["path"]] == ["done", "failed", "pending"]
    clock.advance(days=15)
    runner.run_until_idle()
    [run] = runs_of(client, "Delivered")
    assert run["state"] == "error" and [p["state"] for p in run["path"]] == ["done", "failed", "done", "failed"]
    engine.dispose()


def test_a_sent_message_reads_sent_on_its_step(db_url, smtp):
    b = Backend(db_url, smtp)
    b.post(order())
    b.run()
    [run] = b.runs(b.workflow_id("Order confirmation"))
    assert run["state"] == "completed" and run["error"] is None
    assert run["path"][-1]["state"] == "done" and run["path"][-1]["result"]["status"] == "sent"
    b.engine.dispose()


def test_an_email_without_a_recipient_fails_its_step_and_run(db_url, smtp):
    b = Backend(db_url, smtp, starters=False)
    wid = b.create({"name": "to phone", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "email", "to": "${EmailAddress}", "body": "hi"}]})
    b.post(order(email=None, phone="380501234567"))
    b.run()
    [run] = b.runs(wid)
    assert run["state"] == "error" and "no recipient" in run["error"]
    assert run["path"][0]["state"] == "failed" and b.messages()[0]["status"] == "failed"
    b.engine.dispose()


def test_a_send_a_dead_worker_left_unknown_shows_on_its_run(db_url, smtp):
    b = Backend(db_url, smtp)
    b.post(order())
    b.runner.consume_events()
    b.runner.run_due_steps(deliver=False)        # `sending` committed, the send started, the worker died
    with b.engine.begin() as conn:
        conn.execute(update(t.messages).values(sent_at=b.clock()))
    b.clock.advance(minutes=11)
    Runner(b.engine, settings_of(b.app), clock=b.clock).run_until_idle()
    [run] = b.runs(b.workflow_id("Order confirmation"))
    assert run["state"] == "error" and "may or may not have been sent" in run["error"]
    assert run["path"][-1]["result"]["status"] == "unknown" and smtp.mails == []
    b.engine.dispose()
