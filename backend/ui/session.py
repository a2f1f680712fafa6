"""UI sessions: the secret key, login (operator password or an API key) and CSRF tokens.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax). Every POST form carries the
session's CSRF token, compared in constant time; a form without it is refused.

A session names the credential it was opened with by a keyed fingerprint (never the secret itself):
once that API key is rotated out or the operator password changes, the session ends, instead of
lasting out `ui_session_hours`.
"""
from __future__ import annotations

import hmac
import os
import secrets
from datetime import timedelta
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, redirect, request, session, url_for

from backend.auth import key_matches
from connector.config import secret
from connector.errors import ConfigError

SECRET_FILE = "ui-secret.key"
CSRF_FIELD = "csrf_token"


def var_dir(app: Flask) -> Path:
    """Where generated files live: beside a SQLite database, else ./var."""
    url = app.config.get("DATABASE_URL") or ""
    cfg = app.config.get("ORDERBRIDGE")
    if not url and cfg is not None:
        url = cfg.backend.database
    if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
        return Path(url[len("sqlite:///"):]).parent
    return Path("var")


def load_or_create_secret(path: Path) -> bytes:
    """The key in `path`, created (0600, exclusively: several workers may race) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key.encode()
        raise RuntimeError(f"{path} holds no usable UI secret; delete it to have a new one made") from None
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key.encode()


def options(app: Flask) -> dict:
    cfg = app.config.get("ORDERBRIDGE")
    return dict(cfg.backend.options) if cfg is not None else {}


def configure(app: Flask) -> None:
    """Set the session secret and cookie flags, unless the app (or a test) set them already."""
    if not app.secret_key:
        from_env = secret(options(app).get("ui_secret_key_env"))
        app.secret_key = from_env.encode() if from_env else load_or_create_secret(var_dir(app) / SECRET_FILE)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    # a UI login lasts a working day by default, not Flask's 31 days
    raw = options(app).get("ui_session_hours", 12)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= 24 * 366:
        raise ConfigError(f"[backend] ui_session_hours: expected a number of hours (more than 0, at most a year); got {raw!r}")
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=raw)


def operator_password() -> str | None:
    return secret(options(current_app).get("ui_password_env"))


def credentials_ok(given: str) -> bool:
    """The operator's password or any API key, compared in constant time."""
    if not given:
        return False
    ok = key_matches(given, current_app.config.get("API_KEYS", [])) is not None
    pw = operator_password()
    if pw is not None:
        ok = hmac.compare_digest(given.encode(), pw.encode()) or ok
    return ok


def fingerprint(credential: str) -> str:
    """A credential as a session may hold it: keyed with the session secret, so the cookie (signed but
    readable by its holder) tells nothing about the key or password."""
    key = current_app.secret_key
    key = key.encode() if isinstance(key, str) else key
    return hmac.new(key, b"ui-login\x00" + credential.encode(), "sha256").hexdigest()


def credential_current(print_: str) -> bool:
    """Is the credential behind a session's fingerprint still an API key or the operator password?"""
    current = [*current_app.config.get("API_KEYS", []), operator_password() or ""]
    found = False
    for credential in current:
        if credential and hmac.compare_digest(print_.encode(), fingerprint(credential).encode()):
            found = True
    return found


def log_in(credential: str) -> None:
    """Open a session for `credential` (checked by credentials_ok)."""
    session.clear()                      # a fresh session on login (no fixation)
    session["user"] = "operator"
    session["cred"] = fingerprint(credential)
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def csrf_token() -> str:
    """The session's token for forms (created for the login form before anyone logs in)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """before_request: refuse a POST whose form lacks the session's CSRF token."""
    if request.method != "POST":
        return
    expected = session.get("csrf", "")
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(400, description="the form has expired or did not come from this site; reload the page and try again")


def logged_in() -> bool:
    """A session opened with a credential that is still valid; a session whose credential was rotated
    out (or from before sessions named theirs) is ended here."""
    if session.get("user") != "operator":
        return False
    if credential_current(session.get("cred", "")):
        return True
    session.clear()
    return False


def login_required(view):
    """For views outside the UI blueprint (e.g. the connector status page)."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not logged_in():
            return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def safe_next(target: str | None) -> str:
    """Only a local path: never redirect a login to another site. Browsers drop tabs and line breaks
    from a URL, so '/\t/evil.example' would become '//evil.example': any control character or space,
    a backslash, or anything urlsplit reads as a scheme or a host, is refused."""
    if (target and target.startswith("/") and "\\" not in target
            and not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and not target.startswith("//"):
            return target
    return url_for("ui.orders")
