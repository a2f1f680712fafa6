"""What real legacy exports meet: files saved by spreadsheets in other locales and encodings, one-row-per-order
layouts holding more rows than one, and mapping files with mistakes (through the real CLI)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from daemon.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "csv" / "shopify_orders_export_2026.csv"


@pytest.fixture
def cli(tmp_path, capsys):
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n\n'
                   '[[shops]]\nname = "legacy"\nplatform = "csv"\n')

    def run(*args):
        code = main(["--config", str(cfg), "import-csv", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def shopify_rows() -> list[list[str]]:
    return list(csv.reader(FIXTURE.open(encoding="utf-8", newline="")))


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_latin1_file_with_a_long_bad_cell_gets_its_rejected_report(cli, tmp_path, workers):
    """--encoding latin-1 (the README's own suggestion): the report is written in the file's encoding, so every
    character of the messages must fit it; a long cell shortened with '…' (not in latin-1) crashed the import."""
    rows = shopify_rows()
    total = rows[0].index("Total")
    rows[1][total] = "not an amount: a cell far longer than forty characters, é"
    path = tmp_path / "latin.csv"
    with path.open("w", encoding="latin-1", newline="") as f:
        csv.writer(f).writerows(rows)
    code, out, err = cli(path, "--shop", "legacy", "--preset", "shopify", "--encoding", "latin-1",
                         "--workers", workers)
    assert code == 1, err
    assert "line 2, Total: not a number" in err and "Traceback" not in err
    report = list(csv.reader((tmp_path / "latin.rejected.csv").open(encoding="latin-1", newline="")))
    assert report[1][total] == rows[1][total]
    assert report[1][-1].startswith("Total: not a number: 'not an amount: a cell far longer than fo...'")
