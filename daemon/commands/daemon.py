"""`orderbridge daemon [--once]`: the scheduler (poll shops, process the inbox, flush the outbox)."""
from __future__ import annotations

HELP = "run the scheduler: poll shops, process the inbox, flush the outbox (--once: one cycle, for cron)"


def add_arguments(p) -> None:
    p.add_argument("--once", action="store_true",
                   help="run one full cycle and exit: 0 when everything pending was delivered or failed for a "
                        "data reason, 1 while the target could not be reached, asked to wait or refused the credentials")


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
        if cycle.flush.stopped:
            return 1
        return 1 if waiting(rt) else 0
    finally:
        rt.engine.dispose()


def waiting(rt) -> bool:
    """Orders that wait for another attempt after the target failed them (or asked us to wait): the target
    is still not taking them, even when this cycle found nothing due. Said on one line, for cron's mail."""
    from sqlalchemy.orm import Session

    from connector import outbox
    from connector.flush import paused_until
    from connector.store import utcnow
    now = utcnow()
    with Session(rt.engine) as s:
        st = outbox.status(s, now)
    until = paused_until(rt.engine, now)
    if st.next_retry is None and until is None:
        return False
    when = max(t for t in (st.next_retry, until) if t is not None)
    print(f"not delivered yet: {st.counts['pending']} pending wait for the target (next try {when:%Y-%m-%d %H:%M:%S} UTC)"
          + (f"; last error: {st.last_error}" if st.last_error else ""))
    return True


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
