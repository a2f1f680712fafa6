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
    failed_polls = {name: r for name, r in cycle.polled.items() if isinstance(r, str)}
    polled = f"polled {len(cycle.polled) - len(failed_polls)} shops"
    if failed_polls:   # a cron user sees only this line: a shop that could not be polled is named here
        polled += "; poll failed for " + "; ".join(f"{name} ({err})" for name, err in failed_polls.items())
    line = (f"inbox: {i.done} done, {i.ignored} ignored, {i.failed} failed; {polled}; "
            f"pushed: {f.sent} sent, {f.failed} failed, {f.retried} to retry")
    if f.refused:
        line += f"; stopped: {f.refused}"
    elif f.unreachable:
        line += f"; stopped: {f.unreachable}"
    elif f.paused:
        line += f"; paused: {f.paused}"
    return line
