"""A start condition on the order's fields (the format's own example: `totalCost greater_than 100`).

Before, a start condition saw only the event's params (eventKey, orderId, contactId and the contact's
identifiers), so a workflow meant for large orders, or for orders holding a product, never started.
"""
from __future__ import annotations

from backend.workflows import conditions
from tests.integration.test_workflows_runner import Backend, order


def big_orders(b: Backend, conditions_: dict) -> int:
    return b.create({"name": "big", "start": {"event": "orderDELIVERED", "conditions": conditions_},
                     "steps": [{"id": "m", "type": "send_message", "channel": "store", "body": "thanks ${eventKey}"}]})


def test_a_start_condition_on_the_total_starts_only_the_large_orders(db_url):
    b = Backend(db_url, None, starters=False)
    wid = big_orders(b, {"all": [{"param": "EmailAddress", "op": "is_set"},
                                 {"param": "totalCost", "op": "greater_than", "value": 100}]})
    b.post(order("DELIVERED", ext="small", totalCost=50, items=[]))
    b.post(order("DELIVERED", ext="large", totalCost=500, items=[]))
    b.run()
    assert [r["key"] for r in b.runs(wid)] == ["large"]
    assert [m["body"] for m in b.messages()] == ["thanks large"]
    b.engine.dispose()


def test_start_conditions_on_items_and_nested_order_fields(db_url):
    b = Backend(db_url, None, starters=False)
    wid = big_orders(b, {"any": [{"param": "items", "op": "contains", "value": "TEAPOT"},
                                 {"param": "additionalInfo.channel", "op": "equals", "value": "pos"}]})
    teapot = [{"externalItemId": "TEAPOT", "quantity": 1, "cost": 42.5}]
    b.post(order("DELIVERED", ext="with-teapot", items=teapot),
           order("DELIVERED", ext="in-store", additionalInfo={"channel": "pos"}),
           order("DELIVERED", ext="neither"))
    b.run()
    assert sorted(r["key"] for r in b.runs(wid)) == ["in-store", "with-teapot"]
    b.engine.dispose()


def test_a_condition_on_params_alone_reads_no_order():
    assert conditions.names({"all": [{"param": "EmailAddress", "op": "is_set"},
                                     {"any": [{"param": "additionalInfo.x", "op": "is_set"},
                                              {"op": "in_segment", "value": "vip"}]}]}) == {
        "EmailAddress", "additionalInfo", "contactId"}
