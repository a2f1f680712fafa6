"""Where imported orders go: the outbox (committed per chunk) or, for --dry-run, nowhere but the screen."""
from __future__ import annotations

import json
import queue
import threading
from datetime import datetime
from typing import TextIO

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connector.outbox import EnqueueResult, PreparedVersion, Version, enqueue_prepared

from adapters.csv.presets.base import Built

CHUNK_ORDERS = 2000      # orders per transaction (each commit may checkpoint the WAL); a crash loses at most these, and a re-run enqueues them


class OutboxSink:
    """Enqueues versions in chunks, one transaction per chunk, so a crash loses at most the chunks not yet
    committed (two) and a re-run re-enqueues nothing that was committed (the outbox dedupes by content hash).

    Chunks are written by a thread of their own: SQLite and the database driver release the GIL while
    they work, so the importer reads and settles the next orders meanwhile (on two cores the writes
    were a third of the main process's time). One chunk waits at most; a failed write is raised on
    the next add or at close.

    With the importer's worker processes, each writes the orders it prepared itself (write_here), in
    transactions of the same size; the thread is not used then.
    """

    def __init__(self, engine: Engine, shop: str, file_name: str, chunk: int = CHUNK_ORDERS):
        self.engine = engine
        self.shop = shop
        self.file_name = file_name
        self.chunk = chunk
        self.batch: list[PreparedVersion] = []
        self.result = EnqueueResult()
        self._queue: queue.Queue[list[PreparedVersion] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._writer: threading.Thread | None = None

    def add(self, wire: dict, line: int, built: Built) -> None:
        self.batch.append(PreparedVersion.of(Version(self.shop, wire, source=f"csv:{self.file_name}:{line}",
                                                     source_updated_at=built.source_updated_at)))
        if len(self.batch) >= self.chunk:
            self.flush()

    def prepared(self, external_order_id: str, canonical: str, digest: str, line: int,
                 source_updated_at: datetime | None) -> PreparedVersion:
        """The version of an order validated and serialised already, read at `line` of the file."""
        return PreparedVersion(self.shop, external_order_id, canonical, digest, f"csv:{self.file_name}:{line}",
                               source_updated_at)

    def add_prepared(self, external_order_id: str, canonical: str, digest: str, line: int,
                     source_updated_at: datetime | None) -> None:
        """An order validated and serialised already, written by the writer thread."""
        self.batch.append(self.prepared(external_order_id, canonical, digest, line, source_updated_at))
        if len(self.batch) >= self.chunk:
            self.flush()

    # ---- in an import's worker process: it writes the versions it prepared itself ---------------------

    def in_worker(self) -> None:
        """After a fork: the connections pooled by the parent are not this process's to use (nor to close)."""
        self.engine.dispose(close=False)

    def write_here(self, versions: list[PreparedVersion]) -> EnqueueResult:
        """Write in this thread, a transaction per chunk; raises what a write raised."""
        result = EnqueueResult()
        for start in range(0, len(versions), self.chunk):
            result += self._commit(versions[start:start + self.chunk])
        return result

    def flush(self) -> None:
        """Hand the chunk to the writer (waiting while another one waits)."""
        self._raise_failure()
        if not self.batch:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_all, name="outbox-writer", daemon=True)
            self._writer.start()
        self._queue.put(self.batch)
        self.batch = []

    def close(self) -> None:
        """Write what is left and wait for it; raises what a write raised."""
        self.flush()
        self._stop_writer()
        self._raise_failure()

    def abort(self) -> None:
        """The import failed elsewhere: the chunk being gathered is dropped (a re-run enqueues it), the chunks
        handed over are written, and the writer ends; a write's own failure is not raised over the first."""
        self.batch = []
        self._stop_writer()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def _write_all(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._failure is None:   # after a failure nothing more is written, in order; only drained
                self._write(batch)

    def _write(self, batch: list[PreparedVersion]) -> None:
        try:
            self.result += self._commit(batch)
        except BaseException as e:  # noqa: BLE001 - handed to the importing thread
            self._failure = e

    def _commit(self, batch: list[PreparedVersion]) -> EnqueueResult:
        with Session(self.engine) as session:
            r = enqueue_prepared(session, batch)
            session.commit()
        r.ids = []              # not needed; keeps memory flat over millions of orders
        return r

    def _raise_failure(self) -> None:
        # the failure stays: nothing is written after it, and every later add or close raises it again
        if self._failure is not None:
            self._stop_writer()
            raise self._failure


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
