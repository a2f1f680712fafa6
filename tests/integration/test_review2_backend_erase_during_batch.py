"""An erase (or delete) that comes while a worker's batch is recording a message for the contact (PostgreSQL).

Before, the batch held the run locked while its new message (`sending`) was not yet committed: the erase's
message update could not see it, waited on the run, went on once the batch committed, and the runner then
sent that message to the erased address; it stayed `sent` with the address in `to` and `body`, and the run
read `completed`. SQLite is not affected (one writer at a time).
"""
from __future__ import annotations

import threading

from sqlalchemy import text

from backend.workflows import storage as t
from backend.workflows.channels import SENDERS
from backend.workflows.executor import execute_due
from tests.conftest import wait_until
from tests.integration.test_workflows_runner import AUTH, Backend, order


def _blocked_by(engine, pid: int) -> bool:
    """Whether some session waits on a lock that the session `pid` holds."""
    with engine.connect() as c:
        return bool(c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                              {"pid": pid}).scalar())


def _erase_during_the_batch(pg_url, monkeypatch, erase: bool):
    b = Backend(pg_url, None, starters=False)
    sent = []
    monkeypatch.setitem(SENDERS, "webhook", lambda message, step, settings: sent.append(message))
    b.create({"name": "hook", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "webhook", "url": "http://127.0.0.1:9/hook",
         "body": "hi {{ params.email }}", "to": "{{ params.email }}"}]})
    b.post(order())
    b.runner.consume_events()
    answers = []

    def delete():
        r = b.client.delete(f"/api/v1/contact?externalCustomerId=cust-9{'&erase=true' if erase else ''}", headers=AUTH)
        answers.append((r.status_code, r.json))

    with b.engine.begin() as conn:                   # the worker's batch: the message recorded, not yet committed
        executed, [d], _ = execute_due(conn, b.clock(), "w1", b.runner.settings)
        assert d.message["to"] == "buyer@example.com"
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        eraser = threading.Thread(target=delete)
        eraser.start()
        assert wait_until(lambda: _blocked_by(b.engine, pid)), "the delete did not wait for the batch"
    eraser.join(60)
    assert not eraser.is_alive() and answers and answers[0][0] == 200, answers
    b.runner.deliver(d)                              # the runner sends what its batch recorded
    return b, sent


def test_a_message_recorded_while_the_contact_is_erased_is_not_sent_and_forgets_the_address(pg_url, monkeypatch):
    b, sent = _erase_during_the_batch(pg_url, monkeypatch, erase=True)
    assert sent == []
    [m] = b.messages()
    assert m["status"] == t.MSG_FAILED and "erased" in m["error"], m
    assert m["to"] == "" and m["body"] == "", m
    [run] = b.runs(b.workflow_id("hook"))
    assert run["state"] != "completed" and run["error"], run
    assert "buyer@example.com" not in str([b.messages(), run])
    b.engine.dispose()


def test_a_message_recorded_while_the_contact_is_deleted_is_not_sent(pg_url, monkeypatch):
    b, sent = _erase_during_the_batch(pg_url, monkeypatch, erase=False)
    assert sent == []
    [m] = b.messages()
    assert m["status"] == t.MSG_FAILED and "deleted" in m["error"] and m["contactId"] is None, m
    b.engine.dispose()


def test_an_erase_and_a_runner_recording_a_failed_send_do_not_deadlock(pg_url):
    """The runner records a send's outcome message → step → run; the erase waits for its message meanwhile,
    holding the contact's runs in progress only FOR KEY SHARE, which does not keep the runner from its run."""
    from sqlalchemy import update

    from backend.workflows.runner import record_on_path
    b = Backend(pg_url, None, starters=False)
    b.create({"name": "hook", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "webhook", "url": "http://127.0.0.1:9/hook", "body": "hi",
         "next": "wait"},
        {"id": "wait", "type": "timer", "days": 1}]})        # the run stays in progress
    b.post(order())
    b.runner.consume_events()
    b.runner.run_due_steps(deliver=False)
    [m] = b.messages()
    answers = []

    def erase():
        r = b.client.delete("/api/v1/contact?externalCustomerId=cust-9&erase=true", headers=AUTH)
        answers.append((r.status_code, r.json))

    with b.engine.begin() as conn:                   # the runner's transaction after a refused send
        conn.execute(update(t.messages).where(t.messages.c.id == m["id"])
                     .values(status=t.MSG_FAILED, error="refused"))
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        eraser = threading.Thread(target=erase)
        eraser.start()
        assert wait_until(lambda: _blocked_by(b.engine, pid)), "the erase did not wait for the message"
        record_on_path(conn, m["id"], t.MSG_FAILED, "refused")
    eraser.join(60)
    assert not eraser.is_alive() and answers and answers[0][0] == 200, answers
    [m] = b.messages()
    assert m["status"] == t.MSG_FAILED and m["error"] == "refused" and m["to"] == "", m
    [run] = b.runs(b.workflow_id("hook"))
    assert run["state"] == "stopped" and "erased" in run["error"], run
    b.engine.dispose()
