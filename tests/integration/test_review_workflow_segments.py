"""A saved segment that a workflow condition can test (issue 8): in a condition step and in a start condition."""
from __future__ import annotations

import pytest

from backend.workflows.definition import DefinitionError, validate
from tests.integration.test_workflows_runner import AUTH, Backend, order


def delivered(ext: str, customer: str) -> dict:
    return order(status="DELIVERED", ext=ext, externalCustomerId=customer, email=f"{customer}@example.com")


def save_segment(b: Backend, name: str, filters: dict) -> int:
    r = b.client.post("/api/v1/segments/saved", json={"name": name, "filters": filters}, headers=AUTH)
    assert r.status_code in (200, 201), r.json
    return r.json["id"]


def test_a_condition_step_branches_on_a_saved_segment(db_url):
    b = Backend(db_url, None, starters=False)
    save_segment(b, "repeat buyers", {"orderCountMin": 2})
    wid = b.create({"name": "loyalty", "start": {"event": "orderDELIVERED"}, "steps": [
        {"id": "loyal", "type": "condition", "all": [{"op": "in_segment", "value": "repeat buyers"}],
         "yes": "thanks", "no": None},
        {"id": "thanks", "type": "send_message", "channel": "store", "body": "welcome back ${eventKey}"}]})
    for ext, customer in (("A1", "once"), ("B1", "twice"), ("B2", "twice")):
        b.post(delivered(ext, customer))
        b.run()                        # membership is tested when the step runs
    assert [m["body"] for m in b.messages()] == ["welcome back B2"]
    paths = {r["key"]: r["path"] for r in b.runs(wid)}
    assert paths["A1"][0]["result"] == {"result": False} and paths["B2"][0]["result"] == {"result": True}
    b.engine.dispose()


def test_a_start_condition_can_exclude_a_segment(db_url):
    b = Backend(db_url, None, starters=False)
    save_segment(b, "big spenders", {"avgCheckMin": 100, "currency": "UAH"})
    wid = b.create({"name": "upsell", "start": {"event": "orderDELIVERED", "conditions": {
        "all": [{"op": "not_in_segment", "value": "big spenders"}]}},
        "steps": [{"id": "m", "type": "send_message", "channel": "store", "body": "try more, ${eventKey}"}]})
    b.post(delivered("S1", "small"))
    b.post({**delivered("L1", "large"), "totalCost": 500, "items": [{"externalItemId": "X", "quantity": 1, "cost": 500}]})
    b.run()
    assert [r["key"] for r in b.runs(wid)] == ["S1"]
    b.engine.dispose()


def test_a_deleted_segment_fails_the_run_with_its_name(db_url):
    b = Backend(db_url, None, starters=False)
    wid = b.create({"name": "ghost", "start": {"event": "orderDELIVERED"}, "steps": [
        {"id": "c", "type": "condition", "all": [{"op": "in_segment", "value": "no such segment"}], "yes": None, "no": None}]})
    b.post(delivered("G1", "g"))
    b.run()
    run = b.runs(wid)[0]
    assert run["state"] == "error" and "no saved segment 'no such segment'" in run["error"]
    b.engine.dispose()


def test_a_segment_rule_must_name_a_segment():
    with pytest.raises(DefinitionError) as e:
        validate({"name": "x", "start": {"event": "orderDELIVERED"}, "steps": [
            {"id": "c", "type": "condition", "all": [{"op": "in_segment"}], "yes": None, "no": None}]})
    assert "all[0].value: is required for op in_segment" in str(e.value)


def test_a_run_of_a_deleted_contact_does_not_test_the_next_holder_of_its_id(db_url):
    """DELETE /api/v1/contact (no erase) unlinks the contact from the runs waiting for it: their params must stop
    naming it too, or an in_segment step tests whoever is given the freed id next (SQLite reuses the largest)."""
    b = Backend(db_url, None, starters=False)
    save_segment(b, "buyers", {"orderCountMin": 1})
    b.create({"name": "later", "start": {"event": "orderDELIVERED"}, "steps": [
        {"id": "wait", "type": "timer", "hours": 1},
        {"id": "known", "type": "condition", "all": [{"op": "in_segment", "value": "buyers"}], "yes": "m", "no": None},
        {"id": "m", "type": "send_message", "channel": "store", "body": "thanks ${eventKey}"}]})
    b.post(delivered("C1", "carol"))
    b.run()
    assert b.client.delete("/api/v1/contact?externalCustomerId=carol", headers=AUTH).status_code == 200
    b.post(delivered("D1", "dave"))
    for _ in range(2):                 # carol's timer is over first, then dave's
        b.clock.advance(hours=2)
        b.run()
    assert [m["body"] for m in b.messages()] == ["thanks D1"]
    b.engine.dispose()
