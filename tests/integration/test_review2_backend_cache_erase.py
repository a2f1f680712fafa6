"""An erase changes the cached reports' data version: an RFM cell's page says at once that it counts an
erased contact. Before, for up to a minute (the cache's time limit) the page listed one contact fewer than
its cell counted and said none was erased."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.integration.test_ui_pages import AUTH, app, client, log_in, post_orders  # noqa: F401  (fixtures)

WHEN = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()


def test_an_rfm_cell_page_counts_the_contact_erased_a_moment_ago(client):  # noqa: F811
    post_orders(client, [{"externalOrderId": oid, "externalCustomerId": oid, "email": f"{oid}@example.com",
                          "totalCost": 5, "status": "DELIVERED", "date": WHEN, "currency": "USD"} for oid in ("a", "b")])
    assert log_in(client).status_code == 302
    cell = "/ui/contacts?rfm=0-0"                       # <2w, one order
    page = client.get(cell).text
    assert "a@example.com" in page and "erased-in-cell" not in page
    assert client.delete("/api/v1/contact?externalCustomerId=a&erase=true", headers=AUTH).status_code == 200
    page = client.get(cell).text
    assert "a@example.com" not in page and "b@example.com" in page
    assert "The report counts 1 erased contact(s) in this cell" in page
