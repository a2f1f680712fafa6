"""Serve a WSGI app with waitress until SIGTERM or SIGINT, then shut down cleanly.

Why waitress: a production-grade WSGI server in pure Python (nothing to compile), with a
thread pool (our apps share one database engine and in-process background loops, which a
fork model would duplicate), and the same behaviour on Linux, macOS and Windows.
"""
from __future__ import annotations

import logging
import signal
from typing import Callable

from waitress import create_server

log = logging.getLogger(__name__)


def _stop(_signum, _frame) -> None:
    # waitress's run() ends its loop on SystemExit and then drains its worker threads.
    raise SystemExit(0)


def serve(app: Callable, host: str, port: int, threads: int = 8,
          on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve `app` on host:port (port 0 picks a free one) and return after SIGTERM/SIGINT."""
    server = create_server(app, host=host, port=port, threads=threads, ident="orderbridge")
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
