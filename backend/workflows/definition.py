"""Validation of workflow definitions: raw JSON/TOML in, a normalised definition or every error out.

Errors name the place and the field, e.g. `steps[2] (id "review").channel: must be one of ...`.
The format is documented in backend/workflows/__init__.py.
"""
from __future__ import annotations

import math
import re
from typing import Any

from backend.workflows import conditions, templates

STEP_TYPES = ("get_order", "send_message", "timer", "condition")
CHANNELS = ("auto", "store", "email", "webhook")
UNIQUE_MODES = ("every", "once_per_key", "once_per_days")
STOP_MATCH = ("key", "contact", "key_or_contact")
ORDER_EVENTS = ("orderINITIALIZED", "orderIN_PROGRESS", "orderDELIVERED", "orderCANCELLED",
                "orderABANDONED_SHOPPING_CART")
PLACED_EVENTS = ORDER_EVENTS[:4]     # "the contact placed an order": an abandoned cart is not one
_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
MAX_DAYS = 3650            # ten years: longer waits are mistakes, and dates past year 9999 cannot be stored
READ_ONLY = ("id", "version", "createdAt", "updatedAt")     # shown by the API, ignored when sent back
TOP_KEYS = {"name", "description", "active", "start", "unique", "skipIfRunning", "stop", "steps", *READ_ONLY}
STEP_KEYS = {"id", "type", "description", "next", "yes", "no", "by", "externalOrderId", "channel", "to", "subject",
             "body", "url", "secret_env", "minutes", "hours", "days", "until_param", "all", "any"}
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DefinitionError(Exception):
    """An invalid definition; `.errors` lists every problem, each naming its field."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class _Errors(list):
    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


def stored_form(raw: dict) -> dict:
    """What is kept of a definition: as its author wrote it, without the read-only fields."""
    return {k: v for k, v in raw.items() if k not in READ_ONLY}


def validate(raw: Any) -> dict:
    """The normalised definition, or DefinitionError listing every problem."""
    errs = _Errors()
    if not isinstance(raw, dict):
        raise DefinitionError(["definition: must be a JSON object"])
    for key in sorted(set(raw) - TOP_KEYS):
        errs.add(key, f"unknown field (known: {', '.join(sorted(TOP_KEYS - set(READ_ONLY)))})")
    out = {
        "name": _name(raw, errs),
        "active": _bool(raw, "active", True, errs),
        "start": _start(raw.get("start"), errs),
        "unique": _unique(raw.get("unique", {"mode": "every"}), errs),
        "skipIfRunning": _bool(raw, "skipIfRunning", False, errs),
        "stop": _stops(raw.get("stop"), errs),
        "steps": _steps(raw.get("steps"), errs),
    }
    if raw.get("description") is not None:
        out["description"] = str(raw["description"])
    if errs:
        raise DefinitionError(list(errs))
    return out


def _name(raw: dict, errs: _Errors) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        errs.add("name", "is required (a non-empty string)")
        return ""
    return name.strip()


def _bool(raw: dict, key: str, default: bool, errs: _Errors, where: str = "") -> bool:
    v = raw.get(key, default)
    if not isinstance(v, bool):
        errs.add(where + key, f"must be true or false, got {v!r}")
        return default
    return v


def _start(start: Any, errs: _Errors) -> dict:
    if not isinstance(start, dict) or not isinstance(start.get("event"), str) or not start["event"].strip():
        errs.add("start.event", "is required: the event type that starts the workflow, e.g. orderDELIVERED")
        return {"event": "", "conditions": None}
    return {"event": start["event"].strip(), "conditions": _condition(start.get("conditions"), "start.conditions", errs)}


def _condition(c: Any, where: str, errs: _Errors, required: bool = False) -> dict | None:
    if c is None and not required:
        return None
    if not isinstance(c, dict) or len([k for k in ("all", "any") if k in c]) != 1:
        errs.add(where, 'must be {"all": [...]} or {"any": [...]}')
        return None
    kind = "all" if "all" in c else "any"
    items = c[kind]
    if not isinstance(items, list) or not items:
        errs.add(f"{where}.{kind}", "must be a non-empty list of rules")
        return None
    return {kind: [_rule(r, f"{where}.{kind}[{i}]", errs) for i, r in enumerate(items)]}


def _rule(r: Any, where: str, errs: _Errors) -> dict:
    if isinstance(r, dict) and ("all" in r or "any" in r):
        return _condition(r, where, errs) or {}
    if not isinstance(r, dict):
        errs.add(where, "must be an object {param, op, value}")
        return {}
    param, op = r.get("param"), r.get("op")
    if op in conditions.SEGMENT_OPS and param is None:
        param = conditions.SEGMENT_PARAM          # the event's contact
    if op in conditions.SEGMENT_OPS and "value" in r and (isinstance(r.get("value"), bool)
                                         or not isinstance(r.get("value"), (str, int)) or r.get("value") == ""):
        errs.add(f"{where}.value", f"must name a saved segment (its name or id) for op {op}")
    if not isinstance(param, str) or not templates.NAME.match(param):
        errs.add(f"{where}.param", f"must be a parameter or order field name, got {param!r}")
    if op not in conditions.OPS:
        errs.add(f"{where}.op", f"must be one of {', '.join(conditions.OPS)}, got {op!r}")
    elif op in conditions.NEEDS_VALUE and "value" not in r:
        errs.add(f"{where}.value", f"is required for op {op}")
    elif op == "one_of" and not isinstance(r.get("value"), list):
        errs.add(f"{where}.value", "must be a list for op one_of")
    out = {"param": param, "op": op}
    if "value" in r:
        out["value"] = r["value"]
    return out


def _unique(u: Any, errs: _Errors) -> dict:
    if isinstance(u, str):
        u = {"mode": u}
    if not isinstance(u, dict) or u.get("mode") not in UNIQUE_MODES:
        errs.add("unique.mode", f"must be one of {', '.join(UNIQUE_MODES)}")
        return {"mode": "every"}
    if u["mode"] != "once_per_days":
        return {"mode": u["mode"]}
    days = u.get("days")
    if not _finite(days) or not 0 < days <= MAX_DAYS:
        errs.add("unique.days", f"must be a positive number of days (at most {MAX_DAYS}) for mode once_per_days, "
                                f"got {days!r}")
        days = 1
    return {"mode": "once_per_days", "days": days}


def _stops(s: Any, errs: _Errors) -> list[dict]:
    if s is None:
        return []
    items = s if isinstance(s, list) else [s]
    return [r for r in (_stop(x, f"stop[{i}]" if isinstance(s, list) else "stop", errs) for i, x in enumerate(items)) if r]


def _stop(s: Any, where: str, errs: _Errors) -> dict | None:
    if not isinstance(s, dict):
        errs.add(where, 'must be {"event": TYPE, "match": "key"|"contact"|"key_or_contact"} or {"orderPlaced": true}')
        return None
    before = _duration(s.get("before"), f"{where}.before", errs) if s.get("before") is not None else 0
    if s.get("orderPlaced") is True:
        return {"events": list(PLACED_EVENTS), "match": "contact", "before": before}
    events = s.get("event")
    events = [events] if isinstance(events, str) else events
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        errs.add(f"{where}.event", "is required: an event type or a list of them (a trailing * matches a prefix)")
        return None
    match = s.get("match", "key")
    if match not in STOP_MATCH:
        errs.add(f"{where}.match", f"must be one of {', '.join(STOP_MATCH)}, got {match!r}")
    return {"events": events, "match": match, "before": before}


def _duration(d: Any, where: str, errs: _Errors) -> float:
    if not isinstance(d, dict) or not any(k in d for k in _UNITS):
        errs.add(where, "must be an object with minutes, hours and/or days")
        return 0
    total = 0.0
    for unit, seconds in _UNITS.items():
        v = d.get(unit, 0)
        if not _finite(v) or v < 0:
            errs.add(f"{where}.{unit}", f"must be a number ≥ 0, got {v!r}")
        else:
            total += v * seconds
    if total > MAX_DAYS * 86400:
        errs.add(where, f"must be at most {MAX_DAYS} days in all")
        return 0
    return total


def _finite(v: Any) -> bool:
    """A real number: JSON parsers also let through NaN and Infinity, which no date arithmetic survives."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _steps(steps: Any, errs: _Errors) -> list[dict]:
    if not isinstance(steps, list) or not steps:
        errs.add("steps", "must be a non-empty list")
        return []
    ids = [s.get("id") if isinstance(s, dict) else None for s in steps]
    out = [_step(s, i, ids, errs) for i, s in enumerate(steps)]
    if not errs:
        _check_graph(out, errs)
    return out


