"""What the webhook blueprints share: one JSON error shape (the backend's) and header look-up."""
from __future__ import annotations

from typing import Mapping

from flask import jsonify


def json_error(status: int, message: str):
    """`{"error": {"status": N, "message": "..."}}`, the shape every orderbridge service answers."""
    return jsonify({"error": {"status": status, "message": message}}), status


def first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of several spellings of a header that is present and not empty."""
    return next((headers.get(n) for n in names if headers.get(n)), None)
