"""The email channel tries again when the mail server said "try again later" or could not be reached, and only
then: a mail the server may have taken is never sent twice.

Before, one "451 try again later" (greylisting, a full queue) or a mail server restarting failed the message
for good on the first attempt, while the webhook channel tried three times.
"""
from __future__ import annotations

import dataclasses

import pytest
from aiosmtpd.controller import Controller

from backend.workflows.channels import ChannelSettings, SendFailed, send_email
from tests.integration.test_workflows_runner import Backend, free_port, order


class Answers:
    """aiosmtpd handler: answers DATA with the given replies in turn (then 250), keeping what it took."""

    def __init__(self, *replies: str):
        self.replies, self.taken, self.attempts = list(replies), [], 0

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.replies:
            return self.replies.pop(0)
        self.taken.append(envelope)
        return "250 OK"


@pytest.fixture
def server():
    def start(*replies):
        handler = Answers(*replies)
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        started.append(controller)
        handler.port = controller.port
        return handler
    started: list = []
    yield start
    for c in started:
        c.stop()


def settings(port: int) -> ChannelSettings:
    return ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none", smtp_timeout=5)


MESSAGE = {"id": 7, "to": "buyer@example.com", "subject": "Hi", "body": "hello"}


def test_a_try_again_later_is_tried_again_and_the_mail_goes_once(server):
    smtp, waits = server("451 4.3.0 greylisted, try again later"), []
    send_email(MESSAGE, {}, settings(smtp.port), sleep=waits.append)
    assert smtp.attempts == 2 and len(smtp.taken) == 1 and waits == [0.5]


def test_a_permanent_refusal_is_not_tried_again(server):
    smtp, waits = server("550 5.7.1 no such mailbox"), []
    with pytest.raises(SendFailed, match="550"):
        send_email(MESSAGE, {}, settings(smtp.port), sleep=waits.append)
    assert smtp.attempts == 1 and waits == []


def test_a_server_that_stays_away_fails_after_three_attempts():
    waits = []
    with pytest.raises(SendFailed, match=r"ConnectionRefusedError.*\(after 3 attempts\)"):
        send_email(MESSAGE, {}, settings(free_port()), sleep=waits.append)
    assert waits == [0.5, 2.0]


def test_through_the_runner_a_greylisted_confirmation_is_sent(db_url, server):
    smtp = server("451 4.7.1 try again later")
    b = Backend(db_url, smtp)
    b.runner.settings = dataclasses.replace(b.runner.settings, email_retry_delays=(0.01, 0.01))
    b.post(order())
    b.run()
    [m] = b.messages()
    assert m["status"] == "sent" and len(smtp.taken) == 1
    assert b.runs(b.workflow_id("Order confirmation"))[0]["state"] == "completed"
    b.engine.dispose()


