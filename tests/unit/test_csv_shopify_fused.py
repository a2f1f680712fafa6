"""The Shopify preset's fused path (cells → canonical JSON) gives exactly what building, validating and
encoding give: the same order id, text, hash and notes, or it steps aside (None) for the careful path."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.csv.importer import translate
from adapters.csv.presets.base import Header
from adapters.csv.presets.shopify import ShopifyExport
from adapters.csv.reader import Row, read_rows
from connector.format import InvalidOrder, validate_to_canonical

FIXTURES = Path(__file__).parents[1] / "fixtures"
FILES = [FIXTURES / "csv" / "shopify_orders_export_2026.csv", FIXTURES / "csv_extra" / "shopify_broken.csv",
         FIXTURES / "csv_extra" / "shopify_73col_bom_crlf.csv"]
HEADER = next(csv.reader(FILES[0].open(newline="", encoding="utf-8-sig")))


def careful(bound: ShopifyExport, rows: list[Row]):
    """What the importer sends when the fused path steps aside: build, then validate and encode."""
    built = bound.build(rows)
    _, text, digest = validate_to_canonical(built.data)
    return text, digest, built.source_updated_at, built.notes


def check(bound: ShopifyExport, rows: list[Row]) -> bool:
    """True when the fused path took the order; asserts it agrees with the careful path."""
    fused = bound.fast_canonical(rows)
    if fused is None:
        return False
    if not any("\x00" in c for r in rows for c in r.cells):
        assert bound.fast_canonical(rows, nul_free=True) == fused
    oid, text, updated_at, notes = fused
    ok, t_oid, t_text, digest, t_updated, t_notes = translate(bound, rows)
    assert (ok, t_oid, t_text, t_updated, t_notes) == ("ok", oid, text, updated_at, notes)
    want_text, want_digest, want_updated, want_notes = careful(bound, rows)
    assert (text, digest, updated_at, notes) == (want_text, want_digest, want_updated, want_notes)
    return True


def orders_of(path: Path) -> tuple[ShopifyExport, list[list[Row]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = read_rows(csv.reader(f), path.name)
        header = Header(next(rows).cells)
        bound = ShopifyExport(header)
        groups: dict[str, list[Row]] = {}
        for row in rows:
            row.cells.extend([""] * (header.width + 1 - len(row.cells)))
            groups.setdefault(bound.key(row.cells), []).append(row)
    return bound, list(groups.values())


def test_every_fixture_order_gives_the_careful_text():
    for path in FILES:
        bound, groups = orders_of(path)
        taken = sum(check(bound, g) for g in groups)
        if path == FILES[0]:
            assert taken == len(groups)        # every valid order of the real export takes the fused path


def test_the_fused_text_keeps_the_canonical_key_order():
    bound, groups = orders_of(FILES[0])
    for g in groups:
        _, text, _, _ = bound.fast_canonical(g)
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Rows of one order. Most draws keep to values an order may validly have (awkward ones included), so the
# fused path itself is compared; the rest draw from everything, errors included, to test stepping aside.
VALID = {
    "amount": ["10.00", "0.00", "4.95", " 7.5 ", "1500", "0.005", "12.345", "1E+3", "0.10",
               "9999999999999.99", "999999999999.999"],       # the largest for EUR/USD and KWD (too large for KWD)
    "quantity": ["1", "2", "3", "1.5", " 2 ", "1.00000000000000"],
    "text": ["", " ", "Standard", "'10115", "-", "Café – Ünïcode", 'a"b', "tab\tin", "  padded  ", "line\nbreak",
             "\\back", "' lead", "Jane Q Doe", "Smith -"],
    "email": ["", "buyer@example.com", " Buyer@Example.COM ", "b" * 245 + "@ex.co.uk"],      # the longest: 254
    "phone": ["", "+49 30 1234567", "1234", "(555) 010-9999", "٣٣٣٣٣٣"],
    "date": ["2025-05-11 09:55:16 -0400", "2025-05-11 09:55:16 +0000", "0001-01-01 00:10:00 +0100",
             "9999-12-31 23:59:59 -0100", "2025-05-11 09:55:16 +0530", "2025-05-11 09:55:16 -0000",
             "2025-05-11 09:55:16 +0560", " 2024-02-29 23:59:59 +1400 ", "2025-05-11 095516.1 +0400"],
    "financial": ["paid", "pending", "refunded", "Paid", "partially_refunded", "voided", "weird"],
    "fulfilment": ["fulfilled", "unfulfilled", "", "partial", "restocked"],
    "currency": ["EUR", "eur", "JPY", "KWD", " usd "],
    "id": ["", "5000000001", " 77 "],
    "later": ["", "", "#"],
}
BROKEN = {
    "amount": ["-1.00", "abc", "", "99999999999999999.00", "NaN", "3,50", "10000000000000.00", "9999999999999.995",
               "999999999999999.99"],
    "quantity": ["0", "", "x", "1.234567890123456", "1E-400"],
    "text": ["nul\x00", "4.00638E+12"],      # a SKU (an EAN) a spreadsheet rounded
    "email": ["not-an-email", "a@b", "x@y.z\x00", "b" * 246 + "@ex.co.uk"],
    "phone": ["1.67188E+13"],
    "date": ["2025-02-30 10:00:00 +0200", "2025-05-11T09:55:16Z", "", "2025-05-11 09:55:16 +05:30"],
    "financial": ["", "odd"],
    "fulfilment": ["odd"],
    "currency": ["XXX", ""],
    "id": ["12a", "1.67188E+13"],
    "later": ["1.00"],
}


@st.composite
def shopify_orders(draw):
    broken = draw(st.integers(0, 3)) == 0

    def v(kind):
        return draw(st.sampled_from(VALID[kind] + (BROKEN[kind] if broken else [])) | st.text(max_size=6)
                    if broken and kind == "text" else st.sampled_from(VALID[kind] + (BROKEN[kind] if broken else [])))

    order = {"Name": draw(st.sampled_from(["#1001", "#1002", " #7 "])), "Email": v("email"),
             "Financial Status": v("financial"), "Fulfillment Status": v("fulfilment"), "Currency": v("currency"),
             "Subtotal": v("amount"), "Shipping": v("amount"), "Taxes": v("amount"), "Total": v("amount"),
             "Discount Code": v("text"), "Discount Amount": v("amount"), "Shipping Method": v("text"),
             "Created at": v("date"), "Paid at": draw(st.sampled_from(["", "2025-05-12 10:00:00 -0400", "junk"])),
             "Cancelled at": draw(st.sampled_from(["", "", "2025-05-13 10:00:00 -0400", "junk"])),
             "Billing Name": v("text"), "Billing Phone": v("phone"), "Shipping Name": v("text"),
             "Shipping Address1": v("text"), "Shipping City": v("text"), "Shipping Zip": v("text"),
             "Shipping Country": v("text"), "Payment Method": v("text"), "Id": v("id"), "Phone": v("phone")}
    if not broken and not order["Email"] and not order["Phone"]:
        order["Email"] = "buyer@example.com"
    rows = []
    for i in range(draw(st.integers(1, 4))):
        later = v("later")
        cells = dict(order) if i == 0 else {"Name": order["Name"], "Total": later if later != "#" else order["Total"]}
        cells.update({"Lineitem quantity": v("quantity"), "Lineitem name": v("text") or "Item",
                      "Lineitem price": v("amount"), "Lineitem sku": v("text"), "Lineitem discount": v("amount")})
        rows.append(Row(2 + i, [cells.get(h, "") for h in HEADER] + [""]))
    return rows


BOUND = ShopifyExport(Header(HEADER), prefix="", status_map={"weird": "DELIVERED"})
PREFIXED = ShopifyExport(Header(HEADER), prefix="shop-", status_map={})


def test_fused_path_agrees_with_build_validate_encode():
    taken = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(shopify_orders(), st.booleans())
    @example([Row(2, [{"Name": "#1", "Email": "a@b.co", "Financial Status": "paid", "Currency": "EUR",
                       "Total": "5.00", "Created at": "2025-05-11 09:55:16 -0400", "Lineitem quantity": "1",
                       "Lineitem name": "x", "Lineitem price": "5.00"}.get(h, "") for h in HEADER] + [""])], False)
    def agrees(rows, prefixed):
        try:
            taken.append(check(PREFIXED if prefixed else BOUND, rows))
        except InvalidOrder as e:
            raise AssertionError(f"the fused path took an order the format refuses: {e}") from None

    agrees()
    # the comparison must not be empty: a fused path that always stepped aside would pass it
    assert sum(taken) >= 100, sum(taken)


def test_a_sku_a_spreadsheet_rounded_sends_the_order_to_the_careful_path():
    """The careful path refuses a rounded SKU (4.00638E+12); the fused path must step aside, not send it."""
    import pytest
    from adapters.csv.presets.base import OrderRejected

    for sku, fused in (("4.00638E+12", False), ("1E+3", True), ("4006381333931", True)):
        cells = {"Name": "#1", "Email": "a@b.co", "Financial Status": "paid", "Currency": "EUR", "Total": "5.00",
                 "Created at": "2025-05-11 09:55:16 -0400", "Lineitem quantity": "1", "Lineitem name": "x",
                 "Lineitem price": "5.00", "Lineitem sku": sku}
        rows = [Row(2, [cells.get(h, "") for h in HEADER] + [""])]
        assert check(BOUND, rows) is fused
        if not fused:
            with pytest.raises(OrderRejected, match="Lineitem sku: '4.00638E[+]12': a spreadsheet turned the item"):
                BOUND.build(rows)


def test_the_parsed_cells_kept_are_bounded_over_all_currencies_together(monkeypatch):
    """Amounts and items are kept parsed per currency; the bound is one for all of them, or a file in many
    currencies would keep many times as much (memory must stay flat whatever the file)."""
    import adapters.csv.presets.shopify as shopify
    monkeypatch.setattr(shopify, "AMOUNTS_CACHED", 7)
    monkeypatch.setattr(shopify, "ITEMS_CACHED", 3)
    bound, orders = orders_of(FILES[0])         # made after the bounds were set
    currency, total = HEADER.index("Currency"), HEADER.index("Total")
    made = 0
    for n, code in enumerate(["EUR", "USD", "GBP", "PLN", "CZK"]):
        for rows in orders:
            first = rows[0].cells
            if not first[currency]:
                continue
            cells = list(first)
            cells[currency], cells[total] = code, f"{100 + n}.{len(cells[total]) % 10}5"
            made += bound.fast_canonical([Row(rows[0].line, cells), *rows[1:]]) is not None
    assert made > 5
    assert sum(map(len, bound._amount_cache.values())) <= 7
    assert sum(map(len, bound._item_cache.values())) <= 3
