"""The backend's tables: contacts, orders (full JSON plus indexed columns) and events.

Other backend modules (workflows, reports, UI) define their own tables in their own modules, each
with a `TABLES` tuple, and list that module in `backend.db.TABLE_MODULES`; the schema is created on
start (`backend.db.init_schema`).
Datetimes are timezone-aware (sqlmodel stores them in UTC and gives them back in UTC).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Contact(SQLModel, table=True):
    """A person orders are matched to. The link from an order to its contact is sticky."""

    __tablename__ = "contacts"
    id: Optional[int] = Field(default=None, primary_key=True)
    external_customer_id: Optional[str] = Field(default=None, unique=True)
    email: Optional[str] = None                       # as first given
    email_lc: Optional[str] = Field(default=None, index=True)   # for case-insensitive matching
    phone: Optional[str] = Field(default=None, index=True)      # digits only
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    erased_at: Optional[datetime] = None


class StoredOrder(SQLModel, table=True):
    """The latest version of an order, as an add-orders object, with the columns reports query."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status_date", "status", "date"),
        Index("ix_orders_contact_date", "contact_id", "date"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    external_order_id: str = Field(unique=True)
    contact_id: Optional[int] = Field(default=None)
    status: str
    total_cost: float
    currency: str
    date: datetime                                      # UTC
    content_hash: str
    payload: str = Field(sa_column=Column(Text, nullable=False))   # canonical wire JSON
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    """One event of the event history (`order<STATUS>` for every accepted order version)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_type_id", "type", "id"),
        Index("ix_events_key", "key"),
        Index("ix_events_contact", "contact_id", "id"),
        Index("ix_events_created", "created_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    type: str
    key: str
    contact_id: Optional[int] = None
    order_id: Optional[int] = None
    params: str = Field(sa_column=Column(Text, nullable=False))    # JSON object
    created_at: datetime = Field(default_factory=utcnow)


CORE_TABLES = (Contact, StoredOrder, Event)
TABLES = CORE_TABLES   # read by backend.db.all_tables()
