"""Poller and backfill positions in the `cursors` table, written in the caller's transaction."""
from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.store import Cursor, utcnow

_T = Cursor.__table__


def read(session: Session, shop: str, name: str) -> dict | None:
    row = session.execute(select(_T.c.value).where(_T.c.shop == shop, _T.c.name == name)).first()
    return json.loads(row[0]) if row else None


def write(session: Session, shop: str, name: str, value: dict) -> None:
    session.merge(Cursor(shop=shop, name=name, value=json.dumps(value, sort_keys=True), updated_at=utcnow()))


def clear(session: Session, shop: str, name: str) -> None:
    session.execute(delete(_T).where(_T.c.shop == shop, _T.c.name == name))
