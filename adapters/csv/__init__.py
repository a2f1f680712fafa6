"""CSV import for legacy stores: a streaming reader plus presets (Shopify, WooCommerce, generic)."""
from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Callable

from adapters.csv.importer import Importer, RejectedFile, Sink, Summary, previous_rejected_path, rejected_path
from adapters.csv.presets import PRESETS, Context
from adapters.csv.presets.base import Header
from adapters.csv.ranges import data_start, splittable
from adapters.csv.reader import CsvUnreadable, Undecodable, check_decodable, open_csv, read_rows

__all__ = ["PRESETS", "Context", "CsvUnreadable", "Summary", "import_file", "rejected_path"]


def import_file(path: Path, preset: str, ctx: Context, sink: Sink, *, encoding: str | None = None,
                delimiter: str | None = None, write_rejected: bool = True,
                progress: Callable[[int], None] = lambda n: None, workers: int | None = None) -> tuple[str, Summary]:
    """Import one file into `sink`; returns the detected format's label and the summary.

    `workers`: processes that read, build and validate ranges of the file for a sink with `add_prepared`
    (default: one per CPU; 0 does everything in this process).

    Raises CsvUnreadable when the file cannot be used at all (nothing has been imported then).
    """
    if preset not in PRESETS:
        raise CsvUnreadable(f"unknown preset {preset!r} (use {', '.join(PRESETS)})")
    # The whole file is checked to decode before anything is written (ready()); with workers, while they
    # translate the first ranges, instead of on one core before they start.
    dialect, f = open_csv(path, encoding, delimiter, check=False)
    with f:
        reader = csv.reader(f, delimiter=dialect.delimiter)
        try:
            first = next(read_rows(reader, path.name), None)
        except Undecodable:
            check_decodable(path, dialect.encoding)     # a byte the codec refuses: named as the check names it
            raise
        if first is None:
            raise CsvUnreadable(f"{path.name} is empty: no header row")
        header = Header(first.cells)
        bound = PRESETS[preset](header, ctx)
        out = rejected_path(path)
        rejected = RejectedFile(out, list(first.cells), dialect) if write_rejected else None
        importer = Importer(bound, sink, rejected, len(header.names), progress, workers)

        def ready() -> None:
            """Before anything is written: the whole file decodes, and an earlier report is out of the way."""
            check_decodable(path, dialect.encoding)
            if write_rejected and out.exists():
                # A report from an earlier run describes rows that may be fixed now, so it does not stay under
                # its name; the user may also have fixed it in place, as the summary tells them to: kept aside.
                importer.summary.previous_report = previous_rejected_path(path)
                out.replace(importer.summary.previous_report)
        start = None
        if importer.workers and hasattr(sink, "add_prepared") and splittable(dialect.encoding):
            start = data_start(path, 3 if dialect.bom and _range_codec(dialect.encoding) == "utf-8" else 0,
                               _range_codec(dialect.encoding), dialect.delimiter, first.cells)
        try:
            if start is None:
                ready()
                summary = importer.run(reader, path.name)
            else:
                summary = importer.run_file(path, _range_codec(dialect.encoding), dialect.delimiter, *start, ready)
        except Undecodable:
            # met while reading, so the file changed after the check: the text reader knows neither the exact
            # line (it decodes a block ahead) nor the encoding's own name ("charmap"); the check names both
            check_decodable(path, dialect.encoding)
            raise
    return bound.label, summary


def _range_codec(encoding: str) -> str:
    # ranges start after the BOM: utf-8-sig (however spelt) would drop a U+FEFF that begins a range
    return "utf-8" if codecs.lookup(encoding).name == "utf-8-sig" else encoding
