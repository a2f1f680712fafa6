"""The daemon's clock: APScheduler runs the jobs of daemon/jobs.py; it holds no work of its own.

Every job has max_instances=1 and coalesce=True, so a slow flush is never run twice at once and a
missed tick is not replayed. SIGTERM/SIGINT set the stop signal: the flush finishes the batch in
flight, settles it, and the process exits.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timezone

from connector import database
from daemon import jobs

log = logging.getLogger(__name__)


class DatabaseTrouble:
    """The jobs' database trouble (a full disk, a lock held for long, a server restarting) as one line:
    the first failure, the same reason again at most once a `repeat_every` while it lasts, and one line
    when every job that failed has worked again. Every job retries on its next tick, so nothing is lost
    meanwhile. Anything else a job raises is a bug: it goes on to APScheduler, which logs its traceback."""

    def __init__(self, every: float, repeat_every: float = 60.0):
        self.every, self.repeat_every = every, repeat_every
        self.reason: str | None = None
        self.failing: set[str] = set()
        self.next_at = 0.0
        self.held = 0
        self.lock = threading.Lock()

    def guard(self, name: str, fn):
        def run(*args):
            try:
                result = fn(*args)
            except Exception as e:
                if not database.is_unavailable(e):
                    raise
                self.failed(name, database.unavailable_reason(e))
                return None
            self.worked(name)
            return result
        run.__name__ = run.__qualname__ = name      # what APScheduler names in its own messages
        return run

    def failed(self, job: str, reason: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.failing.add(job)
            if reason == self.reason and now < self.next_at:
                self.held += 1
                return
            held, self.held = self.held, 0
            self.reason, self.next_at = reason, now + self.repeat_every
        log.error("%s: the connector database cannot be used: %s; nothing is lost, the jobs try again every %gs%s",
                  job, reason, self.every, f" ({held} more such failures since the last line)" if held else "")

    def worked(self, job: str) -> None:
        with self.lock:
            if job not in self.failing:
                return
            self.failing.discard(job)
            if self.failing:
                return
            self.reason, self.held = None, 0
        log.warning("the connector database works again")


def add_jobs(scheduler, rt: jobs.Runtime) -> None:
    d = rt.config.daemon
    every = max(d.flush_every, 0.05)
    now = datetime.now(timezone.utc)
    trouble = DatabaseTrouble(every)
    common = dict(trigger="interval", max_instances=1, coalesce=True, misfire_grace_time=None, next_run_time=now)
    for name, fn, seconds in (("sweep_leases", jobs.sweep_leases, every), ("process_inbox", jobs.process_inbox, every),
                              ("flush", jobs.flush, every), ("poll_shops", jobs.poll_shops, max(d.poll_every, 1.0))):
        scheduler.add_job(trouble.guard(name, fn), args=[rt], id=name, seconds=seconds, **common)


def watch_clock(scheduler, stop: threading.Event, every: float = 1.0, wall=None) -> threading.Thread:
    """APScheduler keeps each job's next run as a wall-clock time: when the system clock is set back (an NTP
    step, a VM resumed from a snapshot), no job runs until the clock catches up, an hour for an hour, and
    nothing says why. This thread compares the wall clock with the monotonic one; when the wall clock went
    back, every job is set to run now, and the log says so."""
    wall = wall or (lambda: datetime.now(timezone.utc))

    def watch() -> None:
        base_wall, base_mono = wall(), time.monotonic()
        while not stop.wait(every):
            now_wall, now_mono = wall(), time.monotonic()
            behind = (base_wall - now_wall).total_seconds() + (now_mono - base_mono)
            base_wall, base_mono = now_wall, now_mono
            if behind <= 1.0:
                continue
            log.warning("the system clock went back by %.0f s: the daemon's jobs run now instead of waiting for it",
                        behind)
            try:
                for job in scheduler.get_jobs():
                    job.modify(next_run_time=now_wall)
                scheduler.wakeup()
            except Exception:       # noqa: BLE001 - the scheduler is shutting down
                return
    t = threading.Thread(target=watch, name="clock-watch", daemon=True)
    t.start()
    return t


def _quiet_apscheduler() -> None:
    # At flush_every="1s" APScheduler would log every run and every skipped overlapping tick.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def started_line(rt: jobs.Runtime) -> str:
    """What the daemon does, said once at its start: an operator sees at once where orders go and what is polled."""
    d, shops = rt.config.daemon, jobs.polled_shops(rt.config)
    polled = (f"polling {', '.join(shops)} every {d.poll_every:g}s" if shops
              else "polling no shop (none has API credentials set)")
    return (f"daemon started: pushing to {rt.config.target.url} every {d.flush_every:g}s; {polled}; "
            "Ctrl-C or SIGTERM stops it")


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
    log.info("%s", started_line(rt))
    try:
        watch_clock(scheduler, rt.stop)
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
    watch_clock(scheduler, rt.stop)

    def stop() -> None:
        rt.stop.set()
        scheduler.shutdown(wait=True)
    return stop
