"""The bundled automation backend: a Flask app factory, wire-compatible with Yespo's add-orders API."""
from __future__ import annotations

import importlib

from flask import Flask, jsonify
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from backend import errors, throttle
from backend.db import get_engine, init_schema, make_engine
from backend.ratelimit import TokenBucket
from connector.errors import ConfigError

# Blueprints the app serves, as "module:attribute" (an explicit registry: add one line per area).
# API blueprints put themselves behind the API key with backend.auth.protect.
BLUEPRINTS: list[str] = ["backend.api:bp", "backend.reports_api:bp", "backend.ui:bp", "backend.workflows.api:bp"]


def _blueprint(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def _healthz():
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return jsonify({"status": "ok"})


def trust_proxies(app: Flask, opts: dict) -> None:
    """Behind `[backend] trusted_proxies` reverse proxies, the client's address is the one the outermost
    of them saw: that many entries from the end of X-Forwarded-For, where each appends its peer. With 0
    the header is ignored, since any client could write it. The failed-login throttle counts by this."""
    hops = opts.get("trusted_proxies", 0)
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 10:
        raise ConfigError(f"[backend] trusted_proxies: expected how many reverse proxies stand in front (0 to 10); got {hops!r}")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)


def create_app(config=None, test_config: dict | None = None) -> Flask:
    """Build the backend app for `config` (a connector.config.Config; defaults when None).

    `test_config` overrides Flask config keys, among them DATABASE_URL, API_KEYS (a list),
    RATE_LIMIT (requests per second per key, 0 = off) and MAX_CONTENT_LENGTH (bytes). The failed-login
    throttle follows `[backend] auth_fail_*` (backend.throttle); tests set its `clock` through
    app.extensions["orderbridge.auth_throttle"].
    """
    if config is None:
        from connector.config import from_dict
        config = from_dict({})
    app = Flask(__name__)
    app.config.update(ORDERBRIDGE=config, DATABASE_URL=config.backend.database, API_KEYS=config.backend.api_keys,
                      RATE_LIMIT=config.backend.rate_limit, MAX_CONTENT_LENGTH=config.backend.max_body)
    app.config.update(test_config or {})
    app.json.sort_keys = False   # keep add-orders objects in their own field order
    engine = make_engine(app.config["DATABASE_URL"])
    init_schema(engine)
    app.extensions["orderbridge.engine"] = engine
    if float(app.config["RATE_LIMIT"] or 0) > 0:
        app.extensions["orderbridge.ratelimit"] = TokenBucket(float(app.config["RATE_LIMIT"]))
    trust_proxies(app, config.backend.options)
    throttle.init_app(app, config.backend.options)
    errors.init_app(app)
    app.add_url_rule("/healthz", "healthz", _healthz)
    for ref in BLUEPRINTS:
        app.register_blueprint(_blueprint(ref))
    return app
