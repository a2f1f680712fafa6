"""Workflow definitions are validated with precise messages; templates render inert; conditions decide."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backend.workflows import conditions, templates
from backend.workflows.definition import DefinitionError, validate
from backend.workflows.model import timer_due, variables
from backend.workflows.starters import starter_files


def _wf(**over):
    base = {"name": "t", "start": {"event": "orderDELIVERED"},
            "steps": [{"id": "order", "type": "get_order"},
                      {"id": "mail", "type": "send_message", "channel": "store", "body": "Hi ${firstName}"}]}
    base.update(over)
    return base


def _errors(raw) -> list[str]:
    with pytest.raises(DefinitionError) as e:
        validate(raw)
    return e.value.errors


def test_a_valid_definition_is_normalised():
    d = validate(_wf())
    assert d["steps"][0]["next"] == "mail" and d["steps"][1]["next"] is None
    assert d["unique"] == {"mode": "every"} and d["stop"] == [] and d["active"] is True
    assert d["steps"][1]["to"] == "${EmailAddress}"


@pytest.mark.parametrize("path", starter_files(), ids=lambda p: p.name)
def test_every_starter_is_valid(path):
    validate(json.loads(path.read_text()))


@pytest.mark.parametrize("change, expected", [
    ({"name": ""}, "name: is required"),
    ({"start": {}}, "start.event: is required"),
    ({"unique": {"mode": "sometimes"}}, "unique.mode: must be one of every, once_per_key, once_per_days"),
    ({"unique": {"mode": "once_per_days"}}, "unique.days: must be a positive number"),
    ({"stop": {"event": "orderCANCELLED", "match": "email"}}, "stop.match: must be one of key, contact, key_or_contact"),
    ({"start": {"event": "x", "conditions": {"all": [{"param": "a", "op": "like", "value": 1}]}}},
     "start.conditions.all[0].op: must be one of equals"),
    ({"start": {"event": "x", "conditions": {"any": [{"param": "a", "op": "one_of", "value": "x"}]}}},
     "start.conditions.any[0].value: must be a list for op one_of"),
    ({"steps": []}, "steps: must be a non-empty list"),
    ({"steps": [{"id": "a", "type": "teleport"}]}, "steps[0] (id 'a').type: must be one of get_order"),
    ({"steps": [{"id": "a", "type": "send_message", "channel": "fax", "body": "x"}]},
     "steps[0] (id 'a').channel: must be one of auto, store, email, webhook, got 'fax'"),
    ({"steps": [{"id": "a", "type": "send_message", "channel": "store"}]}, "steps[0] (id 'a').body: is required"),
    ({"steps": [{"id": "a", "type": "send_message", "channel": "webhook", "body": "x"}]},
     "steps[0] (id 'a').url: is required for the webhook channel"),
    ({"steps": [{"id": "a", "type": "timer"}]}, "steps[0] (id 'a'): a timer needs minutes, hours and/or days"),
    ({"steps": [{"id": "a", "type": "timer", "days": -1}]}, "steps[0] (id 'a').days: must be a number ≥ 0"),
    ({"steps": [{"id": "a", "type": "get_order", "next": "zzz"}]}, "steps[0] (id 'a').next: no step has id 'zzz'"),
    ({"steps": [{"id": "a", "type": "get_order"}, {"id": "a", "type": "get_order"}]},
     "steps[1] (id 'a').id: 'a' is used by more than one step"),
    ({"steps": [{"id": "a", "type": "get_order", "next": "b"}, {"id": "b", "type": "get_order", "next": "a"}]},
     "steps: the steps form a loop: a → b → a"),
    ({"steps": [{"id": "a", "type": "get_order", "next": None}, {"id": "b", "type": "get_order"}]},
     "steps[1] (id 'b'): is never reached from the first step"),
    ({"steps": [{"id": "a", "type": "send_message", "channel": "store", "body": "{% for x in %}"}]},
     "steps[0] (id 'a').body: template syntax error"),
    ({"steps": [{"id": "a", "type": "send_message", "channel": "store", "body": "${__import__('os').system('id')}"}]},
     "steps[0] (id 'a').body: ${__import__('os').system('id')} is not a variable name"),
])
def test_an_invalid_definition_names_the_field(change, expected):
    errors = _errors(_wf(**change))
    assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_is_reported_at_once():
    errors = _errors({"name": 3, "start": None, "steps": "no"})
    assert [e.split(":")[0] for e in errors] == ["name", "start.event", "steps"]


# --- templates -------------------------------------------------------------------------------

ORDER = {"externalOrderId": "W-1", "firstName": "Olena", "totalCost": 42.5,
         "items": [{"name": "Blue Teapot", "quantity": 1}, {"name": "Cup", "quantity": 2}],
         "additionalInfo": {"orderNumber": "#1001"}}
V = variables({"params": {"EmailAddress": "a@example.com", "eventKey": "W-1"}, "order": ORDER, "key": "W-1"})


def test_yespo_variables_and_jinja_loops():
    body = templates.render("${firstName} ${externalOrderId} ${additionalInfo.orderNumber} ${items.1.name}|"
                            "{% for i in items %}{{ i.name }}x{{ i.quantity }};{% endfor %}", V)
    assert body == "Olena W-1 #1001 Cup|Blue Teapotx1;Cupx2;"


def test_a_missing_value_renders_empty_like_velocity_quiet_reference():
    assert templates.render("[${nope}][$!{nope}][{{ nope }}][{{ order.nope.deeper }}]", V) == "[][][][]"


@pytest.mark.parametrize("value", ["{{ ''.__class__.__mro__ }}", "${EmailAddress}", "{% raw %}", "{{ 7*7 }}"])
def test_values_are_inserted_once_and_never_parsed(value):
    v = variables({"params": {"firstName": value}, "order": {}, "key": "k"})
    assert templates.render("Hi ${firstName}!", v) == f"Hi {value}!"


@pytest.mark.parametrize("evil", [
    "{{ ''.__class__ }}", "${__class__}${firstName.__class__}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}", "{{ self._TemplateReference__context }}", "{{ lipsum.__globals__ }}",
    "{{ 'x' * 100000000 }}", "{{ 9 ** 99999999 }}", "{{ range(10**9) | list }}"])
def test_template_code_is_inert(evil):
    try:
        out = templates.render("[" + evil + "]", V)
    except templates.TemplateProblem:
        return                                   # refused: the step fails with this message
    assert out == "[]"


def test_a_dollar_brace_that_is_not_a_name_stays_literal_text():
    assert templates.render("${__import__('os').system('id')}", V) == "${__import__('os').system('id')}"


# --- conditions and timers -------------------------------------------------------------------

@pytest.mark.parametrize("rule, expected", [
    ({"param": "firstName", "op": "equals", "value": "Olena"}, True),
    ({"param": "totalCost", "op": "equals", "value": 42.5}, True),
    ({"param": "firstName", "op": "not_equals", "value": "Olena"}, False),
    ({"param": "EmailAddress", "op": "is_set"}, True),
    ({"param": "phone", "op": "is_empty"}, True),
    ({"param": "EmailAddress", "op": "contains", "value": "@example.com"}, True),
    ({"param": "firstName", "op": "one_of", "value": ["Ann", "Olena"]}, True),
    ({"param": "totalCost", "op": "greater_than", "value": 100}, False),
    ({"param": "items", "op": "contains", "value": "Cup"}, True),
])
def test_condition_rules(rule, expected):
    assert conditions.test(rule, V) is expected


def test_all_and_any_nest():
    yes = {"param": "firstName", "op": "is_set"}
    no = {"param": "phone", "op": "is_set"}
    assert conditions.holds({"all": [yes, {"any": [no, yes]}]}, V)
    assert not conditions.holds({"any": [no, {"all": [yes, no]}]}, V)


def test_timer_due_by_duration_or_param():
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert timer_due({"seconds": 3600}, V, now) == (now + timedelta(hours=1), None)
    v = variables({"params": {"when": "2025-01-03T10:00:00+02:00"}, "key": "k"})
    assert timer_due({"until_param": "when"}, v, now)[0] == datetime(2025, 1, 3, 8, tzinfo=timezone.utc)
    assert "not an ISO 8601 date" in timer_due({"until_param": "missing"}, v, now)[1]


# --- the event cursor on PostgreSQL: ids can become visible out of order ------------------------

def test_a_missing_event_id_is_waited_for_then_skipped():
    from collections import namedtuple
    from backend.workflows.intake import GAP_WAIT_SECONDS, _contiguous
    E = namedtuple("E", "id")
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [E(1), E(2), E(4), E(5)]
    take, seen = _contiguous(rows, 0, None, now, wait_gaps=True)
    assert [r.id for r in take] == [1, 2] and seen == now            # 3 may still commit: wait
    take, seen2 = _contiguous(rows[2:], 2, seen, now + timedelta(seconds=1), wait_gaps=True)
    assert take == [] and seen2 == seen
    later = now + timedelta(seconds=GAP_WAIT_SECONDS + 1)
    take, seen3 = _contiguous(rows[2:], 2, seen, later, wait_gaps=True)
    assert [r.id for r in take] == [4, 5] and seen3 is None           # 3 was rolled back: go on
    assert _contiguous(rows, 0, None, now, wait_gaps=False) == (rows, None)   # SQLite: one writer, no waiting


@pytest.mark.parametrize("runaway, reason", [
    ("{% set r = range(99999) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}", "ran for more than"),
    ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}", "ran for more than"),
    ("{% for a in range(99999) %}{{ 'x' * 9999 }}{% endfor %}", "output too large"),
    ("{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(1) }}", "recurses too deeply"),
    # no range, no call, no output: only the loop itself can see the time run out (three deep: 10^12 turns)
    ("{% set s = 'x' * 10000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "ran for more than"),
    ("{% set l = [0] * 10000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", "ran for more than"),
], ids=["nested-loops", "branching-macro", "huge-output", "endless-macro", "loops-over-a-string",
        "loops-over-a-list"])
def test_a_runaway_template_fails_its_message_instead_of_holding_the_worker(monkeypatch, runaway, reason):
    """One bad template would otherwise keep the workflow worker busy for hours (or fill memory), and every
    other workflow's messages would wait behind it."""
    # A short deadline where the time limit is what is tested; elsewhere a long one, so that a slow machine
    # cannot reach it before the limit under test (CI once saw the deep recursion take over 0.05 s).
    monkeypatch.setattr(templates, "MAX_RENDER_SECONDS", 0.05 if reason == "ran for more than" else 30)
    with pytest.raises(templates.TemplateProblem, match=reason):
        templates.render(runaway, V)


