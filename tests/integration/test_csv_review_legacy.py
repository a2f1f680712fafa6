"""What real legacy exports meet: files saved by spreadsheets in other locales and encodings, one-row-per-order
layouts holding more rows than one, and mapping files with mistakes (through the real CLI)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest


FIXTURE = Path(__file__).parents[1] / "fixtures" / "csv" / "shopify_orders_export_2026.csv"


@pytest.fixture
def cli(import_csv_cli):
    return import_csv_cli


def shopify_rows() -> list[list[str]]:
    return list(csv.reader(FIXTURE.open(encoding="utf-8", newline="")))


def write_rows(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_latin1_file_with_a_long_bad_cell_gets_its_rejected_report(cli, tmp_path, workers):
    """--encoding latin-1 (the README's own suggestion): the report is written in the file's encoding, so every
    character of the messages must fit it; a long cell shortened with '…' (not in latin-1) crashed the import."""
    rows = shopify_rows()
    total = rows[0].index("Total")
    rows[1][total] = "not an amount: a cell far longer than forty characters, é"
    path = write_rows(tmp_path / "latin.csv", rows, "latin-1")
    code, out, err = cli(path, "--shop", "legacy", "--preset", "shopify", "--encoding", "latin-1",
                         "--workers", workers)
    assert code == 1, err
    assert "line 2, Total: not a number" in err and "Traceback" not in err
    report = list(csv.reader((tmp_path / "latin.rejected.csv").open(encoding="latin-1", newline="")))
    assert report[1][total] == rows[1][total]
    assert report[1][-1].startswith("Total: not a number: 'not an amount: a cell far longer than fo...'")


EXTRA = Path(__file__).parents[1] / "fixtures" / "csv_extra"
ONE_ROW_MAPPING = """
[columns]
externalOrderId = "order"
totalCost = "total"
date = "date"
status = "status"
currency = "cur"
email = "mail"
[items]
externalItemId = "sku"
quantity = "qty"
line_total = "line"
"""


def test_generic_one_row_per_order_never_drops_a_second_row_of_an_order(cli, tmp_path):
    """layout = "order" (the default) reads items from an order's one row: a file with one row per line item,
    imported without layout = "item", lost every item but the first, silently (2 rows, 1 order, 0 rejected)."""
    (tmp_path / "m.toml").write_text(ONE_ROW_MAPPING)
    path = tmp_path / "erp.csv"
    path.write_text("order,date,status,total,cur,mail,sku,qty,line\n"
                    "1,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,a@example.com,P1,1,10.00\n"
                    "1,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,a@example.com,P2,1,20.00\n"
                    "2,2026-01-02T10:00:00+00:00,DELIVERED,5.00,EUR,b@example.com,P3,1,5.00\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml")
    assert code == 1
    assert "3 rows, 2 orders" in out and "enqueued:  1 orders" in out and "rejected:  2 rows (1 orders)" in out
    assert 'line 3, order: order 1 already has a row at line 2, and layout = "order" reads one row per order' in err
    assert 'set layout = "item"' in err
    report = list(csv.reader((tmp_path / "erp.rejected.csv").open(newline="")))
    assert [r[6] for r in report[1:]] == ["P1", "P2"]


@pytest.mark.parametrize("name, row_of_order", [("webtoffee_orders.csv", 2), ("skyverge_orders.csv", 2)])
def test_woocommerce_one_row_per_order_exports_never_drop_a_repeated_order_row(cli, tmp_path, name, row_of_order):
    """WebToffee and SkyVerge (default) write one row per order with every item in its cells: a second row with
    the same order_id (a repeated row, or items in separate rows) was read by nobody and dropped, silently."""
    lines = (EXTRA / name).read_text(encoding="utf-8").splitlines(keepends=True)
    again = lines[row_of_order - 1]
    path = tmp_path / name
    path.write_text("".join(lines[:row_of_order] + [again] + lines[row_of_order:]), encoding="utf-8")
    code, out, err = cli(path, "--shop", "legacy", "--preset", "woocommerce", "--timezone", "UTC")
    assert code == 1, err
    rows = len(lines)           # one more data row than the fixture's
    assert f"{rows} rows" in out and "rejected:  2 rows (1 orders)" in out
    assert f"line {row_of_order + 1}, order_id: order" in err
    assert f"already has a row at line {row_of_order}, and this export has one row per order" in err


GOOD_COLUMNS = '[columns]\nexternalOrderId = "order"\ntotalCost = "total"\ndate = "date"\nstatus = "status"\n' \
               'currency = "cur"\n'


@pytest.mark.parametrize("text, words", [
    ('columns = "order"\n', "columns must be a table"),
    ('[columns]\nexternalOrderId = 5\ntotalCost = "total"\ndate = "date"\nstatus = "status"\ncurrency = "cur"\n',
     "[columns] externalOrderId must be a column name (a non-empty string); got 5"),
    ('status = "DELIVERED"\n' + GOOD_COLUMNS, "status must be a table"),
    ('decimal_separator = 5\n' + GOOD_COLUMNS, "decimal_separator must be a string"),
    ('date_format = 5\n' + GOOD_COLUMNS, "date_format must be a string"),
    ('decimal_separator = ",-"\n' + GOOD_COLUMNS, "decimal_separator must be one character"),
    ('decimal_separator = ","\nthousands_separator = ","\n' + GOOD_COLUMNS,
     "decimal_separator and thousands_separator are both ','"),
    ('date_fromat = "%d.%m.%Y"\n' + GOOD_COLUMNS, "unknown setting 'date_fromat'"),
    (GOOD_COLUMNS + '[defaults]\ncurency = "EUR"\n', "[defaults] curency is not an add-orders field"),
    (GOOD_COLUMNS + '[status]\npaid = 3\n', "[status] 'paid' = 3 is not one of"),
])
def test_mapping_mistakes_are_one_line_errors_not_tracebacks(cli, tmp_path, text, words):
    (tmp_path / "m.toml").write_text(text)
    path = tmp_path / "o.csv"
    path.write_text("order,date,status,total,cur\n1,2026-01-01T10:00:00+00:00,DELIVERED,5.00,EUR\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml", "--dry-run")
    assert code == 2 and "Traceback" not in err
    assert err.startswith("orderbridge import-csv: mapping m.toml: ") and words in err, err


def test_generic_ids_and_phones_rounded_by_a_spreadsheet_are_refused(cli, tmp_path):
    """An ERP export opened and saved in Excel: a 14-digit order id becomes 1.67185E+13 and a phone 3.80501E+11.
    Imported as they were, orders got ids that several real orders share, and a phone of other digits
    (38050111) reached a contact. The Shopify preset refused these already; the generic one did not."""
    (tmp_path / "m.toml").write_text(GOOD_COLUMNS + 'phone = "phone"\nexternalCustomerId = "customer"\n'
                                     '[items]\nexternalItemId = "sku"\nquantity = "qty"\n')
    path = tmp_path / "o.csv"
    path.write_text("order,date,status,total,cur,phone,customer,sku,qty\n"
                    "1.67185E+13,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,3.80501E+11,,2E4,1\n"
                    "16718600000001,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,380501234567,7.70012E+11,2E4,1\n"
                    "16718600000002,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,380501234567,77,4.00638E+12,1\n"
                    "16718600000003,2026-01-01T10:00:00+00:00,DELIVERED,30.00,EUR,380501234567,77,2E4,1\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml", "--dry-run")
    assert code == 1 and "rejected:  3 rows (3 orders)" in out
    assert "line 2, order: '1.67185E+13': a spreadsheet turned the order id into a rounded number" in err
    assert "line 2, phone: '3.80501E+11': a spreadsheet turned the phone into a rounded number" in err
    assert "line 3, customer: '7.70012E+11': a spreadsheet turned the customer id into a rounded number" in err
    assert "line 4, sku: '4.00638E+12': a spreadsheet turned the item id into a rounded number" in err
    assert "line 5" not in err          # a product code such as 2E4 is no rounded number


def test_woocommerce_phones_rounded_by_a_spreadsheet_are_refused(cli, tmp_path):
    lines = (EXTRA / "webtoffee_orders.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "wt.csv"
    path.write_text(lines[0] + lines[1].replace("+49 (030) 123-4567", "4.93012E+11"), encoding="utf-8")
    code, out, err = cli(path, "--shop", "legacy", "--preset", "woocommerce", "--timezone", "UTC", "--dry-run")
    assert code == 1
    assert "line 2, billing_phone: '4.93012E+11': a spreadsheet turned the phone into a rounded number" in err


def test_a_mapping_default_for_additional_info_is_sent(cli, tmp_path):
    """The mapping check accepts [defaults] "additionalInfo.<name>" (its error lists it as a valid field), so a
    constant such as the sales channel of a whole export must reach the order; it was dropped, silently."""
    (tmp_path / "m.toml").write_text(GOOD_COLUMNS + 'email = "mail"\n"additionalInfo.number" = "number"\n'
                                     '[defaults]\n"additionalInfo.channel" = "pos"\n"additionalInfo.number" = "none"\n')
    path = tmp_path / "o.csv"
    path.write_text("order,date,status,total,cur,mail,number\n"
                    "1,2026-01-01T10:00:00+00:00,DELIVERED,5.00,EUR,a@example.com,N-1\n"
                    "2,2026-01-01T10:00:00+00:00,DELIVERED,5.00,EUR,a@example.com,\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml", "--dry-run")
    assert code == 0, err
    assert out.count('"channel": "pos"') == 2
    assert '"number": "N-1"' in out and '"number": "none"' in out


def test_a_mapping_without_an_order_id_column_stops_the_import(cli, tmp_path):
    """externalOrderId in [defaults] only passed the mapping check (it lists "[columns] (or [defaults])"), but
    orders are told apart by the order id column: every row was then rejected with 'externalOrderId: is empty'
    (and one constant id for every order would merge them all). A mapping mistake, named before importing."""
    (tmp_path / "m.toml").write_text('[columns]\ntotalCost = "total"\ndate = "date"\nstatus = "status"\n'
                                     'currency = "cur"\n[defaults]\nexternalOrderId = "X"\n')
    path = tmp_path / "o.csv"
    path.write_text("order,date,status,total,cur\n1,2026-01-01T10:00:00+00:00,DELIVERED,5.00,EUR\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml", "--dry-run")
    assert code == 2 and "Traceback" not in err
    assert err.startswith("orderbridge import-csv: mapping m.toml: [columns] lacks externalOrderId"), err


def test_shopify_skus_rounded_by_a_spreadsheet_are_refused(cli, tmp_path):
    """SKUs are often EAN barcodes (4006381333931); a spreadsheet rounds them to 4.00638E+12, and the Shopify
    preset took that as the item id: products whose codes share the first 6 digits became one item. The
    generic preset refuses such item ids, and the README says every preset does."""
    rows = shopify_rows()
    sku = rows[0].index("Lineitem sku")
    rows[1][sku] = "4.00638E+12"
    path = write_rows(tmp_path / "rounded.csv", rows)
    for workers in ("0", "2"):
        code, out, err = cli(path, "--shop", "legacy", "--preset", "shopify", "--dry-run", "--workers", workers)
        assert code == 1, err
        assert "rejected:  1 rows (1 orders)" in out
        assert "line 2, Lineitem sku: '4.00638E+12': a spreadsheet turned the item id into a rounded number" in err


def test_a_toml_date_in_mapping_defaults_is_read_as_its_iso_text(cli, tmp_path):
    """`date = 2026-01-01T10:00:00Z` is a TOML datetime, not a string: read as before the stricter mapping check."""
    (tmp_path / "m.toml").write_text('[columns]\nexternalOrderId = "order"\ntotalCost = "total"\nstatus = "status"\n'
                                     'currency = "cur"\nemail = "mail"\n[defaults]\ndate = 2026-01-01T10:00:00Z\n')
    path = tmp_path / "o.csv"
    path.write_text("order,status,total,cur,mail\n1,DELIVERED,5.00,EUR,a@example.com\n")
    code, out, err = cli(path, "--shop", "legacy", "--mapping", tmp_path / "m.toml", "--dry-run")
    assert code == 0, err
    assert '"date": "2026-01-01T10:00:00+00:00"' in out
