"""Where imported orders go: the outbox (committed per chunk) or, for --dry-run, nowhere but the screen."""
from __future__ import annotations

import json
from datetime import datetime
from typing import TextIO

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector.outbox import EnqueueResult, PreparedVersion, Version, enqueue_prepared

from adapters.csv.presets.base import Built

CHUNK_ORDERS = 2000      # orders per transaction (each commit may checkpoint the WAL); a crash loses at most these, and a re-run enqueues them


class OutboxSink:
    """Enqueues versions in chunks, one transaction per chunk, so a crash loses at most one chunk
    and a re-run re-enqueues nothing that was committed (the outbox dedupes by content hash)."""

    def __init__(self, engine: Engine, shop: str, file_name: str, chunk: int = CHUNK_ORDERS):
        self.engine = engine
        self.shop = shop
        self.file_name = file_name
        self.chunk = chunk
        self.batch: list[PreparedVersion] = []
        self.result = EnqueueResult()

    def add(self, wire: dict, line: int, built: Built) -> None:
        self.batch.append(PreparedVersion.of(Version(self.shop, wire, source=f"csv:{self.file_name}:{line}",
                                                     source_updated_at=built.source_updated_at)))
        if len(self.batch) >= self.chunk:
            self.flush()

    def add_prepared(self, external_order_id: str, canonical: str, digest: str, line: int,
                     source_updated_at: datetime | None) -> None:
        """An order validated and serialised already (by the importer's workers)."""
        self.batch.append(PreparedVersion(self.shop, external_order_id, canonical, digest, f"csv:{self.file_name}:{line}",
                                          source_updated_at))
        if len(self.batch) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        with Session(self.engine) as session:
            r = enqueue_prepared(session, self.batch)
            session.commit()
        r.ids = []                      # not needed; keeps memory flat over millions of orders
        self.result += r
        self.batch = []

    def close(self) -> None:
        self.flush()


class DryRunSink:
    """Counts orders and prints the first few as add-orders JSON; touches no database."""

    def __init__(self, out: TextIO, show: int = 3):
        self.out = out
        self.show = show
        self.count = 0

    def add(self, wire: dict, line: int, built: Built) -> None:
        self.count += 1
        if self.count <= self.show:
            print(f"# line {line}", file=self.out)
            print(json.dumps(wire, indent=2, ensure_ascii=False), file=self.out)

    def close(self) -> None:
        pass
