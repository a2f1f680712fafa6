"""When to try an order version again: the retry schedule is data, the decision a pure function."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

# Seconds to wait after attempt n before attempt n+1; the last value repeats. Long enough to ride out
# a night-long outage, short enough that a blip costs seconds (the config can replace it).
DEFAULT_SCHEDULE: tuple[float, ...] = (
    30,        # a restart or a deploy
    60,
    300,       # 5 min: WooCommerce's own pause after a 429/500
    900,       # 15 min: OpenCart's retry delay
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,     # then once a day until max_attempts
)


def delay_after(attempts: int, schedule: Sequence[float] = DEFAULT_SCHEDULE) -> float:
    """Seconds to wait after `attempts` attempts (1 = the first attempt failed)."""
    if not schedule:
        return 0.0
    return float(schedule[min(max(attempts, 1), len(schedule)) - 1])


def next_attempt_at(attempts: int, now: datetime, schedule: Sequence[float] = DEFAULT_SCHEDULE,
                    retry_after: float | None = None) -> datetime:
    """When to try again after `attempts` failed attempts; a longer Retry-After from the target wins."""
    wait = delay_after(attempts, schedule)
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    return now + timedelta(seconds=wait)