def _where(i: int, sid: Any) -> str:
    return f"steps[{i}] (id {sid!r})" if isinstance(sid, str) else f"steps[{i}]"


def _step(s: Any, i: int, ids: list, errs: _Errors) -> dict:
    if not isinstance(s, dict):
        errs.add(f"steps[{i}]", "must be an object")
        return {}
    sid, where = s.get("id"), _where(i, s.get("id"))
    for key in sorted(set(s) - STEP_KEYS):
        errs.add(f"{where}.{key}", "unknown field")
    if not isinstance(sid, str) or not _ID.match(sid):
        errs.add(f"{where}.id", "is required: letters, digits, _ . - (at most 64)")
    elif ids.count(sid) > 1:
        errs.add(f"{where}.id", f"{sid!r} is used by more than one step")
    kind = s.get("type")
    if kind not in STEP_TYPES:
        errs.add(f"{where}.type", f"must be one of {', '.join(STEP_TYPES)}, got {kind!r}")
        return {"id": sid, "type": kind}
    following = ids[i + 1] if i + 1 < len(ids) else None
    out = {"id": sid, "type": kind, **_STEP_FIELDS[kind](s, where, errs)}
    for link in (("yes", "no") if kind == "condition" else ("next",)):
        default = None if link == "no" else following
        target = s.get(link, default)
        if target is not None and target not in ids:
            errs.add(f"{where}.{link}", f"no step has id {target!r}")
        out[link] = target
    return out


