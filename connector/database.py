"""Database plumbing the connector store and the bundled backend both use: engines and schema creation.

No tables and no state live here. The connector's store (connector/store.py) and the backend
(backend/db.py) each own their tables and databases; what they share is how an engine is made for
a URL (SQLite in WAL mode, or PostgreSQL through psycopg 3) and how a schema grows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connector.errors import ConfigError

# Durable across process crashes in WAL mode; a writer waits up to 30 s for the lock.
# 16 KiB pages for a new file (SQLite sets the size only before the first table, and never once in WAL
# mode, so it comes first; an existing file keeps its own): rows carry an order's JSON (about 700 bytes),
# and larger pages mean fewer page writes and splits; a million-row CSV import spends about a tenth less
# CPU in SQLite (bench/csv_import.py).
SQLITE_PRAGMAS = ("page_size=16384", "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000")


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def missing_driver(url: str, module: str | None) -> str:
    """What to install for a database URL whose driver is missing (psycopg ships with the `postgres` extra)."""
    if url.startswith("postgresql"):
        return ("a PostgreSQL database needs the postgres extra, which is not installed: "
                "run .venv/bin/pip install -e '.[postgres]'")
    return f"the database driver {module or '?'} for {url.split(':', 1)[0]} is not installed"


def make_engine(url: str, *, pragmas: Iterable[str] = (),
                on_sqlite: Callable[[Engine], None] | None = None) -> Engine:
    """An engine for `url`; creates the folder of a SQLite file.

    SQLite connections get SQLITE_PRAGMAS and then `pragmas`; `on_sqlite` may add listeners of its own."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        try:
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        except ModuleNotFoundError as e:
            raise ConfigError(missing_driver(url, e.name)) from None
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the folder of the database {path}: {e.strerror or e}") from None
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    every = (*SQLITE_PRAGMAS, *pragmas)

    def _pragmas(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        for pragma in every:
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    event.listen(engine, "connect", _pragmas)
    if on_sqlite is not None:
        on_sqlite(engine)
    return engine


def create_missing(engine: Engine, tables: list[Table]) -> None:
    """Create the tables that are missing, and the indexes missing from tables that exist.

    create_all skips a table that exists together with its indexes, so an index added in a later
    release would never reach a database made before it; each index is therefore checked on its own
    (one catalogue look-up per index at start; building one on a large table takes a while, once)."""
    SQLModel.metadata.create_all(engine, tables=tables)
    for table in tables:
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            index.create(engine, checkfirst=True)


def advisory_locks(conn, keys: Iterable[str], space: int) -> None:
    """PostgreSQL: hold, until the transaction ends, one lock per key (any text without NUL), taken in one
    order by every transaction, so two that need the same keys queue instead of deadlocking. `space`
    keeps one user's keys apart from another's (the connector store and the backend may share a
    database). `conn` is a Connection or a Session; on other databases nothing happens."""
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    names = sorted(set(keys))
    if bind.dialect.name != "postgresql" or not names:
        return
    conn.execute(text("SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT hashtextextended(k, :space) AS h "
                      "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"), {"keys": names, "space": space})


def take_write_lock(session) -> None:
    """SQLite: take the database's write lock now (BEGIN IMMEDIATE), unless this transaction holds it
    already, so what it reads next stays true until it commits: another writer waits instead of
    committing between our read and our write. Other databases: nothing (they lock rows or keys)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    dbapi = session.connection().connection.driver_connection
    if not dbapi.in_transaction:
        dbapi.execute("BEGIN IMMEDIATE")


# What says the database, not the statement, failed. PostgreSQL: SQLSTATE classes 08 (connection), 40
# (serialization failure, deadlock), 53 (disk full, out of memory, too many connections), 57 (shutdown, cancel),
# 58 (I/O), and 55P03/55006 (a lock or object held by another session). psycopg files class 54 (program limit
# exceeded: an index row too large for its btree, too many columns) under OperationalError as well, yet it is
# the data's fault and fails the same way every time: taken for "unavailable", one such delivery would stay
# `new` and hold up the inbox behind it for good. SQLite: the primary result codes for busy, locked, out of
# memory, read-only, I/O error, corrupt, full, cannot open and lock protocol; SQLITE_ERROR (1) is the
# statement's own (too many variables, a malformed JSON argument).
_PG_UNAVAILABLE_CLASSES = ("08", "40", "53", "57", "58")
_PG_UNAVAILABLE_STATES = ("55P03", "55006", "25006")   # 25006: a standby reached during a failover is read-only
_SQLITE_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15})


def _codes(e: BaseException) -> tuple[str | None, int | None]:
    """(PostgreSQL SQLSTATE, SQLite primary result code) of a driver error, raw or wrapped by SQLAlchemy."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError
    orig = getattr(e, "orig", None) if isinstance(e, DBAPIError) else e
    sqlstate = getattr(orig, "sqlstate", None)
    code = getattr(orig, "sqlite_errorcode", None)
    return (sqlstate if isinstance(sqlstate, str) and sqlstate else None,
            code & 0xFF if isinstance(orig, sqlite3.Error) and isinstance(code, int) else None)


def is_unavailable(e: BaseException) -> bool:
    """True when `e` says the database could not be used (connection lost, server restarting, locked past the
    busy timeout, disk full), as opposed to something wrong with the data: the same work can succeed later."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    if isinstance(e, PoolTimeout):          # every pooled connection busy: the same work can succeed later
        return True
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    sqlstate, code = _codes(e)
    if sqlstate is not None:
        return sqlstate[:2] in _PG_UNAVAILABLE_CLASSES or sqlstate in _PG_UNAVAILABLE_STATES
    if code is not None:
        return code in _SQLITE_UNAVAILABLE_CODES
    # no code to go by (a driver without one, an error raised by hand): the exception's kind decides
    return isinstance(e, (OperationalError, InterfaceError, sqlite3.OperationalError))


_PG_DATA_CLASSES = ("22", "23", "54")         # data exception, integrity, program limit (a value too large to index)
_SQLITE_DATA_CODES = frozenset({18, 19, 20, 25})  # TOOBIG, CONSTRAINT, MISMATCH, RANGE


def refuses_the_data(e: BaseException) -> bool:
    """True when `e` says the database will never take these values (as opposed to being down, or set up
    wrongly: a missing grant or table is fixed by a person, and the same work then succeeds)."""
    from sqlalchemy.exc import DataError, IntegrityError
    if isinstance(e, (DataError, IntegrityError)):
        return True
    sqlstate, code = _codes(e)
    if sqlstate is not None:
        return sqlstate[:2] in _PG_DATA_CLASSES
    return code in _SQLITE_DATA_CODES


def unavailable_reason(e: BaseException) -> str:
    """The driver's own first line, for a log or a message: no SQL, no parameters, no password."""
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