def test_loops_still_behave_as_loops():
    out = templates.render("{% for c in 'abc' if c != 'b' %}{{ loop.index }}{{ c }}{{ '.' if loop.last }}{% endfor %}"
                           "{% for x in [] %}x{% else %} none{% endfor %} "
                           "{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %} "
                           "{% for n in [[1, [2]], [3]] recursive %}{% if n is iterable %}{{ loop(n) }}{% else %}{{ n }}"
                           "{% endif %}{% endfor %}", V)
    assert out == "1a2c. none a=1 123"


def test_range_in_templates_still_behaves_as_a_range():
    out = templates.render("{{ range(5)|list }} {{ range(4)|length }} {{ range(10)[2] }} {{ 3 in range(5) }} "
                           "{% set r = range(2) %}{% for a in r %}{% for b in r %}{{ a }}{{ b }},{% endfor %}{% endfor %} "
                           "{{ range(3)|reverse|list }} {{ range(1, 7, 2)|sum }}", V)
    assert out == "[0, 1, 2, 3, 4] 4 2 True 00,01,10,11, [2, 1, 0] 9"


@pytest.mark.parametrize("wide", [
    "{{ 'x'|center(300000000) }}", "{{ 'a'|indent(1000000000, true) }}", "{{ 'x'.rjust(10**9) }}",
    "{{ 'x'.zfill(99999999) }}", "{{ ('x'|safe).rjust(10**9) }}", "{{ '%999999999d' % 1 }}", "{{ '%*d' % (5, 1) }}", "{{ '%.999999999f'|format(1.5) }}",
    "{{ '{:>999999999}'.format(1) }}", "{{ '{:{w}}'.format(1, w=5) }}"])
def test_a_width_that_would_build_a_huge_string_is_refused_before_it_is_built(wide):
    """The output limit sees a string only once it exists: a padding width of 10^9 would allocate a gigabyte
    first (the operators `*` and `**` were bounded already; widths were not)."""
    with pytest.raises(templates.TemplateProblem, match="width too large"):   # not "output too large": refused first
        templates.render(wide, V)


def test_ordinary_widths_and_formats_still_work():
    out = templates.render("{{ '%5.2f' % 12.5 }}|{{ '%s-%s'|format(1, 2) }}|{{ 'x'|center(5) }}|{{ '{:>4}'.format('a') }}|"
                           "{{ 'x'.rjust(3) }}|{{ '%d%%' % 5 }}|{{ 'a\nb'|indent(2, true) }}", V)
    assert out == "12.50|1-2|  x  |   a|  x|5%|  a\n  b"
