"""The workflow runner: a loop that reads new events, executes due steps and sends recorded messages.

It keeps no state in memory: the database is the queue. Several runners may work side by side on
PostgreSQL. `clock` is passed in so tests move time forward without sleeping.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from backend.db import write_transaction
from connector.errors import ConfigError
from backend.workflows import intake
from backend.workflows import storage as t
from backend.workflows.channels import SENDERS, ChannelSettings, SendFailed
from backend.workflows.executor import Delivery, execute_due, has_due_steps
from backend.workflows.model import utc

log = logging.getLogger(__name__)

IDLE_WAIT = 0.25               # seconds between rounds when there is nothing to do (≤ 0.5 s: acceptance)
RECOVERY_EVERY = timedelta(seconds=30)
SEND_TIMEOUT = timedelta(minutes=10)   # longer than any one send can take (SMTP timeout, webhook retries)
NEVER_STARTED = timedelta(hours=2)     # longer than a worker's whole batch of sends can take
UNKNOWN_NOTE = ("the worker stopped during the send, so it may or may not have gone out; "
                "not repeated automatically (check the mail server or receiver)")
NOT_SENT_NOTE = "the worker stopped before sending it: it was not sent (send it again by hand if it is still wanted)"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Runner:
    """One worker: `tick()` does one round of work and says whether there was any."""

    def __init__(self, engine: Engine, settings: ChannelSettings | None = None,
                 clock: Callable[[], datetime] = utcnow, worker_id: str | None = None,
                 event_batch: int = 1000, step_batch: int = 200):
        self.engine, self.settings, self.clock = engine, settings or ChannelSettings(), clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.event_batch, self.step_batch = event_batch, step_batch
        self._last_recovery: datetime | None = None
        with write_transaction(engine) as conn:
            intake.ensure_cursor(conn)

    def tick(self) -> int:
        """Read new events, run due steps, send; returns the work done (events + steps)."""
        work = self.consume_events()
        work += self.run_due_steps()
        now = self.clock()
        if self._last_recovery is None or now - self._last_recovery >= RECOVERY_EVERY:
            self.recover_sends()
            self._last_recovery = now
        return work

    def consume_events(self) -> int:
        # A plain read first, so an idle runner never takes the write lock.
        with self.engine.connect() as conn:
            if not intake.has_new_events(conn):
                return 0
        with write_transaction(self.engine) as conn:
            return intake.consume(conn, self.clock(), self.event_batch)

    def run_due_steps(self, deliver: bool = True) -> int:
        with self.engine.connect() as conn:
            if not has_due_steps(conn, self.clock()):
                return 0
        with write_transaction(self.engine) as conn:
            executed, deliveries, _ = execute_due(conn, self.clock(), self.worker_id, self.settings, self.step_batch)
        if deliver:
            for d in deliveries:
                self.deliver(d)
        return executed

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Tick until a round finds nothing to do (tests and the benchmark)."""
        total = 0
        for _ in range(max_rounds):
            n = self.tick()
            total += n
            if not n:
                break
        return total

    def deliver(self, d: Delivery) -> None:
        """Send one recorded message, then record how it went (only if it is still `sending`).

        Just before the send, the message is stamped (sent_at, the attempt's start) while still `sending`:
        recovery judges an attempt by when it started, not by when its batch was recorded, and a message
        recovery has taken meanwhile is not sent."""
        m = t.messages.c
        with write_transaction(self.engine) as conn:
            started = conn.execute(update(t.messages).where(m.id == d.message["id"], m.status == t.SENDING)
                                   .values(sent_at=utc(self.clock()))).rowcount
        if not started:
            log.warning("message %s is no longer waiting to be sent; skipped", d.message["id"])
            return
        try:
            SENDERS[d.message["channel"]](d.message, d.step, self.settings)
            values = {"status": t.SENT, "sent_at": utc(self.clock())}
        except SendFailed as e:
            values = {"status": t.MSG_FAILED, "error": str(e), "sent_at": None}
        except Exception as e:      # a bug in a channel must not kill the loop; the message says so
            log.exception("channel %s failed", d.message["channel"])
            values = {"status": t.MSG_FAILED, "error": f"{type(e).__name__} in the {d.message['channel']} channel",
                      "sent_at": None}
        with write_transaction(self.engine) as conn:
            if conn.execute(update(t.messages).where(t.messages.c.id == d.message["id"], t.messages.c.status == t.SENDING)
                            .values(**values)).rowcount:
                record_on_path(conn, d.message["id"], values["status"], values.get("error"))

    def recover_sends(self) -> int:
        """Messages left `sending` by a worker that died: `unknown` when their send had started (never sent
        again blindly), `failed` when it had not started long after their batch was recorded."""
        m, now = t.messages.c, self.clock()
        with write_transaction(self.engine) as conn:
            unknown = conn.execute(update(t.messages).where(m.status == t.SENDING, m.sent_at.is_not(None),
                                                            m.sent_at < utc(now - SEND_TIMEOUT))
                                   .values(status=t.UNKNOWN, error=UNKNOWN_NOTE).returning(m.id)).scalars().all()
            failed = conn.execute(update(t.messages).where(m.status == t.SENDING, m.sent_at.is_(None),
                                                           m.created_at < utc(now - NEVER_STARTED))
                                  .values(status=t.MSG_FAILED, error=NOT_SENT_NOTE).returning(m.id)).scalars().all()
            for ids, status, note in ((unknown, t.UNKNOWN, UNKNOWN_NOTE), (failed, t.MSG_FAILED, NOT_SENT_NOTE)):
                for mid in ids:
                    record_on_path(conn, mid, status, note)
            return len(unknown) + len(failed)


