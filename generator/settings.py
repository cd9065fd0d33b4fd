"""How a setting is declared: once, with its default and its one-line help.

Each stage keeps its settings as a dataclass beside its code; every field is
declared with :func:`setting`, which is the only place its default and its help
text are written. The config loader (:mod:`generator.config`), the CLI flags,
the DAG's params and ``python -m generator config --explain`` all read them
from here, so nothing restates a default or a help line.

This module imports only the standard library: the DAG reads it at parse time.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from .errors import UserError

# A name that becomes one path component (model.name, train.run_name, the DAG's base_model param):
# no separator, no leading dot (so never "." or ".."), short. JSON Schema's regex syntax too, for the DAG form.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_RULE = "a plain name: up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def setting(default: Any, help: str, *, secret: bool = False, choices: tuple | None = None,
            at_least: float | None = None, above: float | None = None, at_most: float | None = None,
            below: float | None = None, pattern: str | None = None) -> Any:
    """A dataclass field with its help line; ``secret`` values are masked wherever config is shown.

    A number's range (``at_least``/``above`` and ``at_most``/``below``) and a name's ``pattern`` are
    declared here too: the loader refuses a value outside them (and any non-finite float), naming
    the setting and where its value came from.
    """
    metadata = {"help": help, "secret": secret, "choices": choices, "pattern": pattern,
                "range": (at_least, above, at_most, below)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def describe(cls: type) -> dict[str, dict]:
    """``{field: {"default", "help", "secret", "choices", "type"}}`` for a settings dataclass."""
    described = {}
    instance = cls()
    for field in dataclasses.fields(cls):
        described[field.name] = {
            "default": getattr(instance, field.name),
            "help": field.metadata.get("help", ""),
            "secret": bool(field.metadata.get("secret")),
            "choices": field.metadata.get("choices"),
            "type": type(getattr(instance, field.name)).__name__,
            "pattern": field.metadata.get("pattern"),
            "range": range_text(field.metadata.get("range")),
        }
    return described


def range_text(bounds: tuple | None) -> str:
    """A declared range as text: ``>= 1``, ``> 0``, ``[0, 1)``; empty when there is none."""
    at_least, above, at_most, below = bounds or (None, None, None, None)
    low = (f"[{at_least}" if at_least is not None else f"({above}" if above is not None else None)
    high = (f"{at_most}]" if at_most is not None else f"{below})" if below is not None else None)
    if low and high:
        return f"{low}, {high}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def value_problem(value: Any, field: dataclasses.Field) -> tuple[str, str] | None:
    """(why ``value`` breaks ``field``'s declaration, what to set instead), or None."""
    metadata = field.metadata
    shown = range_text(metadata.get("range"))
    allowed = f"in {shown}" if shown.startswith(("[", "(")) else shown
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every comparison below
        return f"must be a finite number, got {value}", f"use a number {allowed}".rstrip()
    choices = metadata.get("choices")
    if choices and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}, got {value!r}", f"use one of: {', '.join(choices)}"
    pattern = metadata.get("pattern")
    if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
        rule = NAME_RULE if pattern == NAME_PATTERN else f"a match of {pattern}"
        return f"must be {rule}, got {value!r}", "use such a name (it becomes a folder name)"
    at_least, above, at_most, below = metadata.get("range") or (None, None, None, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (at_least is not None and value < at_least) or (above is not None and value <= above)
            or (at_most is not None and value > at_most) or (below is not None and value >= below)):
        return f"is out of range: must be {allowed}, got {value}", f"use a value {allowed}"
    return None


def check_declared(instance: Any, section: str, origins: dict | None = None) -> None:
    """Refuse a settings instance whose values break their declarations (range, pattern, choices)."""
    for field in dataclasses.fields(instance):
        problem = value_problem(getattr(instance, field.name), field)
        if problem:
            key = f"{section}.{field.name}"
            origin = (origins or {}).get(key)
            raise UserError(f"{key}{' from ' + origin if origin else ''} {problem[0]}",
                            f"{problem[1]} for {key}{' in ' + origin if origin else ''}")


def help_with_default(cls: type, name: str) -> str:
    """A field's help line for the CLI and the DAG form, ending with its built-in default."""
    info = describe(cls)[name]
    default = info["default"]
    shown = "empty" if default in ("", [], None) else default
    return f"{info['help']} (default: {shown}, or the profile's)"
