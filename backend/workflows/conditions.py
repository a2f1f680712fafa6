"""Conditions on event params and order fields: {all|any: [{param, op, value}, ...]}, nestable."""
from __future__ import annotations

from typing import Any

from backend.workflows.templates import as_text, lookup

OPS = ("equals", "not_equals", "is_set", "is_empty", "contains", "not_contains", "one_of",
       "starts_with", "ends_with", "greater_than", "less_than")
NEEDS_VALUE = {op for op in OPS if op not in ("is_set", "is_empty")}


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _equal(actual: Any, expected: Any) -> bool:
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None and not isinstance(expected, str):
        return a == e
    return as_text(actual) == as_text(expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_equal(x, expected) or (isinstance(x, dict) and expected in x.values()) for x in actual)
    return as_text(expected) in as_text(actual)


def _compare(actual: Any, expected: Any, op: str) -> bool:
    a, e = _number(actual), _number(expected)
    if a is None or e is None:
        return False
    return a > e if op == "greater_than" else a < e


def test(rule: dict, variables: dict) -> bool:
    """One rule {param, op, value} against the run's variables."""
    actual, op, expected = lookup(variables, rule["param"]), rule["op"], rule.get("value")
    empty = actual is None or actual == "" or actual == [] or actual == {}
    if op == "is_set":
        return not empty
    if op == "is_empty":
        return empty
    if op == "equals":
        return _equal(actual, expected)
    if op == "not_equals":
        return not _equal(actual, expected)
    if op == "contains":
        return _contains(actual, expected)
    if op == "not_contains":
        return not _contains(actual, expected)
    if op == "one_of":
        return any(_equal(actual, v) for v in expected)
    if op == "starts_with":
        return as_text(actual).startswith(as_text(expected))
    if op == "ends_with":
        return as_text(actual).endswith(as_text(expected))
    return _compare(actual, expected, op)


def holds(condition: dict | None, variables: dict) -> bool:
    """A normalised condition ({"all": [...]} or {"any": [...]}, items rules or conditions)."""
    if not condition:
        return True
    if "all" in condition:
        return all(_item(c, variables) for c in condition["all"])
    return any(_item(c, variables) for c in condition["any"])


def _item(c: dict, variables: dict) -> bool:
    return holds(c, variables) if ("all" in c or "any" in c) else test(c, variables)
