"""Broken rows of every kind, encodings, exit codes and the rejected-rows file, through the real CLI."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest


EXTRA = Path(__file__).parents[1] / "fixtures" / "csv_extra"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "csv" / "shopify_orders_export_2026.csv"


@pytest.fixture
def cli(import_csv_cli):
    return import_csv_cli


def copy(tmp_path, name, src=EXTRA):
    dst = tmp_path / name
    shutil.copy(src / name, dst)
    return dst


# line → (column, words in the reason): one of each kind of mistake (see the fixture's comments)
BROKEN = {
    12: ("Created at", "not a date"),
    22: ("Financial Status", "unknown status 'payed'"),
    32: ("Email/Phone", "no contact id"),
    42: ("Total", "not a number: '1.500,00'"),
    62: ("Currency", "inconsistent with line 52"),
    73: ("Lineitem quantity", "not a number: 'two'"),
    74: ("Email", "not an email address"),
    84: ("Currency", "ISO 4217"),
    94: ("Financial Status", "rows of one order must be together"),
    95: ("Name", "is empty"),
    105: ("row", "81 cells but the header has 79"),
}


def test_every_broken_row_is_named_by_line_column_and_reason(cli, tmp_path):
    f = copy(tmp_path, "shopify_broken.csv")
    code, out, err = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 1
    for line, (column, words) in BROKEN.items():
        msg = next((m for m in err.splitlines() if m.startswith(f"line {line}, ")), "")
        assert msg.startswith(f"line {line}, {column}: ") and words in msg, (line, msg)
    assert "enqueued:  2 orders" in out          # #1 and #13 (two rows) are good
    assert "rejected:  13 rows (11 orders)" in out
    assert "some rows were rejected" in out


def test_rejected_file_keeps_original_columns_and_every_row_of_a_rejected_order(cli, tmp_path):
    f = copy(tmp_path, "shopify_broken.csv")
    cli(f, "--shop", "legacy", "--preset", "shopify")
    rejected = tmp_path / "shopify_broken.rejected.csv"
    rows = list(csv.reader(rejected.open(newline="", encoding="utf-8")))
    header = next(csv.reader(f.open(newline="", encoding="utf-8")))
    assert rows[0] == header + ["import error"]
    names = [r[0] for r in rows[1:]]
    assert names == ["#2", "#3", "#4", "#5", "#6", "#6", "#7", "#7", "#8", "#9", "#10", "", "#12"]
    seven = [r for r in rows if r[0] == "#7"]
    assert seven[0][79].startswith("rejected with its order (line 73, Lineitem quantity")
    assert seven[1][79] == "Lineitem quantity: not a number: 'two'"
    assert "First name: Redacted Name1\nPhone number" in rows[1][45]     # multi-line cell kept intact
    assert rows[-1][80:] == ["oops", "extra"]


def test_fixed_rejected_file_imports_and_the_stale_report_goes(cli, tmp_path):
    f = copy(tmp_path, "shopify_broken.csv")
    cli(f, "--shop", "legacy", "--preset", "shopify")
    rejected = tmp_path / "shopify_broken.rejected.csv"
    rows = list(csv.reader(rejected.open(newline="", encoding="utf-8")))
    fixed = [r for r in rows if r[0] in ("Name", "#3")]
    fixed[1][2] = "paid"
    with (tmp_path / "fixed.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(fixed)
    code, out, _ = cli(tmp_path / "fixed.csv", "--shop", "legacy", "--preset", "shopify")
    assert code == 0 and "enqueued:  1 orders" in out
    code, _, _ = cli(rejected, "--shop", "legacy", "--preset", "shopify")      # the unfixed rest, again
    again = list(csv.reader((tmp_path / "shopify_broken.rejected.rejected.csv").open(newline="", encoding="utf-8")))
    assert code == 1 and again[0] == rows[0] and len(again) == len(rows)       # one error column, not two
    (tmp_path / "fixed.rejected.csv").write_text("old report")
    cli(tmp_path / "fixed.csv", "--shop", "legacy", "--preset", "shopify")
    assert not (tmp_path / "fixed.rejected.csv").exists()
    assert (tmp_path / "fixed.rejected.previous.csv").read_text() == "old report"


def test_a_report_fixed_in_place_survives_a_run_of_the_original_file(cli, tmp_path):
    """The summary says to fix the report and import it; a user who first runs the original again (a dry run,
    say) must not lose those fixes: the earlier report is moved aside, and the summary says where."""
    f = copy(tmp_path, "shopify_broken.csv")
    cli(f, "--shop", "legacy", "--preset", "shopify")
    report = tmp_path / "shopify_broken.rejected.csv"
    fixed = report.read_text(encoding="utf-8").replace("payed", "paid")
    report.write_text(fixed, encoding="utf-8")
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    kept = tmp_path / "shopify_broken.rejected.previous.csv"
    assert code == 1 and kept.read_text(encoding="utf-8") == fixed
    assert f"the report of an earlier run was moved to {kept}" in out
    assert "payed" in report.read_text(encoding="utf-8")        # the new report: the original's rows again


def test_a_fixed_report_survives_two_runs_of_the_original_file(cli, tmp_path):
    """Two dry runs of the original in a row: the second moves its own unfixed report aside, under a new
    name, not over the fixed one the first moved there."""
    f = copy(tmp_path, "shopify_broken.csv")
    cli(f, "--shop", "legacy", "--preset", "shopify")
    report = tmp_path / "shopify_broken.rejected.csv"
    fixed = report.read_text(encoding="utf-8").replace("payed", "paid")
    report.write_text(fixed, encoding="utf-8")
    cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    second = tmp_path / "shopify_broken.rejected.previous-2.csv"
    assert (tmp_path / "shopify_broken.rejected.previous.csv").read_text(encoding="utf-8") == fixed
    assert "payed" in second.read_text(encoding="utf-8")
    assert f"the report of an earlier run was moved to {second}" in out


def test_bom_crlf_and_the_73_column_header(cli, tmp_path):
    f = copy(tmp_path, "shopify_73col_bom_crlf.csv")
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 0
    assert '"firstName": "Zoë"' in out and '"name": "Crème brûlée set"' in out
    assert '"status": "DELIVERED"' in out and '"status": "CANCELLED"' in out      # fulfilled; refunded + cancelled
    assert '"deliveryAddress": "Paris, 75008, FR"' in out                           # Excel's apostrophe dropped
    assert '"cost": 13.5' in out                                                    # (2 × 15 − 3) / 2


def test_cp1252_is_named_then_read_with_encoding(cli, tmp_path):
    f = copy(tmp_path, "shopify_73col_cp1252.csv")
    code, out, err = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 2
    assert "line 2 is not UTF-8" in err and "--encoding cp1252" in err
    assert not (tmp_path / "c.db").exists() or "enqueued" not in out                # nothing imported
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--encoding", "cp1252", "--dry-run")
    assert code == 0 and '"firstName": "Joël"' in out and '"name": "Café noir"' in out


def test_unreadable_files_exit_2_with_the_reason(cli, tmp_path):
    code, _, err = cli(tmp_path / "nope.csv", "--shop", "legacy", "--preset", "shopify")
    assert code == 2 and "no such file" in err
    (tmp_path / "empty.csv").write_text("")
    code, _, err = cli(tmp_path / "empty.csv", "--shop", "legacy", "--preset", "shopify")
    assert code == 2 and "empty" in err
    (tmp_path / "semi.csv").write_text("Name;Email;Total\n#1;a@b.co;5\n")
    code, _, err = cli(tmp_path / "semi.csv", "--shop", "legacy", "--preset", "shopify")
    assert code == 2 and "is the delimiter" in err and "--delimiter" in err
    code, _, err = cli(FIXTURE, "--shop", "nosuch", "--preset", "shopify")
    assert code == 2 and "no shop named 'nosuch'" in err
    code, _, err = cli(FIXTURE, "--shop", "legacy")
    assert code == 2 and "--preset" in err


def test_any_platform_is_allowed_and_its_prefix_applies(cli, tmp_path):
    f = copy(tmp_path, "shopify_orders_export_2026.csv", FIXTURE.parent)
    code, out, _ = cli(f, "--shop", "main", "--dry-run")          # platform shopify → shopify preset
    assert code == 0 and '"externalOrderId": "s1-16718484078961"' in out


def test_dry_run_touches_no_outbox_and_reimport_is_a_no_op(cli, tmp_path):
    f = copy(tmp_path, "shopify_orders_export_2026.csv", FIXTURE.parent)
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 0 and "would enqueue: 5 orders" in out and '"orderNumber": "#71733"' in out
    assert not (tmp_path / "c.db").exists()
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 0 and "enqueued:  5 orders" in out
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 0 and "enqueued:  0 orders" in out and "unchanged: 5 orders" in out


def test_dry_run_still_writes_the_rejected_report(cli, tmp_path):
    f = copy(tmp_path, "shopify_broken.csv")
    code, _, _ = cli(f, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 1 and (tmp_path / "shopify_broken.rejected.csv").exists()


def test_an_order_without_id_falls_back_to_name_and_says_so(cli, tmp_path):
    rows = list(csv.reader(FIXTURE.open(newline="", encoding="utf-8")))
    i = rows[0].index("Id")
    trimmed = [[c for j, c in enumerate(r) if j != i] for r in rows]
    with (tmp_path / "noid.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(trimmed)
    code, out, _ = cli(tmp_path / "noid.csv", "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 0 and '"externalOrderId": "71733"' in out
    assert "5 orders: no Id column: Name used as the order id" in out


def test_an_order_whose_rows_are_split_is_caught(cli, tmp_path):
    rows = list(csv.reader(FIXTURE.open(newline="", encoding="utf-8")))
    # #71737's continuation row moved to the end, after a repeat of #71733's full row
    split = [rows[0], rows[5], rows[1], rows[6], rows[1]]
    with (tmp_path / "split.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows(split)
    code, out, err = cli(tmp_path / "split.csv", "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 1
    assert "line 22, Name: order #71737 already appeared at line 2" in err
    assert "line 23, Name: order #71733 already appeared at line 12" in err
    assert "would enqueue: 2 orders" in out


def test_ids_and_phones_rounded_by_a_spreadsheet_are_refused(cli, tmp_path):
    rows = list(csv.reader(FIXTURE.open(newline="", encoding="utf-8")))
    h = {n: i for i, n in enumerate(rows[0])}
    rows[1][h["Id"]] = "1.67185E+13"
    rows[11 - 9][h["Phone"]] = "8.80170E+12"          # data row 2 (#71734)
    with (tmp_path / "excel.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows(rows)
    code, _, err = cli(tmp_path / "excel.csv", "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 1
    assert "line 2, Id: '1.67185E+13' is not a Shopify order id (digits only): a spreadsheet rounded it" in err
    assert "line 12, Phone: '8.80170E+12': a spreadsheet turned the phone into a rounded number" in err


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_file_excel_saved_with_blank_rows_imports_cleanly_and_says_it_skipped_them(cli, tmp_path, workers):
    """Excel leaves rows of empty cells (`,,,,`) after the data: skipped and counted, not rejected (exit 0)."""
    f = tmp_path / "orders_export.csv"
    text = FIXTURE.read_text(encoding="utf-8-sig")
    width = len(next(csv.reader([text.splitlines()[0]])))
    lines = text.count("\n") + (not text.endswith("\n"))
    f.write_text(text.rstrip("\r\n") + "\r\n" + ("," * (width - 1) + "\r\n") * 3, encoding="utf-8")
    code, out, err = cli(f, "--shop", "legacy", "--preset", "shopify", "--workers", workers)
    assert code == 0, out + err
    assert f"skipped:   3 blank rows (no cell filled; the first at line {lines + 1})" in out
    assert "rejected:  0 rows" in out and not (tmp_path / "orders_export.rejected.csv").exists()


def test_a_message_the_files_encoding_cannot_hold_reaches_the_report_with_replacements(tmp_path):
    """The report is written in the input's encoding (so it can be fixed and imported again); its cells come
    from that encoding, but a message may quote what it lacks (a status from a mapping, an arrow)."""
    from adapters.csv.importer import RejectedFile
    from adapters.csv.reader import Dialect, Row
    out = tmp_path / "r.rejected.csv"
    report = RejectedFile(out, ["Name", "Total"], Dialect("latin-1", ";", False))
    report.write([Row(2, ["#1", "12,50 £"])], {2: "Status: unknown status 'оплачено' → €"})
    report.close()
    assert out.read_bytes().decode("latin-1") == "Name;Total;import error\r\n#1;12,50 £;Status: unknown status '????????' ? ?\r\n"


def test_a_split_order_is_named_and_importing_the_sorted_whole_file_sends_it_complete(cli, tmp_path):
    """The later rows of a split order cannot be imported alone (they lack the order's first row): the message
    says to import the whole file again once sorted, and doing so sends the order with all its items."""
    header, *rows = list(csv.reader(FIXTURE.open(newline="", encoding="utf-8-sig")))
    name = header.index("Name")
    split = [r for r in rows if r[name] != "#71737"] + [r for r in rows if r[name] == "#71737"][1:]
    split.insert(1, [r for r in rows if r[name] == "#71737"][0])
    f = tmp_path / "orders_export.csv"
    with f.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *split])
    code, out, err = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 1 and "rejected:  1 rows (1 orders)" in out
    assert "Name: order #71737 already appeared at line " in err and "import the whole file again" in err
    with f.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *sorted(split, key=lambda r: r[name])])
    code, out, _ = cli(f, "--shop", "legacy", "--preset", "shopify")
    assert code == 0 and "enqueued:  1 orders" in out and f"unchanged: {len(rows) - 2} orders" in out


def test_amounts_beyond_15_digits_are_rejected_by_line_and_column(cli, tmp_path):
    """BDT has 2 decimal places: 13 digits before the point; a JSON number keeps no more exactly."""
    rows = list(csv.reader(FIXTURE.open(newline="", encoding="utf-8")))
    h = {n: i for i, n in enumerate(rows[0])}
    rows[1][h["Total"]] = "10000000000000.00"             # #71733
    rows[2][h["Total"]] = "9999999999999.99"              # #71734: the largest BDT amount, taken
    rows[6][h["Lineitem price"]] = "100000000000000.00"   # #71737's second line item (its cost less a share of 400)
    path = tmp_path / "large.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\n").writerows(rows)
    starts, end = [], 0                              # the line each record starts on (cells span lines)
    with path.open(newline="", encoding="utf-8") as f:
        for _ in (reader := csv.reader(f)):
            starts.append(end + 1)
            end = reader.line_num
    code, out, err = cli(path, "--shop", "legacy", "--preset", "shopify", "--dry-run")
    assert code == 1
    limit = "too large for BDT: at most 13 digits before the decimal point (15 digits in all with the 2 after it"
    assert f"line 2, Total: {limit}" in err
    assert f"line {starts[6]}, Lineitem price: {limit}" in err
    assert '"totalCost": 9999999999999.99' in out and "would enqueue: 3 orders" in out
    with (tmp_path / "large.rejected.csv").open(newline="", encoding="utf-8") as f:
        report = list(csv.reader(f))
    errors = {r[h["Name"]]: r[-1] for r in report[1:]}
    assert errors["#71733"].startswith(f"Total: {limit}")
    assert any(r[h["Name"]] == "#71737" and r[-1].startswith(f"Lineitem price: {limit}") for r in report[1:])


def test_an_unknown_shop_is_named_with_the_entry_to_add(tmp_path, monkeypatch, capsys):
    """A legacy store that started `up` on defaults has no config file: the error says what to write and
    where, and writing just that lets the import run."""
    from daemon.cli import main
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORDERBRIDGE_CONFIG", raising=False)
    assert main(["import-csv", str(FIXTURE), "--shop", "old store", "--preset", "shopify"]) == 2
    assert "letters, digits, _ . - only" in capsys.readouterr().err
    args = ["import-csv", str(FIXTURE), "--shop", "old-store", "--preset", "shopify"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no shop named 'old-store'" in err and "./orderbridge.toml" in err
    entry = err[err.index("[[shops]]"):]
    (tmp_path / "orderbridge.toml").write_text(entry, encoding="utf-8")
    assert main(args) == 0
    assert "enqueued:  5 orders" in capsys.readouterr().out
