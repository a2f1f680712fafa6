"""The real Shopify orders export, imported with the shopify preset and checked order by order."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.csv import Context, import_file
from connector.store import OrderHead, OutboxRow, init_db, make_engine
from adapters.csv.sinks import OutboxSink

FIXTURE = Path(__file__).parents[1] / "fixtures" / "csv" / "shopify_orders_export_2026.csv"
ACV = "Apple Cider Vinegar Effervescent - Buy 1 Get 1 FREE - Color-free"
COD = {"deliveryMethod": "2-4 Day Delivery (Steadfast)", "paymentMethod": "Cash on Delivery (COD)",
       "currency": "BDT", "status": "INITIALIZED", "shipping": 100, "taxes": 0}


def single(oid, name, date, phone, first, last, address):
    order = {"externalOrderId": oid, "totalCost": 1500, "date": date, "phone": phone, "firstName": first,
             "deliveryAddress": address, "discount": 0, "additionalInfo": {"orderNumber": name},
             "items": [{"externalItemId": ACV, "name": ACV, "quantity": 1, "cost": 1400}], **COD}
    if last:
        order["lastName"] = last
    return order


# Written from the fixture by hand: Id → externalOrderId, Name → orderNumber, `Phone` (not the
# +8800… billing phone) as digits, dates with their offset, pending + unfulfilled → INITIALIZED.
EXPECTED = [
    (2, single("16718484078961", "#71733", "2026-04-05T21:06:21+04:00", "8801700000001", "Redacted", "Name1",
               "Redacted Street 1, Dhaka, BD")),
    (12, single("16718523728241", "#71734", "2026-04-05T21:37:56+04:00", "8801700000002", "Redacted", "Name2",
                "Redacted Street 2, Redacted Area, Barishal, Barishal, BD")),
    (22, single("16718615183729", "#71735", "2026-04-05T22:53:12+04:00", "8801700000003", "Redacted", "Name3",
                "Redacted Street 3, Dhaka, BD")),
    (32, single("16718658109809", "#71736", "2026-04-05T23:30:29+04:00", "8801700000004", "RedactedName4", None,
                "Redacted Street 4, Dhaka, BD")),
    # Two rows; the order-level code UPSELL DISCOUNT (400) is spread over the lines pro rata
    # (600 → 480, 1400 → 1120), so Σ cost × quantity + shipping = 1600 + 100 = Total 1700.
    (42, {"externalOrderId": "16718821261681", "totalCost": 1700, "date": "2026-04-06T01:48:03+04:00",
          "phone": "8801700000005", "firstName": "RedactedName5", "deliveryAddress": "000000, 000000, BD",
          "discount": 400, "additionalInfo": {"orderNumber": "#71737", "discountCode": "UPSELL DISCOUNT"},
          "items": [{"externalItemId": "Female Solid Perfume", "name": "Female Solid Perfume", "quantity": 1, "cost": 480},
                    {"externalItemId": ACV, "name": ACV, "quantity": 1, "cost": 1120}], **COD}),
]


class ListSink:
    def __init__(self):
        self.orders: list[tuple[int, dict]] = []

    def add(self, wire, line, built):
        self.orders.append((line, wire))

    def close(self):
        pass


def test_fixture_gives_five_orders_as_written_by_hand():
    sink = ListSink()
    label, summary = import_file(FIXTURE, "shopify", Context(), sink, write_rejected=False)
    assert label == "Shopify orders export"
    assert (summary.rows, summary.orders, summary.rejected_rows, summary.notes) == (6, 5, 0, {})
    assert len(sink.orders) == len(EXPECTED)
    for (line, wire), (want_line, want) in zip(sink.orders, EXPECTED):
        assert line == want_line, want["externalOrderId"]
        assert wire == want, want["externalOrderId"]


def test_prefix_of_the_shop_applies():
    sink = ListSink()
    import_file(FIXTURE, "shopify", Context(order_id_prefix="bd-"), sink, write_rejected=False)
    assert [w["externalOrderId"] for _, w in sink.orders][-1] == "bd-16718821261681"


def test_import_into_outbox_then_reimport_is_a_no_op(db_url):
    engine = make_engine(db_url)
    init_db(engine)
    first = OutboxSink(engine, "legacy", FIXTURE.name, chunk=2)      # several chunks, several commits
    import_file(FIXTURE, "shopify", Context(), first, write_rejected=False)
    assert (first.result.enqueued, first.result.unchanged) == (5, 0)
    again = OutboxSink(engine, "legacy", FIXTURE.name)
    import_file(FIXTURE, "shopify", Context(), again, write_rejected=False)
    assert (again.result.enqueued, again.result.unchanged) == (0, 5)
    with Session(engine) as s:
        rows = s.execute(select(OutboxRow.external_order_id, OutboxRow.source)).all()
        heads = s.execute(select(OrderHead.external_order_id, OrderHead.source_updated_at)).all()
    assert sorted(rows)[-1] == ("16718821261681", f"csv:{FIXTURE.name}:42")
    assert len(rows) == 5 and len(heads) == 5
    engine.dispose()


def test_a_newer_api_version_is_not_overwritten_by_the_export(db_url):
    """The export's latest timestamp is its version time: an order the API delivered later wins."""
    from datetime import datetime, timezone
    from connector.outbox import Version, enqueue
    engine = make_engine(db_url)
    init_db(engine)
    api = dict(EXPECTED[0][1], status="DELIVERED")
    with Session(engine) as s:
        enqueue(s, [Version("legacy", api, source="poll", source_updated_at=datetime(2026, 4, 8, tzinfo=timezone.utc))])
        s.commit()
    sink = OutboxSink(engine, "legacy", FIXTURE.name)
    import_file(FIXTURE, "shopify", Context(), sink, write_rejected=False)
    assert (sink.result.enqueued, sink.result.stale) == (4, 1)
    engine.dispose()
