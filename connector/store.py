"""The durable connector store: inbox, outbox, order heads, cursors and push attempts (sqlmodel).

SQLite (WAL) is the embedded default; a PostgreSQL URL runs several receivers and daemons
side by side. The schema is created on start (`init_db`); see README "Migrations".
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine

PENDING, IN_FLIGHT, SENT, FAILED = "pending", "in_flight", "sent", "failed"
OUTBOX_STATES = (PENDING, IN_FLIGHT, SENT, FAILED)

# inbox states: stored, translated into the outbox, ignored on purpose (with the reason), failed
INBOX_NEW, INBOX_DONE, INBOX_IGNORED, INBOX_FAILED = "new", "done", "ignored", "failed"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class InboxDelivery(SQLModel, table=True):
    """One raw webhook delivery, committed before it is acknowledged."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "shop", "delivery_id", name="uq_inbox_delivery"),
        Index("ix_inbox_state", "state", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str
    shop: str
    topic: str = ""
    delivery_id: Optional[str] = None        # X-Shopify-Webhook-Id / X-WC-Webhook-Delivery-ID
    headers: str = Field(default="{}", sa_column=Column(Text, nullable=False))   # JSON, secrets removed
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
    state: str = INBOX_NEW
    attempts: int = 0
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    processed_at: Optional[datetime] = None


class OutboxRow(SQLModel, table=True):
    """One version of one order, on its way to the target."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at", "id"),     # the claim scans this in order
        Index("ix_outbox_order", "external_order_id", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    shop: str
    external_order_id: str
    payload: str = Field(sa_column=Column(Text, nullable=False))       # canonical wire JSON
    content_hash: str
    source: str = ""                      # webhook:<id> / poll / csv:<file>:<line> / enqueue
    state: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: Optional[str] = None
    lease_until: Optional[datetime] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: Optional[datetime] = None


class OrderHead(SQLModel, table=True):
    """The last version enqueued for an order: dedupe by hash, and refuse older source versions."""

    __tablename__ = "order_heads"
    shop: str = Field(primary_key=True)
    external_order_id: str = Field(primary_key=True)
    content_hash: str
    source_updated_at: Optional[datetime] = None    # the platform's updated_at of that version
    outbox_id: Optional[int] = None
    updated_at: datetime = Field(default_factory=utcnow)


class Cursor(SQLModel, table=True):
    """A poller's or a backfill's position, advanced in the transaction that enqueues."""

    __tablename__ = "cursors"
    shop: str = Field(primary_key=True)
    name: str = Field(primary_key=True)          # e.g. "orders", "checkouts", "backfill"
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class PushAttempt(SQLModel, table=True):
    """One HTTP request to the target: what was sent, how it went."""

    __tablename__ = "push_attempts"
    id: Optional[int] = Field(default=None, primary_key=True)
    batch_id: str = Field(index=True)
    started_at: datetime = Field(default_factory=utcnow)
    duration_ms: float = 0.0
    orders: int = 0
    status_code: Optional[int] = None
    response_excerpt: Optional[str] = Field(default=None, sa_column=Column(Text))
    error: Optional[str] = Field(default=None, sa_column=Column(Text))


class ComplianceRequest(SQLModel, table=True):
    """A privacy request received from a platform (Shopify customers/data_request, redact)."""

    __tablename__ = "compliance_requests"
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str
    shop: str
    topic: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
    done_at: Optional[datetime] = None
    result: Optional[str] = Field(default=None, sa_column=Column(Text))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")   # durable across process crashes in WAL mode
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def make_engine(url: str) -> Engine:
    """An engine for the connector store; creates the folder of a SQLite file."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def init_db(engine: Engine) -> None:
    """Create the tables that are missing (idempotent)."""
    SQLModel.metadata.create_all(engine, tables=[m.__table__ for m in (
        InboxDelivery, OutboxRow, OrderHead, Cursor, PushAttempt, ComplianceRequest)])
