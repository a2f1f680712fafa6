"""The backend's batch insert stores exactly what a plain SQLAlchemy insert stores, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, text

from backend.db import insert_many, insert_rows, init_schema, make_engine, write_transaction
from backend.storage import Contact, Event

EVENTS, CONTACTS = Event.__table__, Contact.__table__


def test_insert_rows_matches_a_core_insert_column_for_column(db_url):
    engine = make_engine(db_url)
    init_schema(engine)
    at = datetime(2024, 5, 1, 10, 11, 12, 345678, tzinfo=timezone(timedelta(hours=3)))
    row = {"type": "orderDELIVERED", "key": "k-1", "contact_id": 7, "order_id": 9, "params": '{"a": 1}'}
    with write_transaction(engine) as conn:
        conn.execute(insert(EVENTS), [{**row, "created_at": at}])
        insert_rows(conn, EVENTS, [row], {"created_at": at})
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT type, key, contact_id, order_id, params, created_at FROM events ORDER BY id")).all()
        typed = conn.execute(select(EVENTS.c.created_at)).scalars().all()
    engine.dispose()
    assert raw[0] == raw[1]
    assert typed == [at, at] and typed[0].utcoffset() == timedelta(0)


def test_insert_many_returns_the_new_ids_in_row_order(db_url):
    engine = make_engine(db_url)
    init_schema(engine)
    now = datetime.now(timezone.utc)
    with write_transaction(engine) as conn:
        first = insert_many(conn, CONTACTS, [{"email": "a@x.io"}], {"created_at": now, "updated_at": now})
        ids = insert_many(conn, CONTACTS, [{"email": f"{i}@x.io"} for i in range(5)], {"created_at": now, "updated_at": now})
    with engine.connect() as conn:
        stored = dict(conn.execute(select(CONTACTS.c.id, CONTACTS.c.email)).all())
    engine.dispose()
    assert ids == sorted(ids) and first[0] not in ids
    assert [stored[i] for i in ids] == [f"{i}@x.io" for i in range(5)]
