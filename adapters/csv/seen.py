"""Order keys already read in this run, kept on disk so memory stays flat whatever the file size.

Rows of one order are grouped as they come; if an order's rows are split (a file sorted by
something else), its second part would silently become a new version with fewer items. This
catches it: the later rows are rejected, naming the line where the order first appeared.
"""
from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path


class SeenOrders:
    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="orderbridge-csv-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        # A scratch table: no journal, no fsync; it lives only as long as this import.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")

    def first_line(self, key: str, line: int) -> int | None:
        """None the first time a key is seen; after that, the line where it was first seen."""
        try:
            self._db.execute("INSERT INTO seen VALUES (?, ?)", (key, line))
            return None
        except sqlite3.IntegrityError:
            return self._db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()[0]

    def first_lines(self, keys: list[tuple[str, int]]) -> list[int | None]:
        """first_line for each of many (key, line) pairs in file order.

        Keys are nearly always new: one INSERT OR IGNORE for all of them, and only when some were not
        inserted are their first lines read back (a key keeps the line it was first inserted with)."""
        before = self._db.total_changes
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", keys)
        if self._db.total_changes - before == len(keys):
            return [None] * len(keys)
        found: dict[str, int] = {}
        for part in range(0, len(keys), 500):
            names = list({k for k, _ in keys[part:part + 500]})
            marks = ",".join("?" * len(names))
            found.update(self._db.execute(f"SELECT key, line FROM seen WHERE key IN ({marks})", names).fetchall())
        return [None if found[key] == line else found[key] for key, line in keys]

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
