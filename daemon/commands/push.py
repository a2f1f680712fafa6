"""`orderbridge push`: flush the outbox now, until nothing is due."""
from __future__ import annotations

HELP = "push the outbox to the target now, until nothing is due (with a progress bar)"


def add_arguments(p) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--retry-now", action="store_true",
                   help="also send the pending orders waiting for a later retry, and ignore the target's "
                        "Retry-After (after fixing the target, or once it is back)")


def make_all_due(engine, now) -> int:
    """Pending rows waiting on the retry schedule become due now; their attempt counts are kept."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from connector.store import PENDING, OutboxRow
    t = OutboxRow.__table__
    with Session(engine) as s:
        n = s.execute(update(t).where(t.c.state == PENDING, t.c.next_attempt_at > now)
                      .values(next_attempt_at=now)).rowcount
        s.commit()
    return n


def run(args, config) -> int:
    import time

    from sqlalchemy.orm import Session
    from tqdm import tqdm

    from connector import outbox
    from connector.flush import clear_pause
    from connector.store import utcnow
    from daemon.jobs import Runtime, flush, require_key, sweep_leases

    require_key(config)
    rt = Runtime.create(config)
    try:
        sweep_leases(rt)
        if args.retry_now:
            clear_pause(rt.engine)
            make_all_due(rt.engine, utcnow())
        with Session(rt.engine) as s:
            due = outbox.status(s, utcnow()).due
        t0 = time.perf_counter()
        with tqdm(total=due, unit="order", disable=args.quiet or None, desc="push") as bar:
            report = flush(rt, progress=lambda r: bar.update(r.sent + r.failed + r.retried))
        elapsed = time.perf_counter() - t0
        done = report.sent + report.failed
        print(f"sent {report.sent}, failed {report.failed}, to retry {report.retried} "
              f"in {elapsed:.1f} s ({done / elapsed if elapsed else 0:.0f} orders/s)")
        if report.stopped:
            print(f"stopped: {report.refused or report.unreachable}")
            return 1
        if report.paused:
            print(f"paused: {report.paused}")
        with Session(rt.engine) as s:
            left = outbox.status(s, utcnow())
        if left.next_retry is not None or report.paused:   # not due yet: say so, or `push` looks like it did nothing for no reason
            when = f" (next at {left.next_retry:%Y-%m-%d %H:%M:%S} UTC)" if left.next_retry is not None else ""
            print(f"{left.counts['pending']} pending wait for a retry{when}; "
                  "`orderbridge push --retry-now` sends them now")
        return 0
    finally:
        rt.engine.dispose()
