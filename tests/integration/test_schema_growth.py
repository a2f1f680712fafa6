"""A database made by an earlier release gains the indexes added since, on the next start.

create_all skips a table that exists, indexes included; the report indexes of the backend and the
outbox's claim index were once new. Checked on SQLite and, when configured, PostgreSQL.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.db import init_schema, make_engine as backend_engine
from connector.store import init_db, make_engine as store_engine


def index_names(engine, table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes(table)}


def test_the_backend_gains_indexes_missing_from_existing_tables(db_url):
    engine = backend_engine(db_url)
    try:
        init_schema(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_orders_report")
            conn.exec_driver_sql("DROP INDEX ix_workflow_runs_tab")
        assert "ix_orders_report" not in index_names(engine, "orders")
        init_schema(engine)                 # the next start
        assert {"ix_orders_report", "ix_orders_status_date"} <= index_names(engine, "orders")
        assert "ix_workflow_runs_tab" in index_names(engine, "workflow_runs")
        init_schema(engine)                 # and the one after: nothing to do, no error
    finally:
        engine.dispose()


def test_the_connector_store_gains_indexes_missing_from_existing_tables(db_url):
    engine = store_engine(db_url)
    try:
        init_db(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_outbox_due")
        init_db(engine)
        assert {"ix_outbox_due", "ix_outbox_order"} <= index_names(engine, "outbox")
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
