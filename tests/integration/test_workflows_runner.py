"""The workflow engine end to end: orders posted to the backend, a controllable clock, a real SMTP server
on loopback, and the runner's storage on SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import base64
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text, update

from backend import create_app
from backend.workflows import install_starters
from backend.workflows import storage as t
from backend.workflows.runner import Runner, settings_of
from connector.config import from_dict

KEY = "wf-test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps every mail it receives."""

    def __init__(self):
        self.mails: list = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(envelope)
        return "250 OK"

    def texts(self) -> list[str]:
        return [m.content.decode("utf-8", "replace") for m in self.mails]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


class Clock:
    def __init__(self):
        self.now = datetime.now(timezone.utc)    # events carry the real time they were stored at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


class Backend:
    """The backend app, a runner on a controllable clock, and small helpers to post and read."""

    def __init__(self, db_url: str, smtp: Inbox | None, starters: bool = True):
        backend = {"database": db_url}
        if smtp is not None:
            backend.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none", mail_from="shop@example.com")
        self.app = create_app(from_dict({"backend": backend}), test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
        self.engine = self.app.extensions["orderbridge.engine"]
        if starters:
            install_starters(self.engine)
        self.client = self.app.test_client()
        self.clock = Clock()
        self.runner = Runner(self.engine, settings_of(self.app), clock=self.clock)

    def post(self, *orders: dict) -> None:
        r = self.client.post("/api/v1/orders", json={"orders": list(orders)}, headers=AUTH)
        assert r.status_code == 200 and r.json["failedOrders"] == [], r.json

    def run(self) -> int:
        return self.runner.run_until_idle()

    def get(self, path: str):
        r = self.client.get(path, headers=AUTH)
        assert r.status_code == 200, r.json
        return r.json

    def messages(self) -> list[dict]:
        return self.get("/api/v1/messages?limit=1000")["messages"]

    def runs(self, wid: int) -> list[dict]:
        return self.get(f"/api/v1/workflows/{wid}/runs?limit=1000")["runs"]

    def workflow_id(self, name_start: str) -> int:
        return next(w["id"] for w in self.get("/api/v1/workflows")["workflows"] if w["name"].startswith(name_start))

    def create(self, definition: dict) -> int:
        r = self.client.post("/api/v1/workflows", json=definition, headers=AUTH)
        assert r.status_code == 201, r.json
        return r.json["id"]


def order(status="INITIALIZED", ext="W-77", **over) -> dict:
    o = {"externalOrderId": ext, "externalCustomerId": "cust-9", "email": "buyer@example.com", "firstName": "Olena",
         "totalCost": 42.5, "status": status, "date": "2025-09-01T10:00:00+03:00", "currency": "UAH",
         "items": [{"externalItemId": "SKU-1", "name": "Blue Teapot", "quantity": 1, "cost": 42.5}]}
    o.update(over)
    return o


@pytest.fixture
def be(db_url, smtp):
    b = Backend(db_url, smtp)
    yield b
    b.engine.dispose()


# --- starter workflows, from POST /api/v1/orders to a mail on the SMTP server ------------------

def test_order_confirmation_is_mailed_once_with_order_and_items(be, smtp):
    be.post(order())
    be.run()
    assert len(smtp.mails) == 1
    mail = smtp.texts()[0]
    assert smtp.mails[0].rcpt_tos == ["buyer@example.com"]
    assert "Subject: Your order W-77 is confirmed" in mail and "Blue Teapot" in mail and "Hello Olena" in mail
    [m] = be.messages()
    assert (m["channel"], m["status"], m["to"]) == ("email", "sent", "buyer@example.com")
    assert "Blue Teapot" in m["body"] and "${" not in m["body"]
    be.post(order(totalCost=43.5, items=[{"externalItemId": "SKU-1", "name": "Blue Teapot", "quantity": 1, "cost": 43.5}]))
    be.run()
    assert len(smtp.mails) == 1          # once per order key: a changed INITIALIZED order is not confirmed again


def test_delivered_thanks_then_review_request_after_14_days(be, smtp):
    be.post(order("DELIVERED"))
    be.run()
    assert [s.split("\n")[0] for s in (m["subject"] for m in be.messages())] == ["Thank you for your order W-77"]
    be.clock.advance(days=13, hours=23)
    be.run()
    assert len(smtp.mails) == 1
    be.clock.advance(hours=1, seconds=1)
    be.run()
    assert [m["subject"] for m in be.messages()][-1] == "How do you like your order W-77?"
    assert len(smtp.mails) == 2
    [run] = be.runs(be.workflow_id("Delivered"))
    assert run["state"] == "completed"
    assert [p["step"] for p in run["path"]] == ["order", "thank-you", "wait-14-days", "review-request"]
    assert all(p["state"] == "done" for p in run["path"])


def test_cancel_during_the_wait_stops_the_review_request(be, smtp):
    be.post(order("DELIVERED"))
    be.run()
    be.clock.advance(days=3)
    be.post(order("CANCELLED"))
    be.run()
    be.clock.advance(days=30)
    be.run()
    assert len(smtp.mails) == 1
    [run] = be.runs(be.workflow_id("Delivered"))
    assert run["state"] == "stopped" and "orderCANCELLED" in run["error"]
    assert run["path"][-1]["state"] == "cancelled"


def test_stop_condition_is_checked_after_the_timer_even_before_the_event_is_read(be, smtp):
    be.post(order("DELIVERED"))
    be.run()
    be.clock.advance(days=15)
    be.post(order("CANCELLED"))      # not yet read by the runner's event intake
    be.runner.run_due_steps()
    [run] = be.runs(be.workflow_id("Delivered"))
    assert run["state"] == "stopped" and len(smtp.mails) == 1
    assert run["path"][-1]["result"]["stoppedBy"]


def test_a_cancelled_order_delivered_later_starts_nothing_if_cancel_came_before_start(be, smtp):
    wid = be.create({"name": "guarded", "start": {"event": "orderDELIVERED"},
                     "stop": {"event": "orderCANCELLED", "match": "key", "before": {"days": 1}},
                     "steps": [{"id": "m", "type": "send_message", "channel": "store", "body": "x"}]})
    be.post(order("CANCELLED"))
    be.run()
    be.post(order("DELIVERED"))
    be.run()
    [run] = be.runs(wid)
    assert run["state"] == "stopped" and run["path"] == []


def test_abandoned_cart_reminder_after_one_hour_with_restore_url_and_items(be, smtp):
    be.post(order("ABANDONED_SHOPPING_CART", ext="cart-1", restoreUrl="https://shop.example.com/cart/restore/abc"))
    be.run()
    be.clock.advance(minutes=59)
    be.run()
    assert smtp.mails == []
    be.clock.advance(minutes=1)
    be.run()
    [mail] = smtp.texts()
    assert "https://shop.example.com/cart/restore/abc" in mail and "Blue Teapot" in mail


@pytest.mark.parametrize("follow_up", [
    order("INITIALIZED", ext="cart-1"),                       # the same key: the cart became an order
    order("IN_PROGRESS", ext="W-other"),                      # another order of the same contact
])
def test_abandoned_cart_is_stopped_by_any_order_event_of_the_key_or_contact(be, smtp, follow_up):
    be.post(order("ABANDONED_SHOPPING_CART", ext="cart-1", restoreUrl="https://shop.example.com/r/1"))
    be.run()
    be.clock.advance(minutes=20)
    be.post(follow_up)
    be.run()
    be.clock.advance(hours=2)
    be.run()
    assert not any("You left something" in m["subject"] for m in be.messages())
    [run] = be.runs(be.workflow_id("Abandoned"))
    assert run["state"] == "stopped"


# --- unique events, skip-if-running ------------------------------------------------------------

def _counting(mode: dict, **extra) -> dict:
    return {"name": f"count {mode}", "start": {"event": "orderINITIALIZED"}, "unique": mode, **extra,
            "steps": [{"id": "m", "type": "send_message", "channel": "store", "body": "${eventKey} ${totalCost}"}]}


@pytest.mark.parametrize("mode, expected", [
    ({"mode": "every"}, [1, 2, 3]),
    ({"mode": "once_per_key"}, [1, 1, 1]),
    ({"mode": "once_per_days", "days": 2}, [1, 1, 2]),
])
def test_unique_event_modes(db_url, mode, expected):
    b = Backend(db_url, None, starters=False)
    wid = b.create(_counting(mode))
    counts = []
    for i, wait in enumerate([0, 1, 2]):      # the same key three times, a day apart, each a new version
        b.clock.advance(days=wait)
        b.post(order(totalCost=10 + i, items=[{"externalItemId": "S", "quantity": 1, "cost": 10 + i}]))
        b.run()
        counts.append(len(b.runs(wid)))
    assert counts == expected
    b.engine.dispose()


def test_skip_if_running_for_the_same_contact(db_url):
    b = Backend(db_url, None, starters=False)
    wid = b.create({"name": "one at a time", "start": {"event": "orderINITIALIZED"}, "skipIfRunning": True,
                    "steps": [{"id": "wait", "type": "timer", "hours": 1},
                              {"id": "m", "type": "send_message", "channel": "store", "body": "${eventKey}"}]})
    b.post(order(ext="A"))
    b.post(order(ext="B"))                                     # same contact, run A in progress: skipped
    b.post(order(ext="C", externalCustomerId="other", email="other@example.com"))   # another contact: starts
    b.run()
    assert sorted(r["key"] for r in b.runs(wid)) == ["A", "C"]
    b.clock.advance(hours=2)
    b.run()
    b.post(order(ext="D"))                                     # A has completed: starts
    b.run()
    assert sorted(r["key"] for r in b.runs(wid)) == ["A", "C", "D"]
    b.engine.dispose()


# --- conditions, get_order by explicit id, errors in the launch history ---------------------------

def test_condition_branches_and_errors_show_in_the_launch_history(db_url):
    b = Backend(db_url, None, starters=False)
    wid = b.create({"name": "big orders", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "order", "type": "get_order", "by": "externalOrderId", "externalOrderId": "${eventKey}"},
        {"id": "big", "type": "condition", "all": [{"param": "totalCost", "op": "greater_than", "value": 100}],
         "yes": "vip", "no": None},
        {"id": "vip", "type": "send_message", "channel": "store", "body": "VIP ${firstName}: {{ items|length }} items"}]})
    bad = b.create({"name": "broken", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "store", "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}]})
    b.post(order(ext="small"))
    b.post(order(ext="large", totalCost=150, items=[{"externalItemId": "S", "quantity": 3, "cost": 50}]))
    b.run()
    runs = {r["key"]: r for r in b.runs(wid)}
    assert [p["step"] for p in runs["small"]["path"]] == ["order", "big"]
    assert runs["small"]["path"][1]["result"] == {"result": False}
    assert [m["body"] for m in b.messages()] == ["VIP Olena: 1 items"]     # the broken template sent nothing
    broken = b.runs(bad)
    assert {r["state"] for r in broken} == {"error"} and "sandbox" in broken[0]["error"]
    assert broken[0]["path"][0]["state"] == "failed"
    b.engine.dispose()


def test_get_order_for_an_unknown_order_is_an_error_not_a_silent_skip(db_url):
    b = Backend(db_url, None, starters=False)
    wid = b.create({"name": "x", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "o", "type": "get_order", "by": "externalOrderId", "externalOrderId": "nope-${eventKey}"}]})
    b.post(order())
    b.run()
    [run] = b.runs(wid)
    assert run["state"] == "error" and "no order with externalOrderId 'nope-W-77'" in run["error"]
    b.engine.dispose()


