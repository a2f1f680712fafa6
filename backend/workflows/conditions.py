"""Conditions on event params and order fields: {all|any: [{param, op, value}, ...]}, nestable.

`in_segment` / `not_in_segment` test the contact (`param`, default `contactId`) against a saved
segment (`value`: its name or id); the caller that has the database passes `segment(ref, contact_id)`.
"""
from __future__ import annotations

from typing import Any, Callable

from backend.workflows.templates import as_text, lookup

OPS = ("equals", "not_equals", "is_set", "is_empty", "contains", "not_contains", "one_of",
       "starts_with", "ends_with", "greater_than", "less_than", "in_segment", "not_in_segment")
NEEDS_VALUE = {op for op in OPS if op not in ("is_set", "is_empty")}
SEGMENT_OPS = ("in_segment", "not_in_segment")
SEGMENT_PARAM = "contactId"
SegmentTest = Callable[[Any, Any], bool]     # (segment name or id, contact id) -> member?


class SegmentUnavailable(ValueError):
    """A segment rule where no database is at hand to test it."""


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


def test(rule: dict, variables: dict, segment: SegmentTest | None = None) -> bool:
    """One rule {param, op, value} against the run's variables."""
    actual, op, expected = lookup(variables, rule.get("param") or SEGMENT_PARAM), rule["op"], rule.get("value")
    if op in SEGMENT_OPS:
        if segment is None:
            raise SegmentUnavailable(f"{op} needs the database")
        member = actual not in (None, "") and segment(expected, actual)
        return member if op == "in_segment" else not member
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


def holds(condition: dict | None, variables: dict, segment: SegmentTest | None = None) -> bool:
    """A normalised condition ({"all": [...]} or {"any": [...]}, items rules or conditions)."""
    if not condition:
        return True
    if "all" in condition:
        return all(_item(c, variables, segment) for c in condition["all"])
    return any(_item(c, variables, segment) for c in condition["any"])


def _item(c: dict, variables: dict, segment: SegmentTest | None) -> bool:
    return holds(c, variables, segment) if ("all" in c or "any" in c) else test(c, variables, segment)


def names(condition: dict | None) -> set[str]:
    """The first part of every name a condition reads (`additionalInfo` for `additionalInfo.orderNumber`)."""
    if not condition:
        return set()
    out: set[str] = set()
    for c in condition.get("all") or condition.get("any") or []:
        if "all" in c or "any" in c:
            out |= names(c)
        else:
            out.add(str(c.get("param") or SEGMENT_PARAM).split(".")[0])
    return out


def saved_segments(conn) -> SegmentTest:
    """`segment` for holds(): membership in a saved segment, read through `conn` (raises InvalidSegment
    for a segment that does not exist)."""
    from backend.segments import contact_in_saved_segment

    def member(ref: Any, contact_id: Any) -> bool:
        try:
            cid = int(contact_id)
        except (TypeError, ValueError):
            return False
        return contact_in_saved_segment(conn, ref, cid)
    return member
