"""Where imported orders go: the outbox (committed per chunk) or, for --dry-run, nowhere but the screen."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector.outbox import EnqueueResult, Version, enqueue

from adapters.csv.presets.base import Built

if TYPE_CHECKING:
    from adapters.csv.importer import Prepared

CHUNK_ORDERS = 500


@dataclass(frozen=True)
class PreparedVersion(Version):
    """A version whose canonical JSON and hash a worker process computed: `enqueue` stores them as they
    are instead of serialising `wire` again (which then holds only the order id)."""

    canonical: str = ""
    digest: str = ""


class OutboxSink:
    """Enqueues versions in chunks, one transaction per chunk, so a crash loses at most one chunk
    and a re-run re-enqueues nothing that was committed (the outbox dedupes by content hash)."""

    def __init__(self, engine: Engine, shop: str, file_name: str, chunk: int = CHUNK_ORDERS):
        self.engine = engine
        self.shop = shop
        self.file_name = file_name
        self.chunk = chunk
        self.batch: list[Version] = []
        self.result = EnqueueResult()

    def add(self, wire: dict, line: int, built: Built) -> None:
        self.batch.append(Version(self.shop, wire, source=f"csv:{self.file_name}:{line}",
                                  source_updated_at=built.source_updated_at))
        if len(self.batch) >= self.chunk:
            self.flush()

    def add_prepared(self, order: "Prepared") -> None:
        self.batch.append(PreparedVersion(self.shop, {"externalOrderId": order.external_order_id},
                                          source=f"csv:{self.file_name}:{order.line}",
                                          source_updated_at=order.source_updated_at,
                                          canonical=order.canonical, digest=order.digest))
        if len(self.batch) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        with Session(self.engine) as session:
            r = enqueue(session, self.batch)
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