# --- the API ------------------------------------------------------------------------------------

def test_invalid_definitions_are_rejected_with_the_step_and_field(be):
    r = be.client.post("/api/v1/workflows", headers=AUTH, json={
        "name": "bad", "start": {"event": "orderDELIVERED"},
        "steps": [{"id": "mail", "type": "send_message", "channel": "pigeon", "body": "x"}]})
    assert r.status_code == 400
    assert r.json["error"]["errors"] == ["steps[0] (id 'mail').channel: must be one of auto, store, email, webhook, got 'pigeon'"]
    r = be.client.put("/api/v1/workflows/1", headers=AUTH, json={"name": "x", "start": {"event": "e"}, "steps": [
        {"id": "w", "type": "timer", "until_param": "not a name"}]})
    assert r.status_code == 400 and "steps[0] (id 'w').until_param" in r.json["error"]["message"]
    assert be.client.post("/api/v1/workflows", headers=AUTH, data="nope").status_code == 400
    assert be.client.get("/api/v1/workflows").status_code == 401


def test_a_workflow_read_from_the_api_can_be_sent_back_unchanged(be):
    wid = be.workflow_id("Abandoned")
    wf = be.get(f"/api/v1/workflows/{wid}")
    assert wf["stop"] == {"event": "order*", "match": "key_or_contact"}     # as its author wrote it
    r = be.client.put(f"/api/v1/workflows/{wid}", headers=AUTH, json=wf)
    assert r.status_code == 200 and r.json["version"] == 2
    r = be.client.put(f"/api/v1/workflows/{wid}", headers=AUTH, json=dict(wf, stopp={"event": "x"}))
    assert r.status_code == 400 and r.json["error"]["errors"][0].startswith("stopp: unknown field")


