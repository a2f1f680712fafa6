"""Message templates: Yespo's `${name}` variables plus sandboxed Jinja2 for loops over items.

`${name}` (and Velocity's `$!{name}`) is rewritten into a lookup before Jinja compiles the template,
so a value is inserted once and never parsed again: a customer named `{{ 7*7 }}` stays `{{ 7*7 }}`.
A missing value renders empty, as Yespo's `$!`. Anything else inside `${...}` is not a name and is
kept as literal text. Jinja runs in `SandboxedEnvironment` (no underscore attributes, no unsafe
calls), with the operators that could build huge strings bounded, and each render bounded in time and
in output: a template is merchant input, and the workflow worker renders every message in turn.
"""
from __future__ import annotations

import json
import re
import string
import threading
import time
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError, safe_range

VAR = re.compile(r"\$!?\{([^{}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")
MAX_REPEAT = 10_000          # longest string or list `*` may build
MAX_EXPONENT = 64
MAX_RENDER_SECONDS = 2.0     # one message's render: nested loops or recursive macros stop here
MAX_OUTPUT_CHARS = 1_000_000 # one rendered field (a mail body is a few kB)


class TemplateProblem(Exception):
    """A template that cannot be compiled or rendered; the message says why."""


def lookup(variables: dict, name: str) -> Any:
    """`a.b.0.c` through dicts and lists only (never attributes); None when missing."""
    value: Any = variables
    for part in name.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def as_text(value: Any) -> str:
    """How a value is written into a message: missing is empty, numbers as JSON writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _Render(threading.local):
    deadline = float("inf")     # of the render running in this thread


_RENDER = _Render()


def _in_time() -> None:
    if time.monotonic() > _RENDER.deadline:
        raise SecurityError(f"it ran for more than {MAX_RENDER_SECONDS:g} s (a loop or a recursion too large)")


class _Range:
    """The sandbox's range (at most MAX_RANGE items), checking the render's deadline as it is walked: a loop
    needs no call inside to run long (`{% set r = range(99999) %}{% for a in r %}{% for b in r %}...`).
    Walked again each time, like a range."""

    def __init__(self, *args: int):
        self.items = safe_range(*args)

    def __iter__(self):
        for i, n in enumerate(self.items):
            if not i & 1023:
                _in_time()
            yield n

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k):
        return self.items[k]

    def __contains__(self, x) -> bool:
        return x in self.items

    def __repr__(self) -> str:
        return repr(self.items)


def _walk(iterable):
    """What a template's `{% for %}` walks, checking the render's deadline as it goes: a loop over a string or
    a list (`{% set s = "x" * 10000 %}` nested three deep is 10^12 empty turns) makes no call and yields no
    output, so neither the sandbox's call nor the output check would ever see the time run out."""
    for i, item in enumerate(iterable):
        if not i & 1023:
            _in_time()
        yield item


_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _check_printf(fmt: str) -> None:
    """`'%999999999d' % 1` builds a string of that width: widths and precisions above MAX_REPEAT (or taken from
    the arguments, `*`) are refused."""
    for width, precision in _PRINTF_FIELD.findall(fmt):
        for n in (width, precision):
            if n == "*" or (n and int(n) > MAX_REPEAT):
                raise SecurityError("format width too large")


