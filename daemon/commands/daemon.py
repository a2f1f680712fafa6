"""`orderbridge daemon [--once]`: the scheduler (poll shops, process the inbox, flush the outbox)."""
from __future__ import annotations

HELP = "run the scheduler: poll shops, process the inbox, flush the outbox (--once: one cycle, for cron)"


def add_arguments(p) -> None:
    p.add_argument("--once", action="store_true",
                   help="run one full cycle and exit: 0 when everything due was delivered or failed for a data "
                        "reason, 1 when the target could not be reached or refused the credentials")


def run(args, config) -> int:
    from daemon.jobs import Runtime, require_key, run_cycle
    from daemon.scheduler import run_blocking

    require_key(config)
    rt = Runtime.create(config)
    try:
        if not args.once:
            return run_blocking(rt)
        cycle = run_cycle(rt)
        print(summary(cycle))
        return 1 if cycle.flush.stopped else 0
    finally:
        rt.engine.dispose()


def summary(cycle) -> str:
    f, i = cycle.flush, cycle.inbox
    line = (f"inbox: {i.done} done, {i.ignored} ignored, {i.failed} failed; polled {len(cycle.polled)} shops; "
            f"pushed: {f.sent} sent, {f.failed} failed, {f.retried} to retry")
    if f.refused:
        line += f"; stopped: {f.refused}"
    elif f.unreachable:
        line += f"; stopped: {f.unreachable}"
    return line
