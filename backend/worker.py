"""The backend's background loops (workflow runner, ...): threads beside the web server, or alone.

Each entry of BACKGROUND is `loop(app, stop_event)`: it works until `stop_event` is set, waiting
with `stop_event.wait(seconds)` between rounds, and keeps its state in the database only.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

from flask import Flask

from backend.workflows.runner import loop as workflow_loop

log = logging.getLogger(__name__)

Loop = Callable[[Flask, threading.Event], None]

# An explicit registry of the loops every backend process runs (one line per loop).
BACKGROUND: list[Loop] = [workflow_loop]


def _guarded(loop: Loop, app: Flask, stop: threading.Event) -> None:
    try:
        loop(app, stop)
    except Exception:
        log.exception("background loop %s stopped with an error", getattr(loop, "__name__", loop))


def start_background(app: Flask) -> threading.Event:
    """Start each loop of BACKGROUND in a daemon thread; set the returned event to stop them."""
    stop = threading.Event()
    threads = []
    for loop in BACKGROUND:
        t = threading.Thread(target=_guarded, args=(loop, app, stop), name=f"bg-{getattr(loop, '__name__', 'loop')}",
                             daemon=True)
        t.start()
        threads.append(t)
    app.extensions["orderbridge.background"] = threads
    return stop


def stop_background(app: Flask, stop: threading.Event, timeout: float = 10.0) -> None:
    """Ask the loops to stop and wait (up to `timeout` seconds each) for them to finish their round."""
    stop.set()
    for t in app.extensions.get("orderbridge.background", []):
        t.join(timeout)


def run_forever(app: Flask) -> None:
    """`orderbridge backend --worker`: run the loops, no HTTP, until SIGTERM or SIGINT."""
    stop = start_background(app)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("backend worker: %d background loop(s) running; stop with SIGTERM", len(BACKGROUND))
    while not stop.wait(1.0):
        pass
    stop_background(app, stop)
