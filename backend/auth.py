"""Basic auth as Yespo does it: any user name, an API key as the password, compared in constant time."""
from __future__ import annotations

import hmac

from flask import Blueprint, current_app, g, request

from backend import throttle
from backend.errors import ApiError
from backend.ratelimit import check_rate

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="orderbridge"'}


def key_matches(given: str, keys: list[str]) -> str | None:
    """The configured key equal to `given`, comparing against every key (no early exit)."""
    found = None
    raw = given.encode()
    for key in keys:
        if hmac.compare_digest(raw, key.encode()):
            found = key
    return found


def require_api_key() -> None:
    """before_request hook: 401 without a valid key, 429 above the key's rate limit, and 429 without
    looking at the key while this address is blocked for too many wrong keys."""
    wait = throttle.take_try()
    if wait:
        raise ApiError(429, f"too many wrong API keys from this address; retry in {wait} s", {"Retry-After": str(wait)})
    wrong = False
    try:
        creds = request.authorization
        if creds is None or creds.type != "basic" or not creds.password:
            raise ApiError(401, "Basic auth required: any user name, the API key as the password", _CHALLENGE)
        key = key_matches(creds.password, current_app.config["API_KEYS"])
        wrong = key is None
    finally:
        throttle.end_try(wrong, "API key")      # the try is given back unless a key was tried and wrong
    if wrong:
        raise ApiError(401, "the API key is not valid", _CHALLENGE)
    g.api_key = key
    check_rate(key)


def protect(bp: Blueprint) -> Blueprint:
    """Put a blueprint behind the API key and the rate limit (every /api/v1 blueprint uses this)."""
    bp.before_request(require_api_key)
    return bp
