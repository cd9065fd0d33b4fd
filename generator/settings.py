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
from typing import Any


def setting(default: Any, help: str, *, secret: bool = False, choices: tuple | None = None) -> Any:
    """A dataclass field with its help line; ``secret`` values are masked wherever config is shown."""
    metadata = {"help": help, "secret": secret, "choices": choices}
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
        }
    return described


def help_with_default(cls: type, name: str) -> str:
    """A field's help line for the CLI and the DAG form, ending with its built-in default."""
    info = describe(cls)[name]
    default = info["default"]
    shown = "empty" if default in ("", [], None) else default
    return f"{info['help']} (default: {shown}, or the profile's)"
