"""A deleted or erased contact gets no follow-up: DELETE /api/v1/contact ends what the workflows had planned for it.

Before, the delivered → 14 days → review request starter mailed the review request to the address of a
contact erased meanwhile (the run kept its own copy of the event's params and of the order), and the
runs and messages went on showing that address and name after the erase.
"""
from __future__ import annotations

import json

from tests.integration.test_workflows_runner import AUTH, Backend, order


def delete(b: Backend, ext: str, erase: bool) -> dict:
    r = b.client.delete(f"/api/v1/contact?externalCustomerId={ext}{'&erase=true' if erase else ''}", headers=AUTH)
    assert r.status_code == 200, r.json
    return r.json


def test_an_erased_contact_gets_no_review_request_and_its_runs_and_messages_forget_it(db_url):
    b = Backend(db_url, None)
    b.post(order("DELIVERED", lastName="Kovalenko", deliveryAddress="1 Secret Lane"))
    b.run()
    [thanks] = b.messages()
    assert thanks["to"] == "buyer@example.com" and "Olena" in thanks["body"]
    delete(b, "cust-9", erase=True)
    b.clock.advance(days=15)
    b.run()
    assert [m["subject"] for m in b.messages()] == [""]          # the thank-you, blanked; no review request
    [run] = b.runs(b.workflow_id("Delivered"))
    assert run["state"] == "stopped" and "erased" in run["error"]
    assert run["path"][-1]["step"] == "wait-14-days" and run["path"][-1]["state"] == "cancelled"
    seen = json.dumps([b.messages(), b.runs(b.workflow_id("Delivered"))])
    with b.engine.connect() as conn:
        seen += json.dumps([r[0] for r in conn.exec_driver_sql("SELECT context FROM workflow_runs")])
    for secret in ("buyer@example.com", "Olena", "Kovalenko", "Secret Lane", "cust-9"):
        assert secret not in seen, secret
    b.engine.dispose()


def test_a_deleted_contact_gets_no_abandoned_cart_reminder(db_url):
    b = Backend(db_url, None)
    b.post(order("ABANDONED_SHOPPING_CART", ext="cart-1", restoreUrl="https://shop.example.com/cart/abc"))
    b.run()
    delete(b, "cust-9", erase=False)
    b.clock.advance(hours=2)
    b.run()
    assert b.messages() == []
    [run] = b.runs(b.workflow_id("Abandoned"))
    assert run["state"] == "stopped" and "deleted" in run["error"]
    b.engine.dispose()


def test_a_message_recorded_but_not_yet_sent_is_not_sent_after_the_erase(db_url):
    """The runner records a message (`sending`) and sends it after its transaction: an erase in between
    fails it, and the runner, which sends only what is still `sending`, skips it."""
    b = Backend(db_url, None, starters=False)
    sent = []
    b.create({"name": "hook", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "webhook", "url": "http://127.0.0.1:9/hook", "body": "hi"}]})
    b.post(order())
    b.runner.consume_events()
    real_deliver = b.runner.deliver
    b.runner.deliver = lambda d: sent.append(d)         # keep the deliveries: the erase comes first
    b.runner.run_due_steps()
    assert len(sent) == 1
    delete(b, "cust-9", erase=True)
    b.runner.deliver = real_deliver
    b.runner.deliver(sent[0])
    [m] = b.messages()
    assert m["status"] == "failed" and "erased" in m["error"] and m["to"] == ""
    b.engine.dispose()


def test_other_contacts_runs_go_on(db_url):
    b = Backend(db_url, None)
    b.post(order("DELIVERED"), order("DELIVERED", ext="W-78", externalCustomerId="other", email="other@example.com"))
    b.run()
    delete(b, "cust-9", erase=True)
    b.clock.advance(days=15)
    b.run()
    reviews = [m for m in b.messages() if m["subject"].startswith("How do you like")]
    assert [m["to"] for m in reviews] == ["other@example.com"]
    b.engine.dispose()


def test_an_event_read_after_its_contact_was_deleted_starts_nothing(db_url):
    """The runner may read an order's event late (it was stopped, or behind): a contact deleted meanwhile
    gets no confirmation, though the event's params still hold its address (a delete keeps the history)."""
    b = Backend(db_url, None)
    b.post(order())
    delete(b, "cust-9", erase=False)
    b.run()
    assert b.messages() == [] and b.runs(b.workflow_id("Order confirmation")) == []
    b.post(order(ext="W-78"))                        # the same person, back: a new contact, served as usual
    b.run()
    assert [m["subject"] for m in b.messages()] == ["Your order W-78 is confirmed"]
    b.engine.dispose()
