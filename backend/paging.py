"""Keyset pagination for every list route: `?limit=` (1..1000) and an opaque `?cursor=`."""
from __future__ import annotations

import base64
import binascii

from flask import request

from backend.errors import ApiError

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ID = 2 ** 63 - 1        # the largest id a database column holds


def whole_number(raw: str | None) -> int | None:
    """`raw` as a whole number an id column can hold, else None. ASCII digits only: '²'.isdigit() is
    true, and int('²') raises."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def encode_cursor(last_id: int | None) -> str | None:
    """The `next` of a page that ended at `last_id` (None: there is no next page)."""
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def page_args() -> tuple[int, int]:
    """(limit, id to start after; 0 for the first page), with 400s that say what is wrong."""
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not 1 <= (whole_number(raw) or 0) <= MAX_LIMIT:
        raise ApiError(400, f"limit: expected a whole number from 1 to {MAX_LIMIT}; got {raw[:20]!r}")
    cursor = request.args.get("cursor")
    if not cursor:
        return int(raw), 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("id:"):
            raise ValueError
        after = whole_number(text[3:])
        if after is None:
            raise ValueError
        return int(raw), after
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "cursor: not a cursor this API gave out (use the `next` value of a list)") from None


def int_arg(name: str) -> int | None:
    """An optional whole-number query parameter (an id to filter by), with a 400 that names it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    value = whole_number(raw)
    if value is None:
        raise ApiError(400, f"{name}: expected a whole number; got {raw[:20]!r}")
    return value