def test_crud_and_paging(be):
    listed = be.get("/api/v1/workflows?limit=2")
    assert len(listed["workflows"]) == 2 and listed["next"]
    rest = be.get(f"/api/v1/workflows?limit=2&cursor={listed['next']}")
    assert len(rest["workflows"]) == 1 and rest["next"] is None
    wid = be.create(_counting({"mode": "every"}))
    changed = be.client.put(f"/api/v1/workflows/{wid}", headers=AUTH, json=dict(_counting({"mode": "every"}), active=False))
    assert changed.status_code == 200 and changed.json["active"] is False and changed.json["version"] == 2
    assert be.client.delete(f"/api/v1/workflows/{wid}", headers=AUTH).status_code == 204
    assert be.client.get(f"/api/v1/workflows/{wid}", headers=AUTH).status_code == 404
    assert be.client.get("/api/v1/messages?status=bogus", headers=AUTH).status_code == 400


# --- several workers, crashes -------------------------------------------------------------------

def test_several_workers_execute_each_step_once(db_url):
    b = Backend(db_url, None, starters=False)
    b.create({"name": "two steps", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "o", "type": "get_order"}, {"id": "m", "type": "send_message", "channel": "store", "body": "${eventKey}"}]})
    b.post(*[order(ext=f"O-{i}", externalCustomerId=f"c{i}", email=f"c{i}@example.com") for i in range(120)])
    runners = [Runner(b.engine, clock=b.clock, step_batch=7, event_batch=25) for _ in range(4)]
    errors: list = []

    def work(r: Runner) -> None:
        try:
            idle = 0
            while idle < 5:                       # a worker may find nothing while another holds the work
                idle = 0 if r.tick() else idle + 1
        except Exception as e:        # surfaced below: the test must not hide a worker's failure
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    b.run()                                       # whatever the last idle worker left (none is executed twice)
    bodies = [m["body"] for m in b.messages()]
    assert sorted(bodies) == sorted(f"O-{i}" for i in range(120))
    with b.engine.connect() as conn:
        states = dict(conn.execute(select(t.runs.c.state, func.count()).group_by(t.runs.c.state)).all())
    assert states == {"completed": 120}
    b.engine.dispose()


