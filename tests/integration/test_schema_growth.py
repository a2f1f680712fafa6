"""A database made by an earlier release gains the indexes added since, on the next start.

create_all skips a table that exists, indexes included; the report indexes of the backend and the
outbox's claim index were once new. Checked on SQLite and, when configured, PostgreSQL.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.db import init_schema, make_engine as backend_engine
from connector.store import init_db, make_engine as store_engine


def index_names(engine, table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes(table)}


@pytest.mark.parametrize("make, init, dropped, expected", [
    (backend_engine, init_schema, ("ix_orders_report", "ix_workflow_runs_tab"),
     {"orders": {"ix_orders_report", "ix_orders_status_date"}, "workflow_runs": {"ix_workflow_runs_tab"}}),
    (store_engine, init_db, ("ix_outbox_due",), {"outbox": {"ix_outbox_due", "ix_outbox_order"}}),
], ids=["backend", "connector-store"])
def test_a_start_builds_the_indexes_missing_from_existing_tables(db_url, make, init, dropped, expected):
    engine = make(db_url)
    try:
        init(engine)
        with engine.begin() as conn:
            for name in dropped:            # as a database made before these indexes existed
                conn.exec_driver_sql(f"DROP INDEX {name}")
        assert not any(set(dropped) & index_names(engine, table) for table in expected)
        init(engine)                        # the next start
        for table, names in expected.items():
            assert names <= index_names(engine, table)
        init(engine)                        # and the one after: nothing to do, no error
    finally:
        engine.dispose()


def test_both_engines_keep_their_sqlite_settings(tmp_path):
    store, backend = store_engine(f"sqlite:///{tmp_path}/s.db"), backend_engine(f"sqlite:///{tmp_path}/b.db")
    try:
        for engine in (store, backend):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1        # NORMAL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        with store.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with backend.connect() as conn:         # the backend begins its own transactions (write_transaction)
            assert conn.connection.dbapi_connection.isolation_level is None
    finally:
        store.dispose()
        backend.dispose()


def test_a_new_sqlite_file_gets_16k_pages_and_an_existing_one_keeps_its_own(tmp_path):
    import sqlite3
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:        # a file made by an earlier release, 4 KiB pages, WAL
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE earlier (x)")
    conn.close()
    for path, size in ((tmp_path / "new.db", 16384), (old, 4096)):
        engine = store_engine(f"sqlite:///{path}")
        try:
            init_db(engine)
            with engine.connect() as c:
                assert c.exec_driver_sql("PRAGMA page_size").scalar() == size
                assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            engine.dispose()
