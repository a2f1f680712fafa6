"""An order re-sent after its contact was erased is matched afresh, never re-attached to the erased contact.

Before, the shop's next update of the order (a status change, say) linked it, with the email and name it
carries, back to the erased contact: the anonymous contact held personal data again, its workflows wrote to
that address, and no erase could reach it any more (an erased contact has no externalCustomerId to ask by).
"""
from __future__ import annotations

import json

from tests.integration.test_workflows_runner import AUTH, Backend, order


def contact_of(b: Backend, ext: str) -> int:
    return int(b.client.get(f"/api/v1/orders/{ext}", headers=AUTH).headers["X-Contact-Id"])


def test_an_update_after_the_erase_goes_to_a_new_contact_that_can_be_erased_again(db_url):
    b = Backend(db_url, None)
    b.post(order("INITIALIZED"))
    erased = contact_of(b, "W-77")
    assert b.client.delete("/api/v1/contact?externalCustomerId=cust-9&erase=true", headers=AUTH).status_code == 200
    b.post(order("DELIVERED"))                       # the shop's next update of the same order
    b.run()
    fresh = contact_of(b, "W-77")
    assert fresh != erased
    card = b.get(f"/api/v1/contacts/{erased}")
    assert card["erasedAt"] and card["ordersInfo"]["count"] == 0
    left = json.dumps([card, b.get(f"/api/v1/orders?contactId={erased}"), b.get(f"/api/v1/events?contactId={erased}"),
                       b.get(f"/api/v1/messages?contactId={erased}")])
    assert "buyer@example.com" not in left and "Olena" not in left
    [event] = b.get("/api/v1/events?type=orderDELIVERED")["events"]
    assert event["contactId"] == fresh and event["params"]["contactId"] == fresh
    assert {m["contactId"] for m in b.messages() if m["to"]} == {fresh}
    # the person can be erased again, by the customer id the update brought back
    r = b.client.delete("/api/v1/contact?externalCustomerId=cust-9&erase=true", headers=AUTH)
    assert r.status_code == 200 and r.json["contactId"] == fresh
    assert "buyer@example.com" not in json.dumps(b.get("/api/v1/orders/W-77"))
    b.engine.dispose()


def test_an_identical_resend_of_the_erased_version_stays_quiet(db_url):
    """What the erase left (an order without identifiers) cannot come back as such: an order needs one. A
    re-send of the original is a changed version: it is matched afresh and logs its event."""
    b = Backend(db_url, None, starters=False)
    b.post(order("DELIVERED"))
    assert b.client.delete("/api/v1/contact?externalCustomerId=cust-9&erase=true", headers=AUTH).status_code == 200
    b.post(order("DELIVERED"))
    assert len(b.get("/api/v1/events?key=W-77")["events"]) == 2
    b.post(order("DELIVERED"))                       # and once more: nothing new
    assert len(b.get("/api/v1/events?key=W-77")["events"]) == 2
    b.engine.dispose()
