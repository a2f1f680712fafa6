"""The generic preset: a TOML mapping for files from other systems (order or item layout)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters.csv import Context, import_file
from connector.errors import ConfigError

EXTRA = Path(__file__).parents[1] / "fixtures" / "csv_extra"


class ListSink:
    def __init__(self):
        self.orders = []

    def add(self, wire, line, built):
        self.orders.append(wire)

    def close(self):
        pass


def run(path, mapping, delimiter, **kw):
    sink = ListSink()
    _, summary = import_file(path, "generic", Context(mapping=mapping, **kw), sink, delimiter=delimiter,
                             write_rejected=False)
    return summary, sink.orders


def test_one_row_per_order_with_decimal_comma_and_day_first_dates():
    summary, orders = run(EXTRA / "generic_orders.csv", EXTRA / "generic_orders.toml", ";")
    assert summary.rejected_rows == 0
    assert orders[0] == {
        "externalOrderId": "A-1", "totalCost": 1234.5, "status": "IN_PROGRESS", "date": "2024-02-03T14:05:00+01:00",
        "currency": "EUR", "externalCustomerId": "K-9", "email": "kim@example.com", "shipping": 4.5,
        "additionalInfo": {"orderNumber": "A-1"}, "items": [{"externalItemId": "SKU-1", "quantity": 2, "cost": 615}]}
    assert [o["status"] for o in orders] == ["IN_PROGRESS", "DELIVERED", "CANCELLED"]
    assert orders[1]["phone"] == "491512345678"


def test_one_row_per_item_tab_separated():
    summary, orders = run(EXTRA / "generic_items.tsv", EXTRA / "generic_items.toml", "tab")
    assert (summary.rows, summary.orders) == (3, 2)
    assert orders[0]["items"] == [{"externalItemId": "P1", "name": "Pen", "quantity": 2, "cost": 5},
                                  {"externalItemId": "P2", "name": "Pad", "quantity": 1, "cost": 20}]
    assert orders[0]["status"] == "DELIVERED" and orders[0]["date"] == "2024-06-01T10:00:00+03:00"


def test_a_later_row_that_contradicts_its_order_is_named(tmp_path):
    rows = (EXTRA / "generic_items.tsv").read_text().splitlines()
    rows[2] = rows[2].replace("\t30.00\t", "\t31.00\t").replace("ira@example.com", "  ")   # blank is fine
    (tmp_path / "items.tsv").write_text("\n".join(rows) + "\n")
    summary, orders = run(tmp_path / "items.tsv", EXTRA / "generic_items.toml", "tab")
    assert [o["externalOrderId"] for o in orders] == ["9002"] and summary.rejected_rows == 2
    assert [(e.line, e.column, e.reason) for e in summary.errors] == [
        (3, "total", "inconsistent with line 2 of the same order: '31.00' here, '30.00' there")]


def test_mapping_mistakes_are_config_errors(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[columns]\nexternalOrderId = "Nr"\ntotal = "Summe"\n')
    with pytest.raises(ConfigError, match="total is not an add-orders field"):
        run(EXTRA / "generic_orders.csv", bad, ";")
    bad.write_text('[columns]\nexternalOrderId = "Nr"\n')
    with pytest.raises(ConfigError, match="lacks totalCost, date, status, currency"):
        run(EXTRA / "generic_orders.csv", bad, ";")
    with pytest.raises(ConfigError, match="does not exist"):
        run(EXTRA / "generic_orders.csv", tmp_path / "none.toml", ";")


def test_unknown_status_value_and_separator_mistakes_name_the_cell(tmp_path):
    f = tmp_path / "o.csv"
    text = (EXTRA / "generic_orders.csv").read_text().replace("versendet", "verloren").replace("5,00;", "5.00;")
    f.write_text(text)
    summary, orders = run(f, EXTRA / "generic_orders.toml", ";")
    assert [o["externalOrderId"] for o in orders] == ["A-1"]
    msgs = {(e.line, e.column): e.reason for e in summary.errors}
    assert "unknown status 'verloren'" in msgs[(3, "Status")] and "bezahlt" in msgs[(3, "Status")]
    assert "decimal separator ','" in msgs[(4, "Summe")]  # 5.00 is not 500


def test_the_mapping_can_name_the_delimiter(tmp_path, capsys):
    from daemon.cli import main
    mapping = tmp_path / "m.toml"
    mapping.write_text('delimiter = ";"\n' + (EXTRA / "generic_orders.toml").read_text())
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n[[shops]]\nname = "erp"\nplatform = "csv"\n'
                   f'order_id_prefix = "erp-"\n')
    shutil.copy(EXTRA / "generic_orders.csv", tmp_path / "o.csv")
    code = main(["--config", str(cfg), "import-csv", str(tmp_path / "o.csv"), "--shop", "erp", "--mapping", str(mapping)])
    out = capsys.readouterr().out
    assert code == 0 and "enqueued:  3 orders" in out
