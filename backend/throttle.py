"""Failed-authentication throttle per client address, shared by the API's Basic auth and the UI login.

After `limit` wrong API keys or passwords from one address within `window` seconds (counted from its
first failure), that address is refused until the window ends, and its credentials are not checked at
all meanwhile: guessing goes no faster than `limit` tries a window. Valid requests are never counted,
and other addresses are not affected. The counts live in this process (N backend processes allow
N × limit), in a table of at most `max_addresses` entries.

A check takes one of the address's tries before the credential is compared and gives it back when the
credential was right: once an address has failed, requests it sends at once cannot all pass the count
before the first of them fails (with a server's 8 threads, 10 tries a window had been up to 17). Before
its first failure nothing is refused, so a client with the right key is never turned away for sending
many requests at once; its first burst can try at most as many keys as the server has threads.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Callable

from flask import Flask, current_app, request

from connector.config import parse_duration
from connector.errors import ConfigError

log = logging.getLogger(__name__)
EXTENSION = "orderbridge.auth_throttle"


def client_key(addr: str | None) -> str:
    """What failures are counted against: an IPv4 address, or an IPv6 address's /64 (one host is
    commonly given a whole /64, so counting single IPv6 addresses would limit nothing)."""
    try:
        ip = ipaddress.ip_address(addr or "")
    except ValueError:
        return addr or "unknown"
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureThrottle:
    """Failures per address in a window opened by the address's first failure. `clock` is passed in."""

    BUSY_WAIT = 1.0     # every try left is being checked: ask to come back once those are answered

    def __init__(self, limit: int, window: float, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.max_addresses, self.clock = limit, window, max_addresses, clock
        # address → (window start, failures, checks under way); an address's first failure opens its window
        # and moves it to the end, so the entries stay ordered by window start and the expired ones are at
        # the front (an entry with checks under way and no failure is new, or gone once they end)
        self._entries: OrderedDict[str, tuple[float, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def wait(self, addr: str) -> float:
        """Seconds until `addr` may try a credential again; 0 when it may now (checks under way aside)."""
        with self._lock:
            entry = self._entries.get(addr)
        if entry is None or entry[1] < self.limit:
            return 0.0
        return max(0.0, entry[0] + self.window - self.clock())

    def take(self, addr: str) -> float:
        """Take one of `addr`'s tries for a credential check, to be ended with end(): 0. Or, with none left,
        the seconds to wait (nothing is taken then)."""
        now = self.clock()
        with self._lock:
            start, failures, checking = self._entry(addr, now)
            if failures >= self.limit:
                return max(0.0, start + self.window - now)
            if failures and failures + checking >= self.limit:
                # only once it has failed: a client with a right key, sending many requests at once, is
                # never turned away (an address's first burst may try as many keys as the server has threads)
                return self.BUSY_WAIT
            self._entries[addr] = (start, failures, checking + 1)
        return 0.0

    def end(self, addr: str, ok: bool) -> float:
        """End a check take() allowed: a right credential gives its try back, a wrong one counts as a
        failure. When that failure blocks the address, the seconds the block lasts, else 0."""
        return self._settle(addr, failed=not ok, ended=1)

    def fail(self, addr: str) -> float:
        """Count a failure from `addr` that no take() came before; the seconds of the block it starts, or 0."""
        return self._settle(addr, failed=True, ended=0)

    def _settle(self, addr: str, failed: bool, ended: int) -> float:
        now = self.clock()
        with self._lock:
            start, failures, checking = self._entry(addr, now)
            checking = max(0, checking - ended)     # 0 when the entry was pruned meanwhile
            if failed:
                if not failures:
                    start = now                     # the first failure opens the window
                failures += 1
            if failures or checking:
                self._entries[addr] = (start, failures, checking)
                if failed and failures == 1:
                    self._entries.move_to_end(addr)
            else:
                self._entries.pop(addr, None)       # a right credential, nothing else to remember
            if failed:
                self._prune(now)
        return start + self.window - now if failed and failures == self.limit else 0.0

    def _entry(self, addr: str, now: float) -> tuple[float, int, int]:
        start, failures, checking = self._entries.get(addr, (now, 0, 0))
        if failures and now >= start + self.window:
            failures = 0                            # the window has ended; checks under way stay counted
        return start, failures, checking

    def _prune(self, now: float) -> None:
        """Drop expired windows, then the oldest ones beyond the cap (those nearest their end)."""
        while self._entries:
            addr, (start, _, _) = next(iter(self._entries.items()))
            if now < start + self.window and len(self._entries) <= self.max_addresses:
                return
            del self._entries[addr]


def from_options(opts: dict) -> FailureThrottle | None:
    """The throttle `[backend] auth_fail_*` asks for; None when auth_fail_limit is 0 (off)."""
    limit = opts.get("auth_fail_limit", 10)
    window = opts.get("auth_fail_window", "1m")
    addresses = opts.get("auth_fail_addresses", 10_000)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"[backend] auth_fail_limit: expected a whole number of failures (0 = off); got {limit!r}")
    seconds = parse_duration(window, "[backend] auth_fail_window")
    if not seconds > 0:
        raise ConfigError(f"[backend] auth_fail_window: expected a duration above zero such as \"1m\"; got {window!r}")
    if isinstance(addresses, bool) or not isinstance(addresses, int) or addresses < 1:
        raise ConfigError(f"[backend] auth_fail_addresses: expected a whole number above zero; got {addresses!r}")
    return FailureThrottle(limit, seconds, addresses) if limit else None


def init_app(app: Flask, opts: dict) -> None:
    throttle = from_options(opts)
    if throttle is not None:
        app.extensions[EXTENSION] = throttle


def take_try() -> int:
    """Take one of the requesting address's tries before a credential is compared (end it with end_try):
    0. Or the whole seconds it must wait, and then its credential must not be looked at."""
    throttle: FailureThrottle | None = current_app.extensions.get(EXTENSION)
    if throttle is None:
        return 0
    wait = throttle.take(client_key(request.remote_addr))
    return max(1, math.ceil(wait)) if wait > 0 else 0


def end_try(wrong: bool, what: str) -> None:
    """End the check take_try() allowed: `wrong`, a wrong credential (`what`: "API key", "UI login"), counts
    as a failure; anything else (a right one, none at all) gives the try back."""
    throttle: FailureThrottle | None = current_app.extensions.get(EXTENSION)
    if throttle is None:
        return
    addr = client_key(request.remote_addr)
    blocked = throttle.end(addr, ok=not wrong)
    if blocked:
        # the address only: never the credential that was tried
        log.warning("too many failed logins: %s is refused for %d s after %d wrong credentials (%s)",
                    addr, math.ceil(blocked), throttle.limit, what)