def test_a_send_interrupted_by_a_crash_is_marked_unknown_and_never_repeated(be, smtp):
    be.post(order())
    be.runner.consume_events()
    be.runner.run_due_steps(deliver=False)      # the worker commits `sending`...
    with be.engine.begin() as conn:             # ...stamps the start of the send, and dies during it
        conn.execute(update(t.messages).values(sent_at=be.clock()))
    [m] = be.messages()
    assert m["status"] == "sending"
    restarted = Runner(be.engine, settings_of(be.app), clock=be.clock)
    restarted.run_until_idle()
    assert be.messages()[0]["status"] == "sending"     # a live worker may still be sending it
    be.clock.advance(minutes=11)
    restarted.run_until_idle()
    [m] = be.messages()
    assert m["status"] == "unknown" and "not repeated" in m["error"]
    assert smtp.mails == []


def test_a_send_a_crash_kept_from_starting_is_failed_as_not_sent(be, smtp):
    be.post(order())
    be.runner.consume_events()
    be.runner.run_due_steps(deliver=False)      # the worker commits `sending`, then dies before sending
    restarted = Runner(be.engine, settings_of(be.app), clock=be.clock)
    be.clock.advance(minutes=30)                # a live worker's batch may still be on its way to it
    restarted.run_until_idle()
    assert be.messages()[0]["status"] == "sending"
    be.clock.advance(hours=2)
    restarted.run_until_idle()
    [m] = be.messages()
    assert m["status"] == "failed" and "it was not sent" in m["error"] and smtp.mails == []


def test_a_slow_batch_is_not_taken_for_a_dead_worker(be, smtp):
    """Recovery judges a send by when it started: the later messages of a slow batch are sent, once, and
    read as sent (they used to be marked unknown by another worker, and sent anyway)."""
    other = Runner(be.engine, settings_of(be.app), clock=be.clock)
    be.post(*[order(ext=f"O{i}", externalCustomerId=f"c{i}", email=f"c{i}@example.com") for i in range(3)])
    be.runner.consume_events()
    deliver = be.runner.deliver

    def slow(d):
        deliver(d)
        be.clock.advance(minutes=11)            # each send of the batch takes long...
        other.tick()                            # ...and the other worker recovers meanwhile
    be.runner.deliver = slow
    be.runner.run_due_steps()
    assert len(smtp.mails) == 3 and {m["status"] for m in be.messages()} == {"sent"}


