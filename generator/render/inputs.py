"""The render's inputs: kept samples into items, the night's date and report, the archive of nights.

With an archive (a directory kept across nights) the night's kept samples and report are
stored as ``<archive_dir>/<night>/kept.jsonl`` and ``report.json``, and every archived
night is read back for rendering.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..artifacts import atomic_write_bytes, atomic_write_json, read_json_object, read_jsonl, sha256_text
from ..errors import UserError
from .site_model import NIGHT_RE, SAFE_ID, Item, Night


def _clean_label(value) -> str | None:
    """A type or genre as shown: a non-empty single-line string, else None."""
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def load_items(records: Iterable[dict], night: str, source: str) -> tuple[list[Item], int]:
    """Records -> items in file order; drops repeated ids. Returns (items, duplicates)."""
    items, seen, duplicates = [], set(), 0
    for record in records:
        text = record["text"].strip()
        key = record.get("id")
        if key is None or key == "":
            key = sha256_text(record["text"])[:12]
        key = str(key)
        if not SAFE_ID.match(key):
            raise UserError(f"{source}: id {key!r} is not a safe permalink name",
                            "use ids of letters, digits, '-' and '_' (curate writes 12 hex digits), or omit id")
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        items.append(Item(key, text, _clean_label(record.get("type")), _clean_label(record.get("genre")),
                          night, len(items) + 1))
    return items, duplicates


def read_report(path: str | os.PathLike) -> dict:
    return read_json_object(path, "report", "pass the night's report.json the pipeline wrote, or leave --report out")


def archive_night(archive_dir: Path, night: str, samples_path: Path, report: dict | None) -> None:
    """Keep this night's kept samples (and report) in the archive, atomically, unless already identical."""
    night_dir = archive_dir / night
    kept = night_dir / "kept.jsonl"
    data = samples_path.read_bytes()  # already validated line by line by the caller
    if not kept.is_file() or kept.read_bytes() != data:
        atomic_write_bytes(kept, data)
    if report is not None:
        report_path = night_dir / "report.json"
        new = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if not report_path.is_file() or report_path.read_text(encoding="utf-8") != new:
            atomic_write_json(report_path, report)


def load_archive(archive_dir: Path) -> list[Night]:
    nights = []
    if not archive_dir.is_dir():
        return nights
    for night_dir in sorted(archive_dir.iterdir()):
        kept = night_dir / "kept.jsonl"
        if not (NIGHT_RE.match(night_dir.name) and kept.is_file()):
            continue
        items, _ = load_items(read_jsonl(kept), night_dir.name, str(kept))
        report_path = night_dir / "report.json"
        report = read_report(report_path) if report_path.is_file() else {}
        nights.append(Night(night_dir.name, items, report))
    return nights
