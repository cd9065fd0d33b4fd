"""The render's inputs: kept samples into items, the night's date and report, the archive of nights.

With an archive (a directory kept across nights) every archived night is read back for
rendering, with tonight's from its samples; once the site is built the night's kept samples and
report are stored as ``<archive_dir>/<night>/kept.jsonl`` and ``report.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from ..artifacts import atomic_write_bytes, read_json_object, read_jsonl, replace_directory, sha256_text
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
                          night, len(items) + 1, _clean_label(record.get("title"))))
    return items, duplicates


def read_report(path: str | os.PathLike) -> dict:
    return read_json_object(path, "report", "pass the night's report.json the pipeline wrote, or leave --report out")


def report_bytes(report: dict) -> bytes:
    """A night's report as the archive keeps it (``artifacts.atomic_write_json``'s form)."""
    return (json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def archived_night(archive_dir: Path, night: str, items: list[Item], report: dict | None) -> Night:
    """Tonight as the archive will hold it once written (``archive_night``): its report read back
    through JSON, or the one archived before when none is given."""
    if report is None:
        path = archive_dir / night / "report.json"
        return Night(night, items, read_report(path) if path.is_file() else {})
    return Night(night, items, json.loads(report_bytes(report)))


def archive_night(archive_dir: Path, night: str, samples_path: Path, report: dict | None) -> None:
    """Keep this night's kept samples (and report) in the archive, unless already identical.

    Both files are staged in a folder beside the night's and swapped in at once
    (``artifacts.replace_directory``), so the night is the old pair or the new one, never a mix.
    Render calls it only once the whole site is built (``render.stage``).
    """
    night_dir = archive_dir / night
    files = {"kept.jsonl": samples_path.read_bytes()}  # already validated line by line by the caller
    if report is not None:
        files["report.json"] = report_bytes(report)
    elif (night_dir / "report.json").is_file():
        files["report.json"] = (night_dir / "report.json").read_bytes()
    if all((night_dir / name).is_file() and (night_dir / name).read_bytes() == data for name, data in files.items()):
        return
    archive_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{night}.staging-", dir=archive_dir))
    try:
        for name, data in files.items():
            atomic_write_bytes(staging / name, data)
        replace_directory(staging, night_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


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
