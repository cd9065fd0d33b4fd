"""The render stage: kept samples (+ the night's report, + the archive) -> the site, and its manifest."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..artifacts import manifest_path, read_jsonl, read_manifest, write_manifest
from ..errors import UserError
from .inputs import archive_night, check_night, load_archive, load_items
from .pages import Site
from .site_model import Night, RenderSettings
from .writer import SiteWriter

log = logging.getLogger("generator.render")


def _check_out_dir(out_dir: Path) -> None:
    """Render removes files it did not produce, so it only works in an empty folder or its own site."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file", "pass a directory for the site")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            previous = read_manifest(out_dir)
        except (UserError, ValueError):
            previous = {}
        if previous.get("stage") != "render":
            raise UserError(f"{out_dir} is not empty and holds no site rendered before (no {manifest_path(out_dir).name})",
                            "pass a new or empty directory: render deletes files it did not produce")


def render(samples_path, out_dir, settings: RenderSettings | None = None, night: str | None = None,
           report: dict | None = None, archive_dir=None) -> dict:
    """Render the gallery for ``samples_path`` (curated kept JSONL) into ``out_dir``; returns the manifest."""
    started = time.perf_counter()
    settings = settings or RenderSettings()
    settings.validate()
    samples_path, out_dir = Path(samples_path), Path(out_dir)
    if report is not None and not isinstance(report, dict):
        raise UserError("the report must be a JSON object", "pass the report.json the pipeline wrote")
    night = check_night(night or (report or {}).get("night") or "undated")
    items, duplicates = load_items(read_jsonl(samples_path), night, str(samples_path))
    _check_out_dir(out_dir)

    if archive_dir is not None:
        if night == "undated":
            raise UserError("archiving a night needs its date", "pass --night YYYY-MM-DD (or a report with \"night\")")
        archive_dir = Path(archive_dir)
        archive_night(archive_dir, night, samples_path, report)
        nights = load_archive(archive_dir)
    else:
        nights = [Night(night, items, report or {})]

    writer = SiteWriter(out_dir)
    site = Site(settings, writer, nights)
    built = site.build()
    removed = writer.finish()
    seconds = time.perf_counter() - started
    current = site.current
    log.info("rendered %d pages (%d written, %d unchanged, %d removed) in %.1fs -> %s",
             len(writer.produced), writer.written, writer.unchanged, removed, seconds, out_dir)
    return write_manifest(
        out_dir, "render",
        night=current.date,
        rendered_night=night,
        descriptions=len(current.items),
        duplicates_dropped=duplicates,
        permalinks=built["permalinks"],
        nights=[n.date for n in nights],
        pages=len(writer.produced),
        written=writer.written,
        unchanged=writer.unchanged,
        removed=removed,
        bytes=writer.bytes,
        types=dict(sorted(site.root_view.type_counts.items())),
        genres=dict(sorted(site.root_view.genre_counts.items())),
        base_url=site.base_url,
        seconds=round(seconds, 2),
        outputs={"site": str(out_dir), "home": str(out_dir / "index.html"),
                 "model_card": str(out_dir / "about" / "index.html")},
    )
