"""Durations no date arithmetic survives (1e308 days, NaN, Infinity) are refused on save, and a stored one
never holds up the event intake for the other workflows."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from backend.workflows import storage as t
from backend.workflows.definition import DefinitionError, validate
from tests.integration.test_workflows_runner import AUTH, Backend, order

STORE = {"id": "m", "type": "send_message", "channel": "store", "body": "hello ${eventKey}"}


def wf(**over) -> dict:
    return {"name": "t", "start": {"event": "orderDELIVERED"}, "steps": [STORE], **over}


@pytest.mark.parametrize("raw, field", [
    (wf(steps=[{"id": "w", "type": "timer", "days": 1e308}, STORE]), "steps[0] (id 'w')"),
    (wf(steps=[{"id": "w", "type": "timer", "minutes": float("nan")}, STORE]), "steps[0] (id 'w').minutes"),
    (wf(steps=[{"id": "w", "type": "timer", "days": 3651}, STORE]), "steps[0] (id 'w')"),
    (wf(unique={"mode": "once_per_days", "days": float("inf")}), "unique.days"),
    (wf(stop={"event": "orderCANCELLED", "before": {"days": 1e308}}), "stop.before"),
])
def test_out_of_range_durations_are_refused(raw, field):
    with pytest.raises(DefinitionError) as e:
        validate(raw)
    assert any(err.startswith(field) for err in e.value.errors), e.value.errors


def test_the_api_refuses_infinity_and_answers_valid_json(db_url):
    b = Backend(db_url, None, starters=False)
    body = '{"name": "x", "start": {"event": "orderDELIVERED"}, "unique": {"mode": "once_per_days", "days": Infinity},' \
           ' "steps": [{"id": "m", "type": "send_message", "channel": "store", "body": "x"}]}'
    r = b.client.post("/api/v1/workflows", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "unique.days" in r.json["error"]["message"]
    b.engine.dispose()


def test_a_stored_bad_definition_does_not_block_the_others(db_url):
    b = Backend(db_url, None, starters=False)
    bad = b.create(wf(name="bad", steps=[{"id": "w", "type": "timer", "days": 1}, STORE]))
    good = b.create(wf(name="good"))
    raw = wf(name="bad", steps=[{"id": "w", "type": "timer", "days": 1e308}, STORE])   # as a looser version stored it
    with b.engine.begin() as conn:
        conn.execute(update(t.definitions).where(t.definitions.c.id == bad).values(definition=json.dumps(raw)))
    b.post(order(status="DELIVERED", ext="D1"))
    b.run()
    assert [r["key"] for r in b.runs(good)] == ["D1"]
    assert [m["body"] for m in b.messages()] == ["hello D1"]
    b.engine.dispose()
