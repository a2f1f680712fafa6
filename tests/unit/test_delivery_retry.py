"""The retry schedule as data: a table of attempts → waits."""
from datetime import datetime, timedelta, timezone

import pytest

from connector.retry import DEFAULT_SCHEDULE, delay_after, next_attempt_at

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("attempts, wait", [(1, 30), (2, 60), (3, 300), (10, 86400), (11, 86400), (99, 86400), (0, 30)])
def test_default_schedule(attempts, wait):
    assert delay_after(attempts) == wait
    assert next_attempt_at(attempts, NOW) == NOW + timedelta(seconds=wait)


def test_the_last_step_repeats_for_a_custom_schedule():
    assert [delay_after(n, (0.1, 0.2)) for n in (1, 2, 3)] == [0.1, 0.2, 0.2]


def test_a_longer_retry_after_wins_a_shorter_one_does_not():
    assert next_attempt_at(1, NOW, retry_after=600) == NOW + timedelta(seconds=600)
    assert next_attempt_at(3, NOW, retry_after=5) == NOW + timedelta(seconds=300)


def test_schedule_is_increasing():
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)
