"""The backend's database engine (SQLite in WAL mode, or PostgreSQL) and its schema creation."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from datetime import datetime, timezone
from operator import itemgetter
from typing import Iterator

from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Connection, Engine

from connector import database

# Modules that own backend tables, in creation order; each exposes `TABLES` (sqlmodel classes).
# An explicit registry: a new area of the backend adds its module here with a one-line edit.
TABLE_MODULES: list[str] = ["backend.storage", "backend.segments", "backend.workflows.storage"]


def _sqlite_autocommit(dbapi_conn, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin): pysqlite's own implicit BEGIN
    # comes too late (only before DML) to take the write lock before our reads.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction that reads first must take the write lock up front: in WAL mode a
    # read transaction that later writes fails at once (SQLITE_BUSY_SNAPSHOT) if another
    # writer committed meanwhile, without waiting on busy_timeout.
    mode = conn.get_execution_options().get("sqlite_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _sqlite_listeners(engine: Engine) -> None:
    event.listen(engine, "connect", _sqlite_autocommit)
    event.listen(engine, "begin", _sqlite_begin)


def make_engine(url: str) -> Engine:
    """An engine for the backend database; creates the folder of a SQLite file."""
    return database.make_engine(url, on_sqlite=_sqlite_listeners)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its first read."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        yield conn


def all_tables() -> list:
    """Every backend table, from the modules in TABLE_MODULES."""
    out = []
    for name in TABLE_MODULES:
        out += [m.__table__ for m in importlib.import_module(name).TABLES]
    return out


def init_schema(engine: Engine) -> None:
    """Create the missing backend tables and indexes (idempotent; additive only, see README "Migrations")."""
    database.create_missing(engine, all_tables())


def iso(dt: datetime | None) -> str | None:
    """A stored datetime as ISO 8601 with its UTC offset, as the API shows it.

    sqlmodel's datetime columns take aware datetimes and give them back in UTC, on SQLite too.
    """
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).isoformat()


def get_engine() -> Engine:
    """The engine of the current Flask app (set by create_app)."""
    from flask import current_app
    return current_app.extensions["orderbridge.engine"]


def _bind_processor(column, dialect):
    # dialect_impl: the type as this dialect stores it (e.g. SQLite's DATETIME text format).
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def insert_rows(conn: Connection, table, rows: list[dict], const: dict | None = None) -> None:
    """INSERT `rows` (all with the same keys) plus the same `const` values in each, in one DBAPI executemany.

    Values are converted by their column type's own bind processor for this dialect, as
    SQLAlchemy would; its per-row parameter machinery, measured, cost more than SQLite's own
    work on 1000-row batches (bench/ingest.py --profile), so the rows go to the driver directly.
    """
    if not rows:
        return
    const = const or {}
    dialect = conn.dialect
    keys, tail = list(rows[0]), tuple(_bound(table.c[k], v, dialect) for k, v in const.items())
    prep = dialect.identifier_preparer
    mark = _mark(dialect)
    cols = ", ".join(prep.quote(c) for c in keys + list(const))
    sql = f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({', '.join([mark] * (len(keys) + len(const)))})"
    get = itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: (r[k],))
    procs = [(i, p) for i, k in enumerate(keys) if (p := _bind_processor(table.c[k], dialect))]
    if not procs:
        params = [get(r) + tail for r in rows]
    else:
        params = []
        for r in rows:
            v = list(get(r))
            for i, p in procs:
                if v[i] is not None:
                    v[i] = p(v[i])
            params.append(tuple(v) + tail)
    conn.exec_driver_sql(sql, params)


def _mark(dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def select_in(conn: Connection, table, columns: tuple[str, ...], key: str, values, *, where: str = "",
              order_by: str | None = None, for_update: bool = False) -> list:
    """Rows (tuples of `columns`) of `table` whose `key` is one of `values`, in one driver-level query.

    `where` is an extra SQL condition (no parameters). For keys and columns without bind/result
    processing (ids, text). SQLAlchemy renders an IN list anew on each execution, about a microsecond
    per value (bench/ingest.py --profile), and intake looks up a thousand keys several times a request.
    `for_update` locks the rows on PostgreSQL (SQLite has no row locks: its writer holds the database).
    """
    values = list(values)
    if not values:
        return []
    dialect = conn.dialect
    prep = dialect.identifier_preparer
    sql = (f"SELECT {', '.join(prep.quote(c) for c in columns)} FROM {prep.format_table(table)}"
           f" WHERE {prep.quote(key)} IN ({', '.join([_mark(dialect)] * len(values))})")
    if where:
        sql += f" AND {where}"
    if order_by:
        sql += f" ORDER BY {prep.quote(order_by)}"
    if for_update and dialect.name != "sqlite":
        sql += " FOR UPDATE"
    return conn.exec_driver_sql(sql, tuple(values)).fetchall()


def _bound(column, value, dialect):
    p = _bind_processor(column, dialect)
    return p(value) if p and value is not None else value


def insert_many(conn: Connection, table, rows: list[dict], const: dict | None = None) -> list[int]:
    """Insert rows in one batch and return their new ids, in the order of `rows`.

    PostgreSQL returns them in order from a batched INSERT ... RETURNING. SQLite cannot promise
    RETURNING order for a batch (SQLAlchemy then falls back to one statement per row, ~10x slower),
    so there the ids are given explicitly, after the largest: safe because every writer holds
    SQLite's single write lock for its whole transaction, and the ids are what SQLite would pick.
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        rows = [{**r, **(const or {})} for r in rows]
        return conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
    start = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    ids = list(range(start + 1, start + 1 + len(rows)))
    insert_rows(conn, table, [{"id": i, **r} for r, i in zip(rows, ids)], const)
    return ids