def _get_order(s: dict, where: str, errs: _Errors) -> dict:
    by = s.get("by", "eventKey")
    if by not in ("eventKey", "externalOrderId"):
        errs.add(f"{where}.by", f"must be eventKey or externalOrderId, got {by!r}")
    if by == "externalOrderId":
        _template(s, "externalOrderId", where, errs, required=True)
        return {"by": by, "externalOrderId": s.get("externalOrderId")}
    return {"by": "eventKey"}


def _send_message(s: dict, where: str, errs: _Errors) -> dict:
    channel = s.get("channel", "auto")
    if channel not in CHANNELS:
        errs.add(f"{where}.channel", f"must be one of {', '.join(CHANNELS)}, got {channel!r}")
    out = {"channel": channel,
           "to": _template(s, "to", where, errs, default="${EmailAddress}"),
           "subject": _template(s, "subject", where, errs, default=""),
           "body": _template(s, "body", where, errs, required=True)}
    if channel == "webhook":
        url = s.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            errs.add(f"{where}.url", "is required for the webhook channel: an http(s) URL")
        env = s.get("secret_env")
        if env is not None and (not isinstance(env, str) or not _ENV.match(env)):
            errs.add(f"{where}.secret_env", "must name an environment variable (the HMAC secret)")
        out.update(url=url, secret_env=env)
    return out


def _template(s: dict, key: str, where: str, errs: _Errors, required: bool = False, default: str = "") -> str:
    v = s.get(key)
    if v is None:
        if required:
            errs.add(f"{where}.{key}", "is required")
        return default
    if not isinstance(v, str):
        errs.add(f"{where}.{key}", "must be a string (a template)")
        return default
    for problem in templates.problems(v):
        errs.add(f"{where}.{key}", problem)
    return v


def _timer(s: dict, where: str, errs: _Errors) -> dict:
    if "until_param" in s:
        p = s["until_param"]
        if not isinstance(p, str) or not templates.NAME.match(p):
            errs.add(f"{where}.until_param", "must name a parameter holding an ISO 8601 date")
        return {"until_param": p}
    if not any(k in s for k in _UNITS):
        errs.add(where, "a timer needs minutes, hours and/or days, or until_param")
        return {"seconds": 0}
    seconds = _duration({k: s[k] for k in _UNITS if k in s}, where, errs)
    if seconds <= 0:
        errs.add(where, "a timer must wait more than 0")
    return {"seconds": seconds, **{k: s[k] for k in _UNITS if k in s}}


def _condition_step(s: dict, where: str, errs: _Errors) -> dict:
    c = {k: s[k] for k in ("all", "any") if k in s}
    return {"condition": _condition(c or None, where, errs, required=True)}


_STEP_FIELDS = {"get_order": _get_order, "send_message": _send_message, "timer": _timer, "condition": _condition_step}


def successors(step: dict) -> list[str]:
    links = ("yes", "no") if step["type"] == "condition" else ("next",)
    return [step[k] for k in links if step.get(k)]


def _check_graph(steps: list[dict], errs: _Errors) -> None:
    """Every step reachable from the first, and no loops (a run must end)."""
    by_id = {s["id"]: s for s in steps}
    seen: set[str] = set()

    def visit(sid: str, trail: list[str]) -> None:
        if sid in trail:
            errs.add("steps", "the steps form a loop: " + " → ".join(trail[trail.index(sid):] + [sid]))
            return
        if sid in seen:
            return
        seen.add(sid)
        for nxt in successors(by_id[sid]):
            visit(nxt, trail + [sid])

    visit(steps[0]["id"], [])
    for i, s in enumerate(steps):
        if s["id"] not in seen:
            errs.add(_where(i, s["id"]), "is never reached from the first step")
