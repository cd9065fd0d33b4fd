"""A night: its id (a strict YYYY-MM-DD date) and its folder, ``<workdir>/nights/<night>/``.

Every stage artifact of one night lives under that folder; this module is the one
place that names where each of them goes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

from .errors import UserError

_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def check_night(night: str, allow_undated: bool = False) -> str:
    """The night's id, strictly ``YYYY-MM-DD`` (``fromisoformat`` alone also takes ``20261125``, ``2026-W48-3``)."""
    if allow_undated and night == "undated":
        return night
    try:
        if isinstance(night, str) and _NIGHT.match(night) and dt.date.fromisoformat(night):
            return night
    except ValueError:
        pass
    raise UserError(f"bad night {night!r}", "pass the night's date as YYYY-MM-DD, e.g. 2026-11-25")


def night_seed(seed: int, night: str) -> int:
    """The generation seed of ``night``: ``seed`` plus (its day number modulo 400) times 10**7.

    A night whose model did not change (the catalog was the same) still writes new
    descriptions instead of last night's again, which curation would reject as repeats;
    the same night re-run writes the same ones. Shards and rounds add offsets below 10**7,
    and the result stays below 2**32 (gpt-2-simple seeds NumPy's legacy generator with it).
    """
    day = dt.date.fromisoformat(night).toordinal() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", night) else 0
    return seed + (day % 400) * 10**7


@dataclasses.dataclass
class NightPaths:
    root: Path

    @property
    def ingest(self) -> Path:
        return self.root / "ingest"

    @property
    def samples(self) -> Path:
        return self.root / "generate" / "samples.jsonl"

    def shard(self, index: int) -> Path:
        return self.root / "generate" / f"shard-{index:03d}.jsonl"

    def round(self, index: int) -> Path:
        """A further round's samples (round 0 is the first generation, ``samples``)."""
        return self.root / "generate" / f"round-{index:03d}.jsonl"

    @property
    def rounds(self) -> Path:
        return self.root / "generate" / "rounds.json"

    @property
    def quality(self) -> Path:
        return self.root / "curate" / "quality.json"

    @property
    def kept(self) -> Path:
        return self.root / "curate" / "kept.jsonl"

    @property
    def history(self) -> Path:
        return self.root / "curate" / "history.jsonl"

    @property
    def check(self) -> Path:
        return self.root / "check.json"

    @property
    def decision(self) -> Path:
        return self.root / "promote.json"

    @property
    def publish_summary(self) -> Path:
        return self.root / "publish.json"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def timings(self) -> Path:
        """Each step's wall seconds, one file per step (:mod:`generator.timings`)."""
        return self.root / "timings"


def night_paths(config, night: str) -> NightPaths:
    return NightPaths(config.paths.night_dir(check_night(night)))
