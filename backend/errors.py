"""One JSON shape for every error the backend answers: {"message": "...", "error": {"status": N, "message": "..."}}.

The top-level `message` is where clients written for Yespo look (the official Shopify app reads `json.message`
of an error body, reference/yespo-api.md §4.3, and matches texts such as "Duplicated request" in it); without
it they see "Unknown error". `error` is ours and carries the status too.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Werkzeug's default texts speak HTML-page English; these say what the client must do.
_MESSAGES = {
    404: "no such resource",
    405: "method not allowed on this resource",
    413: "request body too large",
}


class ApiError(Exception):
    """An error the client must fix (or wait out); answered as JSON with its status."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict | None = None):
    resp = jsonify({"message": message, "error": {"status": status, "message": message}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _api_error(e: ApiError):
    return error_response(e.status, e.message, e.headers)


def _http_error(e: HTTPException):
    code = e.code or 500
    message = _MESSAGES.get(code) or (e.description or e.name)
    headers = {k: v for k, v in e.get_headers() if k.lower() in ("allow", "retry-after", "www-authenticate")}
    return error_response(code, message, headers)


def _unexpected(e: Exception):
    if isinstance(e, HTTPException):
        return _http_error(e)
    # The stack trace goes to the log, never to the client.
    log.exception("unhandled error")
    return error_response(500, "internal error; the server log has the details")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
