"""WooCommerce exports recognised from their headers (WebToffee, SkyVerge, Analytics) and imported."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.csv import Context, CsvUnreadable, import_file

FIXTURES = Path(__file__).parents[1] / "fixtures"
EXTRA = FIXTURES / "csv_extra"


class ListSink:
    def __init__(self):
        self.orders = []

    def add(self, wire, line, built):
        self.orders.append(wire)

    def close(self):
        pass


def run(path, ctx=Context(), write_rejected=False):
    sink = ListSink()
    label, summary = import_file(path, "woocommerce", ctx, sink, write_rejected=write_rejected)
    return label, summary, {o["externalOrderId"]: o for o in sink.orders}


def test_webtoffee_rows_built_on_the_real_224_column_header():
    header = next(csv.reader((FIXTURES / "csv" / "webtoffee_order_export_header_real.csv").open(newline="")))
    assert next(csv.reader((EXTRA / "webtoffee_orders.csv").open(newline="")))[:len(header)] == header
    label, summary, orders = run(EXTRA / "webtoffee_orders.csv", Context(tz=ZoneInfo("Europe/Berlin")))
    assert label == "WooCommerce export (WebToffee)"
    assert (summary.orders, summary.rejected_rows, summary.notes) == (3, 0, {})
    o = orders["1501"]
    assert (o["status"], o["totalCost"], o["currency"], o["date"]) == ("DELIVERED", 43, "EUR", "2024-03-01T10:15:00+01:00")
    assert (o["externalCustomerId"], o["email"], o["phone"]) == ("17", "anna@example.com", "490301234567")
    assert o["items"] == [{"externalItemId": "12", "name": "Hoodie", "quantity": 2, "cost": 15},
                          {"externalItemId": "13", "name": "Mug: large", "quantity": 1, "cost": 8}]
    assert o["additionalInfo"] == {"orderNumber": "1501"} and o["paymentMethod"] == "Credit card"
    guest = orders["1502"]          # on-hold (BACS) is in progress; customer 0 is a guest; expanded item columns
    assert guest["status"] == "IN_PROGRESS" and "externalCustomerId" not in guest and guest["phone"] == "0501234567"
    assert guest["items"] == [{"externalItemId": "21", "name": "Cap", "quantity": 1, "cost": 19.99}]
    refunded = orders["1503"]       # refunded → CANCELLED; the variation id is the item
    assert refunded["status"] == "CANCELLED" and refunded["items"][0]["externalItemId"] == "31"


def test_the_shop_prefix_reaches_customer_ids_as_on_the_api_path(fixtures_dir):
    """WooCommerce customer ids are small per-site numbers: the API path prefixes them with the shop's
    order_id_prefix, and an export of the same shop must too, or one customer becomes two contacts."""
    from adapters.woocommerce import translate as woo
    from connector.config import ShopConfig
    api_order = json.loads((fixtures_dir / "woocommerce" / "rest_v3_orders_list_727_723_docs.json").read_text())[1]
    api = woo.translate(api_order, woo.options_of(ShopConfig(name="w", platform="woocommerce", order_id_prefix="eu-")))
    _, _, orders = run(EXTRA / "webtoffee_orders.csv", Context(order_id_prefix="eu-"))
    assert api.wire["externalCustomerId"] == f"eu-{api_order['customer_id']}"
    assert orders["eu-1501"]["externalCustomerId"] == "eu-17" and "externalCustomerId" not in orders["eu-1502"]


def test_skyverge_one_row_per_order_and_one_row_per_item_give_the_same_orders():
    label1, _, per_order = run(EXTRA / "skyverge_orders.csv")
    label2, s2, per_item = run(EXTRA / "skyverge_items.csv")
    assert "SkyVerge" in label1 and "one row per item" in label2
    assert s2.rows == 3 and s2.orders == 2
    assert per_order["2001"]["items"] == [{"externalItemId": "40", "name": "Tee", "quantity": 1, "cost": 9},
                                          {"externalItemId": "41", "name": "Cap", "quantity": 2, "cost": 5}]
    assert per_item == per_order
    # site time without an offset and no time zone set: read as UTC, and said so
    assert per_order["2001"]["date"] == "2023-11-20T14:30:00+00:00"
    assert any("no UTC offset" in n for n in s2.notes)


def test_status_map_of_the_shop_overrides_the_default():
    _, _, orders = run(EXTRA / "skyverge_orders.csv", Context(status_map={"processing": "INITIALIZED"}))
    assert orders["2001"]["status"] == "INITIALIZED"


def test_analytics_export_is_recognised_and_refused_with_the_reason():
    with pytest.raises(CsvUnreadable, match="Analytics export.*no email, phone"):
        run(EXTRA / "woocommerce_analytics.csv")


def test_unknown_header_says_which_formats_are_known(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("Order ID,Order Status\n1,completed\n")
    with pytest.raises(CsvUnreadable, match="WebToffee.*SkyVerge.*generic"):
        run(f)


def test_woocommerce_rows_with_mistakes(tmp_path):
    src = list(csv.reader((EXTRA / "skyverge_items.csv").open(newline="")))
    h = {n: i for i, n in enumerate(src[0])}
    src[1][h["date"]] = "yesterday"                 # order 2001, first row
    src[3][h["status"]] = "checkout-draft"          # order 2002
    src[3][h["billing_email"]] = ""
    src[2][h["order_total"]] = "999.99"             # order 2001, a later row contradicting the first
    with (tmp_path / "bad.csv").open("w", newline="") as f:
        csv.writer(f).writerows(src)
    _, s, orders = run(tmp_path / "bad.csv", write_rejected=True)
    assert orders == {} and s.rejected_rows == 3
    msgs = {(e.line, e.column): e.reason for e in s.errors}
    assert "not a date" in msgs[(2, "date")]
    assert "is a draft, not an order" in msgs[(4, "status")]
    assert msgs[(3, "order_total")].startswith("inconsistent with line 2 of the same order: '999.99' here")
    assert "no contact id" in msgs[(4, "billing_email/billing_phone")]
    assert (tmp_path / "bad.rejected.csv").exists()
