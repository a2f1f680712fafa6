"""The workflow engine's tables: definitions, runs, the step log (one row per step with its due time),
the event cursor and the messages sent.

As in Mautic, a definition is kept apart from its execution log: `workflow_steps` holds one row per
step a run reached, with the time it is due; a pending row is the run's next step, done rows are its path.
Datetimes are timezone-aware UTC (sqlmodel stores them in UTC), the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

# run states (launch history tabs: in progress / completed / stopped / with errors)
IN_PROGRESS, COMPLETED, STOPPED, ERROR = "in_progress", "completed", "stopped", "error"
RUN_STATES = (IN_PROGRESS, COMPLETED, STOPPED, ERROR)

# step row states: due (pending), claimed inside a worker's transaction (running), and outcomes
PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"

# message states: `sending` is committed before the send; `unknown` means a worker died mid-send
STORED, SENDING, SENT, MSG_FAILED, UNKNOWN = "stored", "sending", "sent", "failed", "unknown"
MESSAGE_STATES = (STORED, SENDING, SENT, MSG_FAILED, UNKNOWN)


class WorkflowDefinition(SQLModel, table=True):
    """A workflow as its author wrote it (validated, normalised JSON); soft-deleted to keep history."""

    __tablename__ = "workflow_definitions"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    active: bool = True
    start_event: str = Field(index=True)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    version: int = 1
    created_at: datetime
    updated_at: datetime
    deleted_at: Optional[datetime] = None


class WorkflowRun(SQLModel, table=True):
    """One launch of a workflow for one event: its state and the data its steps see."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("ix_workflow_runs_wf_key", "workflow_id", "key", "started_at"),
        Index("ix_workflow_runs_wf_contact", "workflow_id", "contact_id", "state"),
        Index("ix_workflow_runs_state_key", "state", "key"),
        Index("ix_workflow_runs_state_contact", "state", "contact_id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    workflow_id: int
    event_id: int
    key: str
    contact_id: Optional[int] = None
    state: str = IN_PROGRESS
    context: str = Field(sa_column=Column(Text, nullable=False))   # {"params": {...}, "order": {...}}
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    started_at: datetime
    finished_at: Optional[datetime] = None


class WorkflowStep(SQLModel, table=True):
    """One step of one run, due at `due_at`: pending rows are the work queue, the rest the path taken."""

    __tablename__ = "workflow_steps"
    __table_args__ = (
        Index("ix_workflow_steps_due", "state", "due_at"),
        Index("ix_workflow_steps_run", "run_id", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int
    step_id: str
    step_type: str
    state: str = PENDING
    due_at: datetime
    claimed_by: Optional[str] = None
    done_at: Optional[datetime] = None
    result: Optional[str] = Field(default=None, sa_column=Column(Text))   # JSON


class WorkflowCursor(SQLModel, table=True):
    """How far the engine has read the events table; locked by the worker that reads on."""

    __tablename__ = "workflow_cursor"
    name: str = Field(primary_key=True)
    position: int = 0
    gap_seen_at: Optional[datetime] = None      # PostgreSQL: when a missing event id was first seen
    updated_at: Optional[datetime] = None


class Message(SQLModel, table=True):
    """A rendered message, recorded before it is sent; its status says how the send went."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_contact", "contact_id", "id"),
        Index("ix_messages_status", "status", "created_at"),
        Index("ix_messages_workflow", "workflow_id", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    workflow_id: int
    run_id: int
    step_row_id: int = Field(unique=True)       # one message per step row, whatever happens
    contact_id: Optional[int] = None
    channel: str
    to_address: str = Field(sa_column=Column(Text, nullable=False))
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime
    sent_at: Optional[datetime] = None


TABLES = (WorkflowDefinition, WorkflowRun, WorkflowStep, WorkflowCursor, Message)

definitions = WorkflowDefinition.__table__
runs = WorkflowRun.__table__
steps = WorkflowStep.__table__
cursor = WorkflowCursor.__table__
messages = Message.__table__
