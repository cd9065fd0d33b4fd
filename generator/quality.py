"""Quality panel: how good a batch of descriptions is, measured against the real catalog."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def catalog_records(ingest_dir: str | Path) -> list[dict]:
    """The ingest records (``<ingest_dir>/catalog.jsonl``): show_id, type, title, genres, description, split, control."""
    path = Path(ingest_dir) / "catalog.jsonl"
    if not path.is_file():
        raise UserError(f"no catalog.jsonl in {ingest_dir}", "pass the folder written by the ingest stage")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
