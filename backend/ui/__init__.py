"""The backend's web UI: server-rendered pages behind a login, with CSRF-checked forms.

Registering `bp` sets the session secret (config, else a key generated once under ./var) and
serves the pages under /ui. Other parts (the connector status page under `orderbridge up`) add
themselves to the navigation with `add_nav(app, label, endpoint)`.
"""
from __future__ import annotations

from flask import Flask, redirect, url_for

from backend.ui import session as ui_session
from backend.ui.views import bp


def _root():
    return redirect(url_for("ui.home"))


def _on_register(state) -> None:
    ui_session.configure(state.app)
    # `orderbridge up` prints the site's root as the UI's address
    if not any(rule.rule == "/" for rule in state.app.url_map.iter_rules()):
        state.app.add_url_rule("/", "ui_root", _root)


bp.record_once(_on_register)


def add_nav(app: Flask, label: str, endpoint: str) -> None:
    """Add a page to the UI's navigation bar (after the built-in ones)."""
    app.config.setdefault("UI_NAV_EXTRA", []).append((label, endpoint))
