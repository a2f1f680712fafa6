"""What the runner knows about a workflow and a run: the parsed definition, the variables steps see."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from backend.workflows import storage as t
from backend.workflows.definition import DefinitionError, validate

log = logging.getLogger(__name__)

_PARSED: dict[str, dict] = {}     # definition JSON → parsed (keyed by text: ids repeat across databases)


@dataclass(frozen=True)
class Workflow:
    id: int
    version: int
    active: bool
    definition: dict

    @cached_property
    def steps(self) -> dict[str, dict]:
        return {s["id"]: s for s in self.definition["steps"]}

    @property
    def first_step(self) -> dict:
        return self.definition["steps"][0]

    @property
    def stops(self) -> list[dict]:
        return self.definition.get("stop", [])


def load_workflows(conn: Connection) -> dict[int, Workflow]:
    """Every workflow not deleted, by id, normalised (each stored text is validated once)."""
    d = t.definitions.c
    rows = conn.execute(select(d.id, d.version, d.active, d.definition).where(d.deleted_at.is_(None))).all()
    out = {}
    for r in rows:
        parsed = _PARSED.get(r.definition)
        if parsed is None:
            if len(_PARSED) > 1000:
                _PARSED.clear()
            try:
                parsed = _PARSED[r.definition] = validate(json.loads(r.definition))
            except DefinitionError as e:     # stored by an older version with looser rules
                log.error("workflow %s cannot run until it is fixed: %s", r.id, e)
                continue
        out[r.id] = Workflow(r.id, r.version, bool(r.active), parsed)
    return out


def type_matches(pattern: str, event_type: str) -> bool:
    """An event type pattern: exact, or a prefix ending in `*` (e.g. `order*`)."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def variables(context: dict) -> dict:
    """What `${name}`, Jinja and conditions see: order fields, then event params over them."""
    order = context.get("order") or {}
    params = context.get("params") or {}
    out: dict[str, Any] = {**order, **params}
    out.update(key=context.get("key"), order=order, params=params, items=order.get("items") or [])
    return out


def utc(dt: datetime) -> datetime:
    """A datetime as timezone-aware UTC, as sqlmodel stores and returns it (naive is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=timezone.utc)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def parse_iso(value: Any) -> datetime | None:
    """An ISO 8601 date from a param (a date without an offset is read as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def timer_due(step: dict, variables_: dict, now: datetime) -> tuple[datetime | None, str | None]:
    """When a timer reached at `now` ends: (due, None) or (None, why it cannot be computed)."""
    if "until_param" in step:
        from backend.workflows.templates import lookup
        raw = lookup(variables_, step["until_param"])
        due = parse_iso(raw)
        if due is None:
            return None, f"timer: param {step['until_param']!r} is not an ISO 8601 date (got {raw!r})"
        try:
            due = utc(due)      # in UTC here: 9999-12-31T23:00-05:00 has no UTC time, and must end only this run
        except OverflowError:
            return None, f"timer: param {step['until_param']!r} ({raw!r}) is beyond the last date a clock can hold"
        return max(due, now), None
    try:
        return now + seconds(step["seconds"]), None
    except OverflowError:
        return None, f"timer: {step['seconds']} seconds from now is beyond the last date a clock can hold"