def record_on_path(conn, message_id: int, status: str, error: str | None) -> None:
    """How a send went, where the launch history shows it: on the step that wrote the message (its result's
    status; the step is failed unless the message was sent) and, unless sent, on the run, which is listed
    with the runs with errors (at once when it has ended, else when it ends; its other steps go on)."""
    m, s, r = t.messages.c, t.steps.c, t.runs.c
    row = conn.execute(select(m.step_row_id, m.run_id).where(m.id == message_id)).first()
    if row is None:
        return
    raw = conn.execute(select(s.result).where(s.id == row.step_row_id)).scalar()
    result = json.loads(raw) if raw else {}
    result = dict(result if isinstance(result, dict) else {}, status=status, **({"error": error} if error else {}))
    values = {"result": json.dumps(result)}
    if status != t.SENT:
        values["state"] = t.FAILED
    conn.execute(update(t.steps).where(s.id == row.step_row_id).values(**values))
    if status == t.SENT:
        return
    what = "may or may not have been sent" if status == t.UNKNOWN else "failed"
    conn.execute(update(t.runs).where(r.id == row.run_id, r.error.is_(None))
                 .values(error=f"message #{message_id} {what}: {error}"))
    conn.execute(update(t.runs).where(r.id == row.run_id, r.state == t.COMPLETED).values(state=t.ERROR))


def settings_of(app) -> ChannelSettings:
    config = app.config.get("ORDERBRIDGE")
    options = dict(getattr(getattr(config, "backend", None), "options", None) or {})
    options.update(app.config.get("WORKFLOW_OPTIONS") or {})
    return ChannelSettings.from_options(options)


def loop(app, stop_event: threading.Event) -> None:
    """The background loop of backend.worker.BACKGROUND: work while there is work, else wait briefly."""
    try:
        settings = settings_of(app)
    except ConfigError as e:        # a person must fix the config; retrying would only repeat this
        log.error("workflow runner not started: %s", e)
        return
    runner = None
    while not stop_event.is_set():
        try:
            runner = runner or Runner(app.extensions["orderbridge.engine"], settings)
            busy = runner.tick()
        except Exception:
            # A database hiccup (deadlock, restart): nothing was committed, the work is retried.
            log.exception("workflow runner round failed; retrying")
            busy = 0
            stop_event.wait(1.0)
        if not busy:
            stop_event.wait(IDLE_WAIT)
