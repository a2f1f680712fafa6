"""Helpers for the delivery tests: realistic orders and a small fake add-orders target (for `responses`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from connector.format import InvalidOrder, parse_order

TARGET = "http://target.test/api/v1"


def wire_order(i: int, *, status: str = "DELIVERED", total: float = 31.5, **extra) -> dict:
    items = [{"externalItemId": f"SKU{j}", "name": f"Item {j}", "quantity": 1 + j % 2, "cost": 10.5} for j in range(2)]
    return {"externalOrderId": f"O{i}", "externalCustomerId": f"C{i % 50}", "email": f"c{i % 50}@example.com",
            "totalCost": total, "status": status, "date": "2025-06-01T12:00:00+03:00", "currency": "EUR",
            "items": items, **extra}


@dataclass
class FakeTarget:
    """Answers like the add-orders API: per-order failures in failedOrders; scripted faults first."""

    faults: list[tuple[int, str, dict]] = field(default_factory=list)   # (status, body, headers), used in turn
    poison: set[str] = field(default_factory=set)     # ids that make the whole request a 400
    received: list[dict] = field(default_factory=list)  # every accepted order, in arrival order
    requests: int = 0

    def callback(self, request):
        self.requests += 1
        if self.faults:
            status, body, headers = self.faults.pop(0)
            return status, headers, body
        orders = json.loads(request.body)["orders"]
        bad = [o["externalOrderId"] for o in orders if o.get("externalOrderId") in self.poison]
        if bad:
            return 400, {}, f"orders: invalid request, cannot read order {bad[0]}"
        failed = []
        for o in orders:
            try:
                parse_order(o)
            except InvalidOrder as e:
                failed.append({"order": o, "error": e.message})
                continue
            self.received.append(o)
        if len(failed) == 1:       # Yespo's serialiser turns a one-element list into an object
            return 200, {}, json.dumps({"failedOrders": failed[0]})
        return 200, {}, json.dumps({"failedOrders": failed} if failed else {})

    def install(self, rsps) -> "FakeTarget":
        rsps.add_callback("POST", f"{TARGET}/orders", callback=self.callback)
        return self

    def ids(self) -> list[str]:
        return [o["externalOrderId"] for o in self.received]
