"""The daemon's clock: APScheduler runs the jobs of daemon/jobs.py; it holds no work of its own.

Every job has max_instances=1 and coalesce=True, so a slow flush is never run twice at once and a
missed tick is not replayed. SIGTERM/SIGINT set the stop signal: the flush finishes the batch in
flight, settles it, and the process exits.
"""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone

from daemon import jobs

log = logging.getLogger(__name__)


def add_jobs(scheduler, rt: jobs.Runtime) -> None:
    d = rt.config.daemon
    every = max(d.flush_every, 0.05)
    now = datetime.now(timezone.utc)
    common = dict(trigger="interval", max_instances=1, coalesce=True, misfire_grace_time=None, next_run_time=now)
    scheduler.add_job(jobs.sweep_leases, args=[rt], id="sweep_leases", seconds=every, **common)
    scheduler.add_job(jobs.process_inbox, args=[rt], id="process_inbox", seconds=every, **common)
    scheduler.add_job(jobs.flush, args=[rt], id="flush", seconds=every, **common)
    scheduler.add_job(jobs.poll_shops, args=[rt], id="poll_shops", seconds=max(d.poll_every, 1.0), **common)


def _quiet_apscheduler() -> None:
    # At flush_every="1s" APScheduler would log every run and every skipped overlapping tick.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def run_blocking(rt: jobs.Runtime) -> int:
    """`orderbridge daemon`: run until SIGTERM/SIGINT, then finish the batch in flight and return."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    _quiet_apscheduler()
    scheduler = BlockingScheduler(timezone=timezone.utc)
    add_jobs(scheduler, rt)
    stopper: list[threading.Thread] = []

    def on_signal(signum, _frame) -> None:
        if rt.stop.is_set():
            return
        log.info("signal %d: finishing the batch in flight, then exiting", signum)
        rt.stop.set()
        # Shut down from another thread: the handler may have interrupted the scheduler holding a lock.
        t = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, name="shutdown")
        t.start()
        stopper.append(t)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
    finally:
        for t in stopper:
            t.join()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def start_background(rt: jobs.Runtime):
    """For `orderbridge up`: the same jobs in a BackgroundScheduler; returns a function that stops them."""
    from apscheduler.schedulers.background import BackgroundScheduler
    _quiet_apscheduler()
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    add_jobs(scheduler, rt)
    scheduler.start()

    def stop() -> None:
        rt.stop.set()
        scheduler.shutdown(wait=True)
    return stop
