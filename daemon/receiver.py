"""The webhook receiver: a WSGI app that mounts each platform's blueprint (verify, store, answer)."""
from __future__ import annotations

import importlib
import logging
import os
import re

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from adapters.webhook_http import json_error
from connector import database, inbox

log = logging.getLogger(__name__)

# An explicit registry: platform → module exposing `blueprint` (routes /webhooks/<platform>/<shop>).
WEBHOOK_MODULES = {
    "shopify": "adapters.shopify.webhooks",
    "woocommerce": "adapters.woocommerce.webhooks",
}
DEFAULT_MAX_BODY = 10 * 1024 * 1024     # Shopify order payloads with many lines stay well under this
WEBHOOK_PREFIX = "/webhooks/"


def max_body(config) -> int:
    """`[receiver] max_body` in bytes (default 10 MiB)."""
    section = (config.raw or {}).get("receiver", {}) if config is not None else {}
    return int(section.get("max_body", DEFAULT_MAX_BODY)) if isinstance(section, dict) else DEFAULT_MAX_BODY


def spool_dir(config, database_url: str) -> str | None:
    """`[receiver] spool_dir`: where deliveries go while the database cannot be used ("" for nowhere: they are
    refused with 503 then). A folder belongs to one database, as whatever waits there is moved into it:
    by default `webhook-spool` beside a SQLite database, else `var/webhook-spool-<database name>` (the
    name, not the host: after a failover to another host the same folder is still found)."""
    section = (config.raw or {}).get("receiver", {}) if config is not None else {}
    if isinstance(section, dict) and "spool_dir" in section:
        return section["spool_dir"] or None
    from sqlalchemy.engine import make_url
    try:
        url = make_url(database_url)
    except Exception:       # noqa: BLE001 - make_engine has read it already; a name is all this needs
        url = None
    name = url.database if url is not None else None
    if url is not None and url.get_backend_name() == "sqlite" and name and name != ":memory:":
        return os.path.join(os.path.dirname(name) or ".", "webhook-spool")
    return os.path.join("var", f"webhook-spool-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name or '') or 'default'}")


def create_receiver_app(config, engine=None) -> Flask:
    """The receiver as a Flask app; `engine` defaults to one on the connector database."""
    from connector.store import init_db, make_engine
    if engine is None:
        engine = make_engine(config.database)
        init_db(engine)
    folder = spool_dir(config, str(engine.url))
    if folder is not None:
        inbox.use_spool(engine, folder)
    app = Flask("orderbridge.receiver")
    app.config.update(OB_CONFIG=config, OB_ENGINE=engine, MAX_CONTENT_LENGTH=max_body(config))

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True, "service": "receiver"})

    @app.before_request
    def plain_bodies_only():
        # A compressed body (a proxy's gzip) would pass the signature check as bytes, be stored and
        # acknowledged, then fail as 'not JSON' with nothing left to say it was compressed: the order would
        # be lost. Refused before it is acknowledged, so the sender knows (Shopify retries; for WooCommerce,
        # which does not, the poll catches the order up).
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return json_error(415, f"Content-Encoding {encoding[:40]!r} is not accepted: send the webhook body "
                                   "uncompressed (it is stored and verified exactly as sent)")
        return None

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        # Platforms and people read these: JSON, saying what is wrong (a 413 names the limit).
        message = (f"body too large: the limit is {app.config['MAX_CONTENT_LENGTH']} bytes "
                   "([receiver] max_body)") if e.code == 413 else e.description
        return json_error(e.code or 500, message)

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        if isinstance(e, HTTPException):
            return http_error(e)
        # Not acknowledged, so Shopify retries (WooCommerce does not: its poll catches up); the stack trace
        # goes to the log only.
        if database.is_unavailable(e):
            # A full disk, a lock held past the busy timeout, a server down: one line per delivery that
            # names the cause (a traceback each, 18 lines, hid it), without the SQL and its parameters.
            log.error("webhook %s not stored (answered 503, the platform will retry): the connector database "
                      "cannot be used: %s", request.path, database.unavailable_reason(e))
            return json_error(503, "the delivery could not be stored; try again later")
        log.exception("webhook delivery could not be stored")
        return json_error(500, "the delivery could not be stored; the server log has the details")

    for platform, module in WEBHOOK_MODULES.items():
        blueprint = _blueprint(module)
        if blueprint is not None:
            app.register_blueprint(blueprint)
        else:
            log.info("no webhook receiver for %s yet (%s is missing)", platform, module)
    return app


def _blueprint(module: str):
    try:
        return importlib.import_module(module).blueprint
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):   # the module itself (or its package) does not exist yet
            return None
        raise


def dispatch_webhooks(receiver, rest):
    """One WSGI app: /webhooks/... → the receiver, everything else → `rest` (paths are kept whole)."""
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = receiver if path.startswith(WEBHOOK_PREFIX) else rest
        return target(environ, start_response)
    return app
