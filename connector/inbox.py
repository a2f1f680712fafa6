"""Raw webhook deliveries: stored (and committed) before they are acknowledged, replayable later."""
from __future__ import annotations

import json
from typing import Mapping

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from connector.store import INBOX_NEW, InboxDelivery, utcnow

_INBOX = InboxDelivery.__table__
_DROP_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(_INBOX).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        return sqlite_insert(_INBOX).on_conflict_do_nothing()
    return insert(_INBOX)


def record_delivery(session: Session, *, platform: str, shop: str, topic: str, headers: Mapping[str, str],
                    body: bytes, delivery_id: str | None = None) -> int | None:
    """Store one delivery; returns its id, or None when this delivery id was stored before.

    The caller commits before answering the platform.
    """
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}
    res = session.execute(_insert_ignoring_duplicates(session).values(
        platform=platform, shop=shop, topic=topic or "", delivery_id=delivery_id or None,
        headers=json.dumps(kept, sort_keys=True), body=body, received_at=utcnow(), state=INBOX_NEW, attempts=0,
    ))
    if res.rowcount == 0:
        return None
    return res.inserted_primary_key[0] if res.inserted_primary_key else None


def mark(session: Session, delivery_id: int, state: str, error: str | None = None) -> None:
    """Record what processing made of a delivery (done, ignored with a reason, failed with an error)."""
    session.execute(update(_INBOX).where(_INBOX.c.id == delivery_id).values(
        state=state, error=error, processed_at=utcnow(), attempts=_INBOX.c.attempts + 1))
