"""A cost-aware pacer for Shopify's GraphQL leaky bucket, driven by `extensions.cost.throttleStatus`.

Shopify answers every call with the bucket's size, what is left and the restore rate; a query
is refused (THROTTLED) unless its *requested* cost is available, and then charged its *actual*
cost. So the pacer waits, before each call, just until the projected bucket holds the requested
cost: no fixed sleeps, and no bucket left full while it refills for nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass
class BucketState:
    maximum: float
    available: float
    rate: float          # points restored per second
    at: float            # clock reading when `available` was reported


class Pacer:
    """Tracks one shop's bucket; `clock` and `sleep` are injected so tests can run without waiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 margin: float = 0.02):
        self.clock, self.sleep = clock, sleep
        self.margin = margin           # seconds added to each wait: the server's clock is not ours
        self.state: BucketState | None = None
        self.waited = 0.0
        self.throttled = 0

    def projected(self, now: float | None = None) -> float | None:
        """Points the bucket should hold now, or None before the first answer."""
        s = self.state
        if s is None:
            return None
        now = self.clock() if now is None else now
        return min(s.maximum, s.available + s.rate * max(0.0, now - s.at))

    def delay_for(self, cost: float, now: float | None = None) -> float:
        """Seconds to wait before a call whose requested cost is `cost` (0 when it fits now)."""
        s = self.state
        if s is None or s.rate <= 0:
            return 0.0
        need = min(cost, s.maximum) - self.projected(now)
        return 0.0 if need <= 0 else need / s.rate + self.margin

    def before(self, cost: float) -> None:
        delay = self.delay_for(cost)
        if delay > 0:
            self.waited += delay
            self.sleep(delay)

    def observe(self, cost: Mapping | None) -> None:
        """Read `extensions.cost` of an answer (throttled or not)."""
        status = (cost or {}).get("throttleStatus") or {}
        try:
            self.state = BucketState(maximum=float(status["maximumAvailable"]),
                                     available=float(status["currentlyAvailable"]),
                                     rate=float(status["restoreRate"]), at=self.clock())
        except (KeyError, TypeError, ValueError):
            pass   # no cost information (an error page): keep the last known state

    def on_throttled(self, cost: Mapping | None, requested: float) -> float:
        """After a THROTTLED answer: wait until `requested` points are back. Returns the wait."""
        self.throttled += 1
        self.observe(cost)
        delay = self.delay_for(requested) or 1.0   # no state at all: a short, fixed pause
        self.waited += delay
        self.sleep(delay)
        return delay