def test_smtp_refusal_marks_the_message_failed_and_the_run_goes_on(db_url):
    port = free_port()                   # nothing listens here
    app_cfg = {"database": db_url, "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none"}
    app = create_app(from_dict({"backend": app_cfg}), test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    install_starters(app.extensions["orderbridge.engine"])
    runner = Runner(app.extensions["orderbridge.engine"], settings_of(app), clock=Clock())
    app.test_client().post("/api/v1/orders", json={"orders": [order()]}, headers=AUTH)
    runner.run_until_idle()
    [m] = app.test_client().get("/api/v1/messages", headers=AUTH).json["messages"]
    assert m["status"] == "failed" and "ConnectionRefusedError" in m["error"]
    app.extensions["orderbridge.engine"].dispose()


def test_install_starters_is_idempotent(be):
    assert install_starters(be.engine) == 0
    assert len(be.get("/api/v1/workflows")["workflows"]) == 3
    with be.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workflow_definitions")).scalar() == 3


# --- a date no clock holds: ends its own run, never the queue -------------------------------------

FAR = "9999-12-31T23:00:00-05:00"     # legal ISO 8601, and past the last UTC instant


def test_a_timer_until_a_date_past_year_9999_ends_its_run_only(db_url):
    """It used to raise in every tick, rolling back the batch: no step of any run ran again."""
    b = Backend(db_url, None, starters=False)
    wait = b.create({"name": "wait until", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "o", "type": "get_order"}, {"id": "w", "type": "timer", "until_param": "additionalInfo.shipBy"},
        {"id": "m", "type": "send_message", "channel": "store", "body": "x"}]})
    b.create({"name": "confirm", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "store", "body": "hello ${eventKey}"}]})
    b.post(order(ext="BAD", additionalInfo={"shipBy": FAR}))
    b.post(order(ext="GOOD", externalCustomerId="c2", email="c2@example.com"))
    b.run()
    assert sorted(m["body"] for m in b.messages()) == ["hello BAD", "hello GOOD"]
    bad = {r["key"]: r for r in b.runs(wait)}["BAD"]
    assert bad["state"] == "error" and "beyond the last date a clock can hold" in bad["error"]
    b.engine.dispose()


def test_a_run_that_cannot_start_leaves_the_other_runs_their_own_first_steps(db_url):
    b = Backend(db_url, None, starters=False)
    until = b.create({"name": "until", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "w", "type": "timer", "until_param": "externalCustomerId"},
        {"id": "m", "type": "send_message", "channel": "store", "body": "until ${eventKey}"}]})
    confirm = b.create({"name": "confirm", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "m", "type": "send_message", "channel": "store", "body": "confirm ${eventKey}"}]})
    b.post(order(ext="A", externalCustomerId=FAR, email="a@example.com"),
           order(ext="B", externalCustomerId="cust-b", email="b@example.com"))
    b.run()
    assert sorted(m["body"] for m in b.messages()) == ["confirm A", "confirm B"]
    assert {r["key"]: r["state"] for r in b.runs(confirm)} == {"A": "completed", "B": "completed"}
    errors = {r["key"]: (r["state"], r["error"]) for r in b.runs(until)}
    assert errors["A"][0] == errors["B"][0] == "error"
    assert "beyond the last date" in errors["A"][1] and "not an ISO 8601 date" in errors["B"][1]
    b.engine.dispose()


def test_a_line_break_from_order_data_in_a_subject_is_written_on_one_line(db_url, smtp):
    b = Backend(db_url, smtp, starters=False)
    b.create({"name": "thanks", "start": {"event": "orderINITIALIZED"}, "steps": [
        {"id": "o", "type": "get_order"},
        {"id": "m", "type": "send_message", "channel": "email", "subject": "Thanks, ${firstName}!\n", "body": "x"}]})
    b.post(order(firstName="Olena\r\nSmith"))
    b.run()
    [m] = b.messages()
    assert m["status"] == "sent" and "Subject: Thanks, Olena Smith!" in smtp.texts()[0]
    b.engine.dispose()
