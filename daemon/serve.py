"""Serve a WSGI app with waitress until SIGTERM or SIGINT, then shut down cleanly.

Why waitress: a production-grade WSGI server in pure Python (nothing to compile), with a
thread pool (our apps share one database engine and in-process background loops, which a
fork model would duplicate), and the same behaviour on Linux, macOS and Windows.
"""
from __future__ import annotations

import logging
import signal
import time
from typing import Callable

from waitress import create_server

log = logging.getLogger(__name__)


class _OncePer(logging.Filter):
    """Let one record through per `seconds`, saying how many were held back since the last.

    waitress logs "Task queue depth is N" for every request queued while its threads are busy, and
    does it while holding its dispatcher lock: under a burst each worker that wants its next task
    waits behind a write to stderr, so the warning made the very backlog it reports (measured on the
    webhook benchmark: ~1 line per request). Once per period says the same thing."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.next_at, self.held = seconds, 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            self.held += 1
            return False
        if self.held:
            record.msg = f"{record.msg} (and {self.held} more such warnings since the last one shown)"
        self.next_at, self.held = now + self.seconds, 0
        return True


_queue_warnings = _OncePer(60.0)


def _stop(_signum, _frame) -> None:
    # waitress's run() ends its loop on SystemExit and then drains its worker threads.
    raise SystemExit(0)


def serve(app: Callable, host: str, port: int, threads: int = 8,
          on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve `app` on host:port (port 0 picks a free one) and return after SIGTERM/SIGINT."""
    queue_log = logging.getLogger("waitress.queue")
    if _queue_warnings not in queue_log.filters:
        queue_log.addFilter(_queue_warnings)
    # A 1000-order add-orders request is ~1.5 MB: keep bodies up to 8 MiB in memory instead of
    # waitress's default of spilling anything over 512 KiB to a temporary file.
    server = create_server(app, host=host, port=port, threads=threads, ident="orderbridge",
                           inbuf_overflow=8 * 1024 * 1024)
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready(server.effective_host, server.effective_port)
        server.run()
    finally:
        server.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("server on %s:%s stopped", host, port)
