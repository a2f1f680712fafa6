"""Requests-per-second limit per API key (a token bucket per key, in this process)."""
from __future__ import annotations

import math
import threading
import time

from flask import current_app

from backend.errors import ApiError


class TokenBucket:
    """`rate` tokens a second, up to `rate` in hand (one second of burst). `now` is passed in."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self._tokens: dict[str, tuple[float, float]] = {}   # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """0 when a request may pass, else the seconds until it may."""
        with self._lock:
            tokens, at = self._tokens.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._tokens[key] = (tokens - 1, now)
                return 0.0
            self._tokens[key] = (tokens, now)
            return (1 - tokens) / self.rate


def check_rate(key: str) -> None:
    """Raise 429 with Retry-After when `key` is over the configured rate (0 turns it off).

    The bucket lives in this process: N backend processes allow N × rate in total.
    """
    bucket: TokenBucket | None = current_app.extensions.get("orderbridge.ratelimit")
    if bucket is None:
        return
    wait = bucket.take(key, time.monotonic())
    if wait > 0:
        raise ApiError(429, f"more than {bucket.rate:g} requests per second with this API key; retry later",
                       {"Retry-After": str(max(1, math.ceil(wait)))})
