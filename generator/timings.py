"""Where a night's seconds went: every step adds its wall time under ``<night>/timings/``.

One small JSON file per step (``timings/<step>.json``, ``{"seconds": ...}``), so
steps running side by side (the DAG's generate shards) never write the same
file, a re-run step replaces its own figure, and any step can add one (``with
timed(paths.timings, "reader"):``) without touching the report's code:
:func:`read_timings` returns them all and the report lists them in the night's order.
A step timed inside another one (curate inside the rounds) is counted in the
outer step only, so the figures add up to the night.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time
from pathlib import Path

from .artifacts import atomic_write_json

NIGHT_ORDER = ("ingest", "should_train", "train", "promote", "generate", "merge_shards", "curate", "rounds",
               "render", "publish", "report")

_timing = contextvars.ContextVar("timed_step", default=None)


def _file_name(step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", step) + ".json"


@contextlib.contextmanager
def timed(directory: Path, step: str):
    """Record the wall seconds of the block as ``step`` (not when nested inside another timed step)."""
    if _timing.get() is not None:
        yield
        return
    token = _timing.set(step)
    started = time.monotonic()
    try:
        yield
    finally:
        _timing.reset(token)
        record_seconds(directory, step, time.monotonic() - started)


def record_seconds(directory: Path, step: str, seconds: float) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(directory) / _file_name(step), {"step": step, "seconds": round(seconds, 2)})


def read_timings(directory: Path) -> dict[str, float]:
    """{step: seconds}: the night's steps in :data:`NIGHT_ORDER`, then any others by name."""
    import json

    found = {}
    if Path(directory).is_dir():
        for path in sorted(Path(directory).glob("*.json")):
            entry = json.loads(path.read_text())
            found[entry["step"]] = entry["seconds"]

    def order(step: str):
        base = step.partition("-shard-")[0]
        return (NIGHT_ORDER.index(base) if base in NIGHT_ORDER else len(NIGHT_ORDER), step)

    return {step: found[step] for step in sorted(found, key=order)}
