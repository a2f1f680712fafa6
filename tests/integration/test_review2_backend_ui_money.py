"""The UI writes an amount with its currency's own decimals: 12.345 KWD, 1500 JPY.

Before, every page wrote two decimals: a Kuwaiti dinar order of 12.345 read 12.35 (RFM cells, averages,
order and contact pages), and yen amounts grew a meaningless .00.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from tests.integration.test_ui_pages import AUTH, app, client, log_in, post_orders  # noqa: F401  (fixtures)

WHEN = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()


def order(oid, cur, total):
    return {"externalOrderId": oid, "externalCustomerId": f"c-{oid}", "totalCost": total, "status": "DELIVERED",
            "date": WHEN, "currency": cur}


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_amounts_keep_their_currencys_decimals_on_every_page(client):  # noqa: F811
    post_orders(client, [order("K1", "KWD", 12.345), order("J1", "JPY", 1500), order("U1", "USD", 10.5)])
    ids = {oid: client.get(f"/api/v1/orders/{oid}", headers=AUTH).headers for oid in ("K1", "J1")}
    kwd, jpy, kwd_contact = ids["K1"]["X-Order-Id"], ids["J1"]["X-Order-Id"], ids["K1"]["X-Contact-Id"]
    assert log_in(client).status_code == 302
    pages = {path: text_of(client.get(path).text) for path in
             ("/ui/orders", f"/ui/orders/{kwd}", f"/ui/orders/{jpy}", f"/ui/contacts/{kwd_contact}", "/ui/contacts",
              "/ui/reports")}
    assert "12.345" in pages["/ui/orders"] and "1500 " in pages["/ui/orders"] and "10.50" in pages["/ui/orders"]
    assert "12.345 KWD" in pages[f"/ui/orders/{kwd}"] and "1500 JPY" in pages[f"/ui/orders/{jpy}"]
    assert "12.345" in pages[f"/ui/contacts/{kwd_contact}"]
    assert "12.345 KWD" in pages["/ui/contacts"] and "1500 JPY" in pages["/ui/contacts"]
    assert "12.345 KWD" in pages["/ui/reports"] and "1500 JPY" in pages["/ui/reports"]
    for text in pages.values():
        assert "12.35" not in text.replace("12.345", "") and "1500.00" not in text