def _check_format_spec(fmt: str) -> None:
    """The same for `'{:>999999999}'.format(1)`: every number in a field's spec; a spec built from arguments
    (`{:{w}}`) is refused."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return                      # str.format itself will say what is wrong
    for _, _, spec, _ in fields:
        if spec and ("{" in spec or any(int(n) > MAX_REPEAT for n in _NUMBER.findall(spec))):
            raise SecurityError("format width too large")


def _bounded(width) -> None:
    if isinstance(width, int) and width > MAX_REPEAT:
        raise SecurityError("width too large")


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "%"])

    def _parse(self, source, name, filename):
        # every {% for x in EXPR %} becomes {% for x in _walk(EXPR) %} (a Call: the sandbox checks it too)
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name("_walk", "load", lineno=loop.lineno), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        return tree

    def call(__self, __context, __obj, *args, **kwargs):   # noqa: N805 - Jinja's own signature
        # Every call a template makes passes here (macros too): a recursion that branches stops in time.
        _in_time()
        # 'x'.rjust(10**9) would build the whole string before the output limit could see it
        if isinstance(getattr(__obj, "__self__", None), str) and getattr(__obj, "__name__", "") in _PADDING_METHODS:
            for width in args[:1]:
                _bounded(width)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_format_spec(value.__self__)
        return wrapper

    def call_binop(self, context, operator, left, right):
        # Why: the stock sandbox lets `'x' * 10**9` exhaust memory; a template is merchant input.
        if operator == "*" and any(isinstance(v, (str, list, tuple)) for v in (left, right)):
            n = right if isinstance(left, (str, list, tuple)) else left
            size = len(left if isinstance(left, (str, list, tuple)) else right)
            if isinstance(n, int) and n * max(size, 1) > MAX_REPEAT:
                raise SecurityError("repetition too large")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError("exponent too large")
        if operator == "%" and isinstance(left, str):
            _check_printf(left)
        return super().call_binop(context, operator, left, right)


def _center(value, width: int = 80) -> str:
    _bounded(width)
    return str(value).center(width)


def _indent(value, width=4, first: bool = False, blank: bool = False) -> str:
    _bounded(width)
    return _STOCK_INDENT(value, width, first, blank)


def _format(value, *args, **kwargs) -> str:
    _check_printf(str(value))
    return _STOCK_FORMAT(value, *args, **kwargs)


_ENV = _Sandbox(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True,
                finalize=lambda v: "" if v is None else v)
_ENV.globals["range"] = _Range
_STOCK_INDENT, _STOCK_FORMAT = _ENV.filters["indent"], _ENV.filters["format"]
_ENV.filters.update(center=_center, indent=_indent, format=_format)   # widths bounded, as `*` is
_ENV.globals["_walk"] = _walk


def _rewrite(source: str) -> str:
    def one(m: re.Match) -> str:
        inner = m.group(1).strip()
        if NAME.match(inner):
            return "{{ _var(%s) }}" % json.dumps(inner)
        return "{% raw %}" + m.group(0) + "{% endraw %}"    # not a name: literal, inert text
    return VAR.sub(one, source)


@lru_cache(maxsize=512)
def _compiled(source: str):
    try:
        return _ENV.from_string(_rewrite(source))
    except TemplateError as e:
        raise TemplateProblem(f"template syntax error: {e.message}") from None


def problems(source: str) -> list[str]:
    """What is wrong with a template, for validation on save (empty when it compiles)."""
    out = [f"${{{m.group(1)}}} is not a variable name (use letters, digits, _ and dots)"
           for m in VAR.finditer(source) if not NAME.match(m.group(1).strip())]
    try:
        _compiled(source)
    except TemplateProblem as e:
        out.append(str(e))
    return out


def render(source: str, variables: dict) -> str:
    """The template filled with `variables`; raises TemplateProblem when it cannot be rendered."""
    template = _compiled(source)
    _RENDER.deadline = time.monotonic() + MAX_RENDER_SECONDS
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate({**variables, "_var": lambda name: as_text(lookup(variables, name))}):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateProblem(f"template output too large: more than {MAX_OUTPUT_CHARS:,} characters")
            out.append(chunk)
            _in_time()
    except SecurityError as e:
        raise TemplateProblem(f"template refused by the sandbox: {e}") from None
    except RecursionError:
        raise TemplateProblem("template could not be rendered: it recurses too deeply") from None
    except (TemplateError, TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise TemplateProblem(f"template could not be rendered: {e}") from None
    finally:
        _RENDER.deadline = float("inf")
    return "".join(out)
