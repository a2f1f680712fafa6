"""The durable connector store: inbox, outbox, order heads, cursors and push attempts (sqlmodel).

SQLite (WAL) is the embedded default; a PostgreSQL URL runs several receivers and daemons
side by side. The schema is created on start (`init_db`); see README "Migrations".
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from connector import database

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


def make_engine(url: str) -> Engine:
    """An engine for the connector store; creates the folder of a SQLite file."""
    return database.make_engine(url, pragmas=("foreign_keys=ON",))


def init_db(engine: Engine) -> None:
    """Create the tables and indexes that are missing (idempotent)."""
    database.create_missing(engine, [m.__table__ for m in (
        InboxDelivery, OutboxRow, OrderHead, Cursor, PushAttempt, ComplianceRequest)])
