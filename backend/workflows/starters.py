"""The starter workflows shipped in starters/*.json, installed into an empty backend on first start."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from backend.db import write_transaction
from backend.workflows import repo
from backend.workflows.storage import TABLES

STARTERS = Path(__file__).parent / "starters"


def starter_files() -> list[Path]:
    return sorted(STARTERS.glob("*.json"))


def install_starters(engine: Engine, now: datetime | None = None) -> int:
    """Load the starters when no workflow was ever stored (idempotent); returns how many were installed."""
    SQLModel.metadata.create_all(engine, tables=[m.__table__ for m in TABLES])
    now = now or datetime.now(timezone.utc)
    with write_transaction(engine) as conn:
        if repo.count_all(conn):
            return 0
        for path in starter_files():
            repo.create(conn, json.loads(path.read_text(encoding="utf-8")), now)
    return len(starter_files())
