"""`orderbridge outbox`: inspect and repair the outbox (and the inbox's failed deliveries)."""
from __future__ import annotations

import os
import sys

HELP = "inspect and repair the outbox: status | failed | requeue ID...|--all-failed | inbox-failed | replay ID...|--all-failed"
ACTIONS = ("status", "failed", "requeue", "inbox-failed", "replay")


def add_arguments(p) -> None:
    p.add_argument("action", nargs="?", default="status", choices=ACTIONS,
                   help="status (default): counts by state, oldest pending, last error; failed: each failed order "
                        "with its error; requeue: failed orders back to pending; inbox-failed: webhook deliveries "
                        "that could not be translated; replay: process such deliveries again")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox ids (requeue) or inbox ids (replay)")
    p.add_argument("--all-failed", action="store_true", help="requeue/replay every failed one")
    p.add_argument("--limit", type=int, default=None, help="list at most this many (failed, inbox-failed)")


def run(args, config) -> int:
    from connector.errors import InvalidInput
    from connector.store import init_db, make_engine

    if args.action in ("requeue", "replay") and not (args.ids or args.all_failed):
        raise InvalidInput(f"outbox {args.action}: give ids, or --all-failed")
    if args.action not in ("requeue", "replay") and (args.ids or args.all_failed):
        raise InvalidInput(f"outbox {args.action}: takes no ids")
    engine = make_engine(config.database)
    init_db(engine)
    try:
        return {"status": status, "failed": failed, "requeue": requeue, "inbox-failed": inbox_failed,
                "replay": replay}[args.action](engine, args, config)
    finally:
        engine.dispose()


def _age(dt, now) -> str:
    seconds = int((now - dt).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status(engine, args, config) -> int:
    from sqlalchemy.orm import Session

    from connector import outbox
    from connector.flush import paused_until
    from connector.store import utcnow
    now = utcnow()
    with Session(engine) as s:
        st = outbox.status(s, now)
    c = st.counts
    print(f"pending {c['pending']} (due now {st.due}), in flight {c['in_flight']}, sent {c['sent']}, failed {c['failed']}")
    print(f"oldest pending: {_age(st.oldest_pending, now) + ' ago' if st.oldest_pending else 'none'}"
          + (f"; next retry at {st.next_retry:%Y-%m-%d %H:%M:%S} UTC" if st.next_retry else ""))
    if (until := paused_until(engine, now)) is not None:
        print(f"pushing paused: the target asked to wait (Retry-After) until {until:%Y-%m-%d %H:%M:%S} UTC")
    print(f"last error: {st.last_error or 'none'}")
    _spool_status(engine, config)
    return 0


def _spool_status(engine, config) -> None:
    """Webhooks kept in this machine's spool while the database could not be used, if any."""
    from connector.spool import BAD_FOLDER, Spool
    from daemon.receiver import spool_dir
    folder = spool_dir(config, str(engine.url))
    if folder is None:
        return
    spool = Spool(folder)
    try:
        waiting = len(spool.waiting())
        bad = len(os.listdir(spool.folder / BAD_FOLDER)) if (spool.folder / BAD_FOLDER).is_dir() else 0
    except OSError as e:
        print(f"webhook spool {folder}: cannot be read: {e.strerror or e}")
        return
    if waiting:
        print(f"webhook spool: {waiting} deliveries wait in {folder} (kept while the database could not be used); "
              "a running receiver moves them into the inbox")
    if bad:
        print(f"webhook spool: {bad} deliveries could not be stored and are kept in {spool.folder / BAD_FOLDER} "
              "(the receiver's log says why)")


def failed(engine, args, config) -> int:
    from sqlalchemy.orm import Session

    from connector import outbox
    from connector.store import utcnow
    n = 0
    with Session(engine) as s:
        for row in outbox.failed_rows(s, args.limit):
            n += 1
            print(f"{row.id}\t{row.shop}\t{row.external_order_id}\tattempts {row.attempts}\t{row.last_error}")
        total = outbox.status(s, utcnow()).counts["failed"] if args.limit is not None else n
    shown = f"{total} failed" + (f" ({n} listed; raise --limit to see more)" if total > n else "")
    print(shown + ("" if not total else "; fix the cause, then `orderbridge outbox requeue ID...` or --all-failed"),
          file=sys.stderr)
    return 0


def requeue(engine, args, config) -> int:
    from sqlalchemy.orm import Session

    from connector import outbox
    from connector.store import utcnow
    with Session(engine) as s:
        r = outbox.requeue(s, None if args.all_failed else args.ids, utcnow())
        s.commit()
    print(f"requeued {len(r.requeued)}")
    if r.superseded:
        print(f"not requeued, a newer version of the order exists: {' '.join(map(str, r.superseded))}")
    if r.not_failed:
        print(f"not failed (or unknown): {' '.join(map(str, r.not_failed))}", file=sys.stderr)
        return 1
    return 0


def inbox_failed(engine, args, config) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from connector.store import INBOX_FAILED, InboxDelivery
    t = InboxDelivery.__table__
    q = select(t.c.id, t.c.platform, t.c.shop, t.c.topic, t.c.received_at, t.c.error).where(
        t.c.state == INBOX_FAILED).order_by(t.c.id)
    n = 0
    with Session(engine) as s:
        for row in s.execute(q.limit(args.limit) if args.limit else q):
            n += 1
            print(f"{row.id}\t{row.platform}/{row.shop}\t{row.topic}\t{row.received_at:%Y-%m-%d %H:%M:%S}\t{row.error}")
    print(f"{n} failed deliveries" + ("" if not n else "; fix the cause, then `orderbridge outbox replay ID...` or --all-failed"),
          file=sys.stderr)
    return 0


def replay(engine, args, config) -> int:
    from sqlalchemy import select

    from connector.store import INBOX_DONE, INBOX_FAILED, INBOX_IGNORED, InboxDelivery
    from daemon.jobs import Runtime, inbox_states, process_inbox, replay_inbox
    t = InboxDelivery.__table__
    unknown: list[int] = []
    if not args.all_failed:   # like requeue: an id that is not a failed delivery is named, not skipped quietly
        with engine.connect() as conn:
            failed = set(conn.execute(select(t.c.id).where(t.c.id.in_(args.ids), t.c.state == INBOX_FAILED)).scalars())
        unknown = [i for i in args.ids if i not in failed]
    replayed = replay_inbox(engine, None if args.all_failed else args.ids)
    # The inbox is processed oldest first, so new deliveries waiting behind the replayed ones go too (as the
    # daemon would take them); the report and the exit code are about the replayed ones, the rest is counted.
    report = process_inbox(Runtime.create(config, engine))
    states = inbox_states(engine, replayed)
    done, ignored, again = states.get(INBOX_DONE, 0), states.get(INBOX_IGNORED, 0), states.get(INBOX_FAILED, 0)
    print(f"replayed {len(replayed)}: {done} done, {ignored} ignored, {again} failed again")
    if (others := report.total - (done + ignored + again)) > 0:
        print(f"also processed {others} other new deliveries ({max(0, report.done - done)} done, "
              f"{max(0, report.ignored - ignored)} ignored, {max(0, report.failed - again)} failed)")
    if unknown:
        print(f"not failed deliveries (or unknown): {' '.join(map(str, unknown))}", file=sys.stderr)
    return 0 if again == 0 and not unknown else 1