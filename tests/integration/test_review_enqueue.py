"""`orderbridge enqueue` on real-world files: a BOM, a broken first line, blank lines, bytes that are not UTF-8."""
from __future__ import annotations

import json

import pytest

from daemon.cli import main
from tests.delivery_helpers import wire_order


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "orderbridge.toml"
    path.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    return path


def enqueue(cfg, tmp_path, data: bytes, capsys) -> tuple[int, str, str]:
    f = tmp_path / "orders.jsonl"
    f.write_bytes(data)
    rc = main(["--config", str(cfg), "enqueue", str(f)])
    out, err = capsys.readouterr()
    return rc, out, err


def lines(*orders) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in orders).encode()


def test_a_byte_order_mark_is_not_an_error(cfg, tmp_path, capsys):
    rc, out, err = enqueue(cfg, tmp_path, b"\xef\xbb\xbf" + lines(wire_order(1), wire_order(2)), capsys)
    assert (rc, err) == (0, "") and "enqueued 2" in out


def test_a_bom_before_a_json_document_too(cfg, tmp_path, capsys):
    doc = json.dumps({"orders": [wire_order(1)]}, indent=2).encode()
    rc, out, err = enqueue(cfg, tmp_path, b"\xef\xbb\xbf" + doc, capsys)
    assert (rc, err) == (0, "") and "enqueued 1" in out


def test_a_broken_first_line_costs_only_that_line(cfg, tmp_path, capsys):
    rc, out, err = enqueue(cfg, tmp_path, b'{"externalOrderId": "O0", BROKEN\n' + lines(wire_order(1), wire_order(2)), capsys)
    assert rc == 1
    assert "line 1: not valid JSON" in err
    assert "enqueued 2, unchanged 0, invalid 1" in out


def test_line_numbers_count_leading_blank_lines(cfg, tmp_path, capsys):
    rc, out, err = enqueue(cfg, tmp_path, b"\n\n" + lines(wire_order(1), {"externalOrderId": "X"}), capsys)
    assert rc == 1 and "line 4 (externalOrderId X)" in err and "enqueued 1" in out


def test_bytes_that_are_not_utf8_are_named_without_a_stack_trace(cfg, tmp_path, capsys):
    order = json.dumps({**wire_order(1), "email": "caf\u00e9@example.com"}, ensure_ascii=False).encode("cp1252")
    rc, out, err = enqueue(cfg, tmp_path, order + b"\n", capsys)
    assert rc == 2
    assert "not UTF-8 text" in err and "0xe9" in err and "Traceback" not in err
