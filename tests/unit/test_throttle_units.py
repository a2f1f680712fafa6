"""The failed-authentication throttle as a pure object: blocking, expiry, the memory cap, checks under way, config."""
from __future__ import annotations

import threading

import pytest
from backend.throttle import FailureThrottle, client_key, from_options
from connector.errors import ConfigError


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_limit_th_failure_blocks_until_the_window_ends():
    clock = Clock()
    t = FailureThrottle(limit=3, window=60, clock=clock)
    assert [t.fail("198.51.100.7") > 0 for _ in range(3)] == [False, False, True]
    clock.now += 20
    assert t.wait("198.51.100.7") == 40
    assert t.wait("198.51.100.8") == 0
    clock.now += 40
    assert t.wait("198.51.100.7") == 0


def test_failures_spread_over_more_than_a_window_never_block():
    clock = Clock()
    t = FailureThrottle(limit=3, window=60, clock=clock)
    for _ in range(10):
        t.fail("198.51.100.7")
        clock.now += 31
    assert t.wait("198.51.100.7") == 0


def test_the_table_holds_at_most_max_addresses_dropping_the_oldest_first():
    clock = Clock()
    t = FailureThrottle(limit=1, window=60, max_addresses=100, clock=clock)
    for i in range(5000):
        t.fail(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 100
    assert t.wait("10.0.19.135") > 0          # the last one in is still blocked
    assert t.wait("10.0.0.0") == 0            # the first ones went


def test_expired_windows_are_dropped_without_waiting_for_the_cap():
    clock = Clock()
    t = FailureThrottle(limit=5, window=60, clock=clock)
    for i in range(50):
        t.fail(f"10.0.0.{i}")
    clock.now += 61
    t.fail("10.0.1.1")
    assert len(t) == 1


@pytest.mark.parametrize("addr, key", [
    ("203.0.113.9", "203.0.113.9"),
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
    (None, "unknown"),
])
def test_ipv6_addresses_count_by_their_64(addr, key):
    assert client_key(addr) == key


def test_config_defaults_on_zero_off_and_bad_values_named():
    t = from_options({})
    assert (t.limit, t.window, t.max_addresses) == (10, 60.0, 10_000)
    assert from_options({"auth_fail_limit": 0}) is None
    assert from_options({"auth_fail_limit": 5, "auth_fail_window": "15m"}).window == 900
    for opts, name in [({"auth_fail_limit": -1}, "auth_fail_limit"), ({"auth_fail_limit": "10"}, "auth_fail_limit"),
                       ({"auth_fail_window": "soon"}, "auth_fail_window"), ({"auth_fail_window": 0}, "auth_fail_window"),
                       ({"auth_fail_addresses": 0}, "auth_fail_addresses")]:
        with pytest.raises(ConfigError, match=name):
            from_options(opts)


ADDR = "203.0.113.66"


def test_once_an_address_failed_its_checks_under_way_count_against_the_limit():
    """Requests sent at once get no more tries than requests sent one after another."""
    t = FailureThrottle(limit=3, window=60, clock=Clock())
    assert t.take(ADDR) == 0 and t.end(ADDR, ok=False) == 0
    waits = [t.take(ADDR) for _ in range(4)]             # four requests arrive before any is answered
    assert waits == [0, 0, t.BUSY_WAIT, t.BUSY_WAIT]
    assert [t.end(ADDR, ok=False) for _ in range(2)] == [0, 60]         # the third wrong one blocks
    assert t.take(ADDR) == 60                            # and nothing more is checked until the window ends


def test_a_client_that_never_failed_is_never_turned_away_for_sending_at_once():
    t = FailureThrottle(limit=3, window=60, clock=Clock())
    assert [t.take(ADDR) for _ in range(8)] == [0] * 8  # a connector pushing with the right key, 8 at once
    for _ in range(8):
        t.end(ADDR, ok=True)
    assert len(t) == 0


def test_a_right_credential_gives_its_try_back():
    clock = Clock()
    t = FailureThrottle(limit=2, window=60, clock=clock)
    for _ in range(10):
        assert t.take(ADDR) == 0
        t.end(ADDR, ok=True)
    assert t.take(ADDR) == 0 and t.end(ADDR, ok=False) == 0
    assert t.take(ADDR) == 0                             # the last try, taken
    assert t.take(ADDR) == t.BUSY_WAIT                   # none left while it is checked
    t.end(ADDR, ok=True)
    assert t.take(ADDR) == 0 and t.end(ADDR, ok=False) == 60           # the second wrong one blocks
    assert t.take(ADDR) == 60
    clock.now += 60
    assert t.take(ADDR) == 0                             # a new window


def test_valid_requests_leave_nothing_in_the_table():
    t = FailureThrottle(limit=3, window=60, clock=Clock())
    for i in range(100):
        assert t.take(f"10.0.0.{i}") == 0
        t.end(f"10.0.0.{i}", ok=True)
    assert len(t) == 0


def test_threads_guessing_at_once_get_no_more_than_the_limit():
    t = FailureThrottle(limit=10, window=60)
    assert t.take(ADDR) == 0 and t.end(ADDR, ok=False) == 0         # a first wrong key
    start, allowed, lock = threading.Barrier(32), [1], threading.Lock()

    def guess():
        start.wait()
        for _ in range(5):
            if t.take(ADDR) == 0:
                with lock:
                    allowed.append(1)
                t.end(ADDR, ok=False)
    threads = [threading.Thread(target=guess) for _ in range(32)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(allowed) == 10
