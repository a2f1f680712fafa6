"""`orderbridge workflows load FILE` and `orderbridge workflows list`: workflow definitions in the backend DB."""
from __future__ import annotations

HELP = "load workflow definitions from a JSON or TOML file into the backend, or list them"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    load = sub.add_parser("load", help="create (or replace, by name) the workflows in FILE (.json or .toml)")
    load.add_argument("file", metavar="FILE")
    sub.add_parser("list", help="list the workflows with their runs in progress")


def read_definitions(path) -> list[dict]:
    """One workflow, or {"workflows": [...]}, from a JSON or TOML file."""
    import json
    import tomllib
    from pathlib import Path

    from connector.errors import InvalidInput

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read it ({e.strerror})") from None
    try:
        data = tomllib.loads(raw.decode()) if p.suffix.lower() == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
        raise InvalidInput(f"{path}: not valid {kind}: {e}") from None
    items = data.get("workflows", [data]) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(w, dict) for w in items):
        raise InvalidInput(f'{path}: expected a workflow object or {{"workflows": [...]}}')
    return items


def _load(engine, path) -> int:
    from datetime import datetime, timezone

    from sqlalchemy import select

    from backend.db import write_transaction
    from backend.workflows import repo
    from backend.workflows import storage as t
    from backend.workflows.definition import DefinitionError
    from connector.errors import InvalidInput

    now, done = datetime.now(timezone.utc), []
    with write_transaction(engine) as conn:    # all or nothing: one bad workflow loads none
        for i, raw in enumerate(read_definitions(path)):
            c = t.definitions.c
            same = conn.execute(select(c.id).where(c.name == str(raw.get("name", "")).strip(),
                                                   c.deleted_at.is_(None))).scalar()
            try:
                wf = repo.replace(conn, same, raw, now) if same else repo.create(conn, raw, now)
            except DefinitionError as e:
                raise InvalidInput(f"{path}: workflow #{i + 1} ({raw.get('name')!r}) is invalid: {e}") from None
            done.append(f"{'replaced' if same else 'created'} workflow {wf['id']}: {wf['name']}")
    print("\n".join(done))
    return 0


def _list(engine) -> int:
    from sqlalchemy import func, select

    from backend.workflows import repo
    from backend.workflows import storage as t

    with engine.connect() as conn:
        rows = conn.execute(repo.list_query().order_by(t.definitions.c.id)).all()
        r = t.runs.c
        running = dict(conn.execute(select(r.workflow_id, func.count()).where(r.state == t.IN_PROGRESS)
                                    .group_by(r.workflow_id)).all())
    if not rows:
        print("no workflows")
    for w in rows:
        state = "active  " if w.active else "inactive"
        print(f"{w.id:>4}  {state}  {w.start_event:<30} {running.get(w.id, 0):>6} in progress  {w.name}")
    return 0


def run(args, config) -> int:
    from backend.db import init_schema, make_engine

    engine = make_engine(config.backend.database)
    try:
        init_schema(engine)
        return _load(engine, args.file) if args.action == "load" else _list(engine)
    finally:
        engine.dispose()
