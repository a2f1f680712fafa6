"""Worker processes change nothing but speed: the same outbox, summary and rejected-rows report as one
process, whatever the file does to the cutting into ranges (quotes, line endings, encodings, split orders)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.csv import Context, CsvUnreadable, import_file, ranges
from adapters.csv.seen import SeenOrders
from adapters.csv.sinks import OutboxSink
from connector.store import OrderHead, OutboxRow, init_db, make_engine

FIXTURES = Path(__file__).parents[1] / "fixtures"
BROKEN = FIXTURES / "csv_extra" / "shopify_broken.csv"
GOOD = FIXTURES / "csv" / "shopify_orders_export_2026.csv"


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch):
    """Ranges of a few kB, so that test files are cut into many (the workers are forked after this)."""
    monkeypatch.setattr(ranges, "TARGET_BYTES", 4096)
    monkeypatch.setattr(ranges, "MAX_BYTES", 64 * 1024)


def copies(path: Path, sources: list[Path], n: int, *, encoding: str = "utf-8", newline: str = "\n",
           again: bool = True, edit=None, source_encoding: str = "utf-8-sig") -> None:
    """The sources' rows again and again (orders renamed per copy), then the first copy again (orders that
    reappear ranges later)."""
    header = None
    rows: list[list[str]] = []
    for src in sources:
        h, *r = list(csv.reader(src.open(newline="", encoding=source_encoding)))
        header = header or h
        rows += [[dict(zip(h, x)).get(c, "") for c in header] if h != header else x for x in r]
    name = header.index("Name")
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f, lineterminator=newline)
        w.writerow(header)
        for k in [*range(n), 0] if again else range(n):
            for r in rows:
                r = [f"{c}-{k}" if i == name and c else c for i, c in enumerate(r)]
                w.writerow(edit(r, header) if edit else r)


def run(tmp_path: Path, src: Path, workers: int, encoding: str | None = None):
    d = tmp_path / f"w{workers}"
    d.mkdir(exist_ok=True)
    path = d / src.name
    path.write_bytes(src.read_bytes())
    engine = make_engine(f"sqlite:///{d}/c.db")
    init_db(engine)
    sink = OutboxSink(engine, "legacy", src.name)
    try:
        _, summary = import_file(path, "shopify", Context(), sink, workers=workers, encoding=encoding)
    finally:
        engine.dispose()
    with engine.connect() as c:
        outbox = c.execute(select(OutboxRow.external_order_id, OutboxRow.payload, OutboxRow.content_hash,
                                  OutboxRow.source).order_by(OutboxRow.id)).all()
        heads = c.execute(select(OrderHead.external_order_id, OrderHead.content_hash, OrderHead.source_updated_at,
                                 OrderHead.outbox_id).order_by(OrderHead.external_order_id)).all()
    engine.dispose()
    report = d / f"{path.stem}.rejected.csv"
    errors = [(e.line, e.column, e.reason) for e in summary.errors]
    counts = (summary.rows, summary.orders, summary.rejected_rows, summary.rejected_orders, summary.error_count,
              summary.notes, summary.first_note_line, sink.result.enqueued, sink.result.unchanged,
              summary.blank.count, summary.blank.first_line)
    return counts, errors, outbox, heads, report.read_bytes() if report.exists() else None


def same_import(tmp_path: Path, src: Path, encoding: str | None = None):
    alone = run(tmp_path, src, 0, encoding)
    assert run(tmp_path, src, 2, encoding) == alone
    return alone


def test_workers_give_the_same_import_as_one_process(tmp_path):
    src = tmp_path / "big.csv"
    copies(src, [GOOD, BROKEN], 25)
    assert src.stat().st_size > 30 * ranges.TARGET_BYTES          # many ranges
    counts, errors, outbox, _, report = same_import(tmp_path, src)
    assert counts[1] > 100 and outbox and report
    assert b"already appeared at line" in report          # the last copy repeats the first
    assert errors == sorted(errors)                       # reported in file order


def test_an_order_split_across_ranges_is_rejected_as_in_one_process(tmp_path):
    """A valid order whose rows come back far later: the workers translated it; the main process finds it
    seen before and reads its rows again for the report."""
    src = tmp_path / "split.csv"
    copies(src, [GOOD], 30)
    _, errors, _, _, report = same_import(tmp_path, src)
    assert sum("already appeared at line" in e[2] for e in errors) == 5 and b"already appeared" in report


@pytest.mark.parametrize("every, name, bare, in_payload", [
    (5, "Pizza 12in", 'Pizza 12" in', 'Pizza 12\\" in'),     # a quote inside an unquoted cell
    (7, "Shelf 5 ft 10in", 'Shelf 5 ft 10"', 'Shelf 5 ft 10\\"'),   # one closing it, as a quoted cell's would
])
def test_bare_quotes_are_read_as_in_one_process(tmp_path, every, name, bare, in_payload):
    """A bare quote fools quote parity (between two, a newline inside a quoted note looks like the end of a
    record, and the cut finder's rows may not be the file's): the range that holds one fails the quoting
    check, and it and the rest of the file are read in one process."""
    src = tmp_path / "quotes.csv"
    rows = []

    def bare_quote(row, header):
        rows.append(row)
        if len(rows) % every == 0:
            row[header.index("Lineitem name")] = name
        return row
    copies(src, [GOOD], 40, edit=bare_quote)
    src.write_text(src.read_text(encoding="utf-8").replace(name, bare), encoding="utf-8")
    counts, _, outbox, _, _ = same_import(tmp_path, src)
    assert counts[1] > 100 and any(in_payload in row.payload for row in outbox)


def test_carriage_returns_alone_and_crlf_are_read_as_in_one_process(tmp_path):
    for newline in ("\r", "\r\n"):
        src = tmp_path / f"nl{len(newline)}.csv"
        copies(src, [GOOD, BROKEN], 12, newline=newline)
        counts, *_ = same_import(tmp_path, src)
        assert counts[1] > 50


def test_cp1252_and_bom_files_are_read_as_in_one_process(tmp_path):
    src = tmp_path / "cp.csv"
    copies(src, [FIXTURES / "csv_extra" / "shopify_73col_cp1252.csv"], 200, encoding="cp1252", again=False,
           source_encoding="cp1252")
    counts, *_ = same_import(tmp_path, src, encoding="cp1252")
    assert counts[1] == 400
    bom = tmp_path / "bom.csv"
    copies(bom, [GOOD], 40, encoding="utf-8-sig", newline="\r\n", again=False)
    counts, *_ = same_import(tmp_path, bom)
    assert counts[1] == 40 * 5


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_a_byte_cp1252_cannot_decode_stops_the_import_naming_its_line(tmp_path, newline):
    """Checked before anything is imported, whatever ends the lines (Excel for Mac ends them with \\r)."""
    src = tmp_path / "bad.csv"
    copies(src, [FIXTURES / "csv_extra" / "shopify_73col_cp1252.csv"], 100, encoding="cp1252", again=False,
           source_encoding="cp1252", newline=newline)
    lines = src.read_bytes().split(newline.encode())
    lines[150] = lines[150].replace(b",", b",\x81", 1)
    src.write_bytes(newline.encode().join(lines))
    for workers in (0, 2):
        with pytest.raises(CsvUnreadable, match="line 151 cannot be decoded as cp1252"):
            run(tmp_path, src, workers, encoding="cp1252")


def test_a_bad_byte_at_the_end_is_found_before_the_workers_write_anything(tmp_path):
    """The encoding check runs while the workers translate the first ranges: it must still come before
    any of them is written, and before an earlier report is moved aside."""
    src = tmp_path / "late.csv"
    copies(src, [GOOD], 60, again=False)
    data = src.read_bytes()
    src.write_bytes(data[:-20] + b"\xff" + data[-20:])
    report = tmp_path / "late.rejected.csv"
    report.write_text("fixed by hand")
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    try:
        with pytest.raises(CsvUnreadable, match="is not UTF-8"):
            import_file(src, "shopify", Context(), OutboxSink(engine, "legacy", src.name), workers=2)
        with engine.connect() as c:
            assert c.execute(select(OutboxRow.id)).all() == []
        assert report.read_text() == "fixed by hand"
    finally:
        engine.dispose()


@pytest.mark.parametrize("batch", [[("a", 2), ("b", 3), ("a", 4), ("c", 5), ("b", 6)]])
def test_seen_in_batches_matches_one_at_a_time(batch):
    one, many = SeenOrders(), SeenOrders()
    try:
        first = [("a", 1), ("z", 1)]
        assert [one.first_line(k, n) for k, n in first] == many.first_lines(first) == [None, None]
        assert [one.first_line(k, n) for k, n in batch] == many.first_lines(batch) == [1, None, 1, None, 3]
        assert many.first_lines([("n1", 9), ("n2", 10), ("n1", 11)]) == [None, None, 9]
    finally:
        one.close()
        many.close()


def test_a_failed_outbox_write_stops_the_import_with_its_error(tmp_path):
    """Chunks are written by a thread of the sink: its failure must reach the command, not vanish."""
    import sqlite3

    from sqlalchemy.exc import OperationalError
    src = tmp_path / "orders.csv"
    copies(src, [GOOD], 30, again=False)
    engine = make_engine(f"sqlite:///{tmp_path}/no-tables.db")      # init_db not run: no outbox table
    sink = OutboxSink(engine, "legacy", src.name, chunk=20)
    try:
        for workers in (0, 2):
            with pytest.raises((OperationalError, sqlite3.OperationalError), match="no such table"):
                import_file(src, "shopify", Context(), sink, workers=workers)
    finally:
        engine.dispose()


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="kills a worker with SIGKILL")
def test_a_worker_killed_mid_import_stops_it_and_no_write_waits_for_its_turn(tmp_path):
    """Workers write in file order, each when its turn comes: one killed (out of memory, say) must stop the
    import with that reason, never leave the other waiting for a turn that cannot come."""
    import multiprocessing
    import os
    import signal
    src = tmp_path / "orders.csv"
    copies(src, [GOOD], 60, again=False)
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)

    def kill_one(rows):
        children = multiprocessing.active_children()
        if children:
            os.kill(children[0].pid, signal.SIGKILL)
    old = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the import hung after a worker was killed"))
    signal.alarm(60)
    try:
        with pytest.raises(RuntimeError, match="an import worker process died"):
            import_file(src, "shopify", Context(), OutboxSink(engine, "legacy", src.name), workers=2,
                        progress=kill_one)
        assert not multiprocessing.active_children()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        engine.dispose()


@pytest.mark.parametrize("text, delimiter, plain", [
    ("a,b\n", ",", True), ('"a,b",c\n', ",", True), ('"a""b",c\r\n', ",", True), ('"multi\nline",x\n', ",", True),
    ('a,"b"\n"c",d', ",", True), ('""\n', ",", True), ("", ",", True), ('a;"b;c";d\n', ";", True),
    ('x,12" pizza\n', ",", False), ('x,5 ft 10",y\n', ",", False), ('"a"b,c\n', ",", False),
    ('a;"b;c";d\n', ",", False), ('x,"open\n', ",", False), ('x\t"a"\ty"\n', "\t", False),
])
def test_plain_quoting_is_told_from_bare_quotes(text, delimiter, plain):
    """Ranges are trusted only where every quote opens, doubles or closes a quoted cell: there quote parity
    finds the same record ends as csv.reader (a bare quote could put a cut inside an order)."""
    assert ranges.quoting_is_plain(text, delimiter) is plain
    assert ranges.quoting_is_plain(text.encode(), delimiter.encode()) is plain     # as a range's bytes are checked
    if plain:
        rows = [c for c in ranges.range_reader(text.encode(), "utf-8", delimiter) if c]
        assert rows[-1] == [ranges.END_MARK]
        assert rows[:-1] == [c for c in csv.reader(text.splitlines(keepends=True), delimiter=delimiter) if c]
    else:
        assert ranges.range_reader(text.encode(), "utf-8", delimiter) is None


@pytest.mark.parametrize("codec, delimiter", [("utf-8", ","), ("utf-8", ";"), ("utf-8", "§"), ("cp1252", "\t"),
                                              ("cp1252", "¦"), ("latin-1", "|")])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_range_is_read_as_csv_reader_reads_its_text(codec, delimiter, newline):
    """A range is decoded as it is read, and its quoting checked on its bytes where the delimiter is one byte
    (else on its text): the rows are csv.reader's over the decoded text, the last line without its newline
    too, then the end mark; a bare quote still refuses the range."""
    d = delimiter
    rows = [["#1001", "Café crème ½", '12"', ""], ["#1001", f"two{newline}lines", 'say "hi"', "x"],
            ["#1002", f"a{d}b", "", "Zürich"], ["#1003", "last", "row", "ends"]]
    out = io.StringIO()
    csv.writer(out, delimiter=d, lineterminator=newline).writerows(rows)
    text = out.getvalue()[:-len(newline)]
    data = text.encode(codec)
    for whole in (data, data + newline.encode()):
        got = [c for c in ranges.range_reader(whole, codec, d) if c]
        assert got == [*rows, [ranges.END_MARK]]
    bare = (text + newline + f'#1004{d}12" pizza').encode(codec)
    assert ranges.range_reader(bare, codec, d) is None


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_byte_written_after_the_check_is_named_with_its_line(tmp_path, workers, newline):
    """The file gains a bad byte after the encoding check (it was still being written): met while reading,
    it is named with its exact line, as the check names it (read in one process, the text reader alone
    would name the line of the block it was decoding, and "charmap" for cp1252)."""
    src = tmp_path / "late.csv"
    copies(src, [FIXTURES / "csv_extra" / "shopify_73col_cp1252.csv"], 400, encoding="cp1252", again=False,
           source_encoding="cp1252", newline=newline)
    lines = src.read_bytes().split(newline.encode())
    at = sum(len(x) + len(newline) for x in lines[:750])
    at += next(i for i, b in enumerate(lines[750]) if chr(b).isalpha())     # a letter of line 751

    def spoil_once(rows):                   # after the first orders are read: the check is long done
        if not spoiled:
            with src.open("r+b") as f:
                f.seek(at)
                f.write(b"\x81")
            spoiled.append(rows)
    spoiled: list = []
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    try:
        with pytest.raises(CsvUnreadable, match="line 751 cannot be decoded as cp1252 \\(byte 0x81\\)"):
            import_file(src, "shopify", Context(), OutboxSink(engine, "legacy", src.name), workers=workers,
                        encoding="cp1252", progress=spoil_once)
    finally:
        engine.dispose()
    assert spoiled


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers through /proc (Linux)")
def test_workers_end_when_the_importing_process_is_killed(tmp_path):
    """A killed import (SIGKILL: no clean-up runs) must not leave its workers waiting on their pipes forever."""
    import os
    import signal
    import subprocess
    import sys
    import time
    src = tmp_path / "big.csv"
    copies(src, [GOOD], 3000, again=False)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from adapters.csv import Context, import_file, ranges;"
        "from adapters.csv.sinks import OutboxSink; from connector.store import init_db, make_engine;"
        "ranges.TARGET_BYTES = 4096; e = make_engine('sqlite:///' + sys.argv[3]); init_db(e);"
        "import_file(Path(sys.argv[2]), 'shopify', Context(), OutboxSink(e, 'legacy', 'big.csv'), workers=2)")
    main = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parents[2]), str(src),
                             str(tmp_path / "c.db")])
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(children) < 2 and time.monotonic() < deadline and main.poll() is None:
            text = Path(f"/proc/{main.pid}/task/{main.pid}/children").read_text()
            children = [int(c) for c in text.split()]
            time.sleep(0.02)
        assert len(children) == 2, "the import ended before its workers were seen"
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [c for c in children if Path(f"/proc/{c}").exists()
                 and Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"]
        assert not alive, f"workers {alive} outlived the killed import"
    finally:
        for c in children:
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64])
def test_the_encoding_check_counts_lines_across_its_blocks(tmp_path, monkeypatch, block):
    """A \\r\\n split between two blocks of the scan is one line end, not two."""
    from adapters.csv import reader
    monkeypatch.setattr(reader, "_SCAN_BLOCK", block)
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\r\nc,d\r\ne\rf,g\ng,\x81h\r\n")        # the bad byte is on line 5
    with pytest.raises(CsvUnreadable, match="line 5 cannot be decoded"):
        reader.check_decodable(path, "cp1252")


@pytest.mark.parametrize("column", ["Paid at", "Cancelled at"])
def test_a_date_with_no_utc_time_does_not_stop_the_import(tmp_path, column):
    """9999-12-31 23:30 -0100 is past the last UTC instant Python has: the order still goes in (the date only
    says which version is newer), with workers as in one process."""
    src = tmp_path / "late.csv"

    def late(row, header):
        if row[header.index("Name")] == "#71734-3" and row[header.index("Financial Status")]:
            row[header.index(column)] = "9999-12-31 23:30:00 -0100"
        return row
    copies(src, [GOOD], 10, again=False, edit=late)
    counts, errors, outbox, _, _ = same_import(tmp_path, src)
    assert counts[1] == 50 and not errors and len(outbox) == 50
    assert any('"orderNumber":"#71734-3"' in row.payload for row in outbox)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failed_import_leaves_no_writer_behind_and_the_handed_chunks_written(tmp_path, workers):
    import threading
    src = tmp_path / "orders.csv"
    copies(src, [GOOD], 30, again=False)
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    sink = OutboxSink(engine, "legacy", src.name, chunk=10)
    calls = []

    def progress(rows):
        calls.append(rows)
        if sum(calls) > 60:
            raise RuntimeError("stopped by the test")
    try:
        with pytest.raises(RuntimeError, match="stopped by the test"):
            import_file(src, "shopify", Context(), sink, workers=workers, progress=progress)
        assert not [t for t in threading.enumerate() if t.name == "outbox-writer"]
        with engine.connect() as c:
            lines = [int(source.rsplit(":", 1)[1]) for source in
                     c.execute(select(OutboxRow.source).order_by(OutboxRow.id)).scalars()]
        assert 10 <= len(lines) < 150               # what was handed over is written, nothing after the failure
        if workers:
            # the workers write whole ranges, in file order: what is written begins the file
            assert lines[0] == 2 and lines == sorted(lines)
        else:
            assert len(lines) % 10 == 0             # whole chunks only
    finally:
        engine.dispose()


@pytest.mark.parametrize("codec, cut", [("utf-8", True), ("UTF-8-SIG", True), ("cp1252", True), ("latin-1", True),
                                        ("koi8-r", True), ("utf-16", False), ("shift_jis", False),
                                        ("iso2022_jp", False), ("hz", False), ("cp037", False)])
def test_only_encodings_whose_newline_and_quote_bytes_mean_just_that_are_cut(codec, cut):
    """In ISO-2022-JP or HZ a `"` byte can be half of another character: such files are read in one process."""
    from adapters.csv import _range_codec
    assert ranges.splittable(codec) is cut
    if codec.lower() == "utf-8-sig":
        assert _range_codec(codec) == "utf-8"      # however spelt: a range must not lose a leading U+FEFF


def test_blank_rows_are_skipped_and_counted_and_part_no_order(tmp_path):
    """Spreadsheets save rows of empty cells (`,,,,`) after the data and sometimes between orders: they are
    not orders, so nothing is rejected; they are counted, and a blank row inside an order's rows does not
    cut the order in two (nor does a range cut fall there)."""
    plain, blanked = tmp_path / "plain.csv", tmp_path / "blanked.csv"
    copies(plain, [GOOD], 40, again=False)
    header, *data = list(csv.reader(plain.open(newline="", encoding="utf-8")))
    out, blank_lines, line = [header], [], 1
    for i, row in enumerate(data):
        out.append(row)
        line += 1 + sum(c.count("\n") for c in row)
        if i % 3 == 1:                      # between orders and inside them
            out.append([""] * len(header))
            line += 1
            blank_lines.append(line)
    out += [[""] * len(header)] * 2 + [[" ", "", "\t"]]     # Excel's trailing rows; one with spaces, one short
    blank_lines += [line + 1, line + 2, line + 3]
    with blanked.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(out)
    (tmp_path / "plain").mkdir()
    (p_rows, p_orders, p_rej_rows, *_), _, p_outbox, _, _ = run(tmp_path / "plain", plain, 0)
    counts, errors, outbox, _, report = same_import(tmp_path, blanked)
    rows, orders, rejected_rows = counts[:3]
    assert (rows, orders, rejected_rows) == (p_rows + len(blank_lines), p_orders, p_rej_rows)
    assert counts[-2:] == (len(blank_lines), blank_lines[0])
    assert [(o.external_order_id, o.payload) for o in outbox] == [(o.external_order_id, o.payload) for o in p_outbox]
