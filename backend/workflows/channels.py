"""Where messages go: `store` (kept only), `email` (SMTP) and `webhook` (signed JSON POST, bounded retries).

Sending happens after the message row is committed with status `sending`, so a crash can lose a send
but never repeat one. `auto` means email when SMTP is configured, else store.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Callable

from connector.errors import ConfigError

TLS_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# Waits before webhook attempts 2 and 3: short, because the worker waits; a receiver down for
# longer gets the message marked failed and visible in GET /api/v1/messages.
WEBHOOK_RETRY_DELAYS = (0.5, 2.0)
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# The same for a mail server that is restarting or answers "try again later" (4xx) before it took the mail.
EMAIL_RETRY_DELAYS = (0.5, 2.0)


class SendFailed(Exception):
    """The channel refused the message; the text is safe to show (no secrets)."""


@dataclass(frozen=True)
class ChannelSettings:
    """The `[backend]` options the channels read (secrets by environment variable name)."""

    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_tls: str = "starttls"
    smtp_user_env: str | None = None
    smtp_password_env: str | None = None
    mail_from: str = "orderbridge@localhost"
    smtp_timeout: float = 20.0
    webhook_timeout: float = 10.0
    webhook_retry_delays: tuple[float, ...] = WEBHOOK_RETRY_DELAYS
    email_retry_delays: tuple[float, ...] = EMAIL_RETRY_DELAYS

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> "ChannelSettings":
        o = options or {}
        tls = str(o.get("smtp_tls", "starttls")).lower()
        if tls not in TLS_MODES:
            raise ConfigError(f"[backend] smtp_tls must be one of {', '.join(TLS_MODES)}; got {tls!r}")
        port = o.get("smtp_port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise ConfigError(f"[backend] smtp_port must be a port number; got {port!r}")
        return cls(smtp_host=o.get("smtp_host") or None, smtp_port=port, smtp_tls=tls,
                   smtp_user_env=o.get("smtp_user_env"), smtp_password_env=o.get("smtp_password_env"),
                   mail_from=o.get("mail_from", cls.mail_from))

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host)

    def resolve(self, channel: str) -> str:
        """The channel a message really goes through (`auto` → email or store)."""
        if channel == "auto":
            return "email" if self.email_configured else "store"
        return channel


class _Transient(Exception):
    """The mail server did not take the mail and said, or showed, that a later attempt may work."""


def send_email(message: dict, step: dict, settings: ChannelSettings,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """One message over SMTP; raises SendFailed when the server refuses it.

    A failure that proves the server did not take the mail (no connection, a 4xx "try again later" before or
    at the end of DATA) is retried a bounded number of times; one after the mail may have been taken (the
    connection lost while waiting for the final answer) never is: a message is never sent twice."""
    if not settings.email_configured:
        raise SendFailed("email channel: [backend] smtp_host is not configured")
    if "@" not in message["to"]:
        raise SendFailed(f"email channel: {message['to']!r} is not an email address")
    mail = EmailMessage()
    # a header is one line: a name with a line break in it (from order data) is written on one line, not refused
    subject = " ".join(str(message["subject"] or "").split())
    mail["From"], mail["To"], mail["Subject"] = settings.mail_from, message["to"].strip(), subject
    mail["Message-ID"] = make_msgid(idstring=f"orderbridge-{message['id']}")
    mail.set_content(message["body"])
    delays = (0.0, *settings.email_retry_delays)
    for attempt, delay in enumerate(delays, 1):
        if delay:
            sleep(delay)
        try:
            _send_once(mail, settings)
            return
        except _Transient as e:
            cause = e.__cause__
            why = f"email channel: {type(cause).__name__}: {cause}"
            if attempt == len(delays):
                raise SendFailed(f"{why} (after {attempt} attempts)") from None


def _send_once(mail: EmailMessage, settings: ChannelSettings) -> None:
    """One attempt; _Transient when the server surely did not take the mail and may later, SendFailed else."""
    try:
        smtp = _smtp(settings)
    except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, ConnectionError) as e:
        # refused, or a "421 try later" greeting: nothing was sent. (A timeout is not tried again: it already
        # waited smtp_timeout, and a worker's whole batch waits behind it.)
        raise _Transient() from e
    except (smtplib.SMTPException, OSError) as e:
        raise SendFailed(f"email channel: {type(e).__name__}: {e}") from None
    try:
        _login(smtp, settings)
        smtp.send_message(mail)
    except (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError,
            smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError) as e:
        # the server answered, refusing: the mail is not taken; a 4xx answer means "try again later"
        codes = [e.smtp_code] if hasattr(e, "smtp_code") else [c for c, _ in getattr(e, "recipients", {}).values()]
        if codes and all(400 <= c < 500 for c in codes):
            raise _Transient() from e
        raise SendFailed(f"email channel: {type(e).__name__}: {e}") from None
    except (smtplib.SMTPException, OSError) as e:
        # e.g. the connection lost after the data went out: the mail may have been taken, so it is not repeated
        raise SendFailed(f"email channel: {type(e).__name__}: {e}") from None
    finally:
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT, and close whatever it answers: the mail's fate is settled by then (a server that answers QUIT
    oddly after taking the mail must not make it read as failed)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _smtp(settings: ChannelSettings) -> smtplib.SMTP:
    port = settings.smtp_port or DEFAULT_PORTS[settings.smtp_tls]
    if settings.smtp_tls == "ssl":
        return smtplib.SMTP_SSL(settings.smtp_host, port, timeout=settings.smtp_timeout,
                                context=ssl.create_default_context())
    smtp = smtplib.SMTP(settings.smtp_host, port, timeout=settings.smtp_timeout)
    if settings.smtp_tls == "starttls":
        try:
            smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
    return smtp


def _login(smtp: smtplib.SMTP, settings: ChannelSettings) -> None:
    user = os.environ.get(settings.smtp_user_env or "") or None
    if user:
        smtp.login(user, os.environ.get(settings.smtp_password_env or "", ""))


def webhook_payload(message: dict) -> bytes:
    keys = ("id", "workflowId", "runId", "contactId", "channel", "to", "subject", "body", "createdAt")
    return json.dumps({k: message.get(k) for k in keys}, ensure_ascii=False, sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(message: dict, step: dict, settings: ChannelSettings,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """POST the message as JSON, signed with HMAC-SHA256; retried a bounded number of times."""
    body = webhook_payload(message)
    headers = {"Content-Type": "application/json", "X-Orderbridge-Message-Id": str(message["id"])}
    if step.get("secret_env"):
        secret = os.environ.get(step["secret_env"])
        if not secret:
            raise SendFailed(f"webhook channel: environment variable {step['secret_env']} is not set")
        headers["X-Orderbridge-Signature"] = signature(secret, body)
    last = ""
    for delay in (0.0, *settings.webhook_retry_delays):
        if delay:
            sleep(delay)
        retry, last = _post(step["url"], body, headers, settings.webhook_timeout)
        if not retry:
            if last:
                raise SendFailed(last)
            return
    raise SendFailed(f"{last} (after {1 + len(settings.webhook_retry_delays)} attempts)")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: urllib would repeat the POST as a GET without the body (and the message
    would read as sent), and it could lead anywhere. It is answered as a failure naming the Location."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[bool, str]:
    """(retry?, error text); (False, "") is success."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            r.read()
            return False, ""
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            where = e.headers.get("Location") or "nowhere"
            return False, f"webhook channel: {url} redirects ({e.code}) to {where[:200]}; put that address in the step"
        return e.code in RETRY_STATUSES, f"webhook channel: {url} answered {e.code}"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            # The request may have arrived and only the answer be late: sending it again could deliver it
            # twice, and a message is never repeated (the runner's rule). It fails, saying so.
            return False, (f"webhook channel: {url} did not answer within {timeout:g} s; not sent again, as it may "
                           "have arrived (the X-Orderbridge-Message-Id header lets a receiver drop repeats)")
        return True, f"webhook channel: {url} unreachable ({reason})"


SENDERS: dict[str, Callable[[dict, dict, ChannelSettings], None]] = {
    "email": send_email,
    "webhook": send_webhook,
}
