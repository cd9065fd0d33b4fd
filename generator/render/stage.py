"""The render stage: kept samples (+ the night's report, + the archive) -> the site, and its manifest."""

from __future__ import annotations

import errno
import json
import logging
import time
from pathlib import Path

from ..artifacts import manifest_path, read_jsonl, read_manifest, write_manifest
from ..errors import UserError
from ..lock import exclusive
from ..night import check_night
from ..site_journal import declare, generation_of
from .inputs import archive_night, archived_night, load_archive, load_items
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


def _mark_incomplete(out_dir: Path) -> None:
    """Rewrite the previous manifest (if any) with ``complete: false``; it stays render's own."""
    try:
        previous = read_manifest(out_dir)
    except (UserError, ValueError):
        return
    if previous.get("complete") is not False:
        write_manifest(out_dir, "render", **{**{k: v for k, v in previous.items() if k != "stage"}, "complete": False})


def _os_error(exc: OSError, out_dir: Path) -> UserError:
    """One line for a render stopped by the filesystem (the previous site is left as it was)."""
    where = f" ({exc.filename})" if exc.filename else ""
    problem = f"render into {out_dir} failed: {exc.strerror or exc}{where}; the previous site is unchanged"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space on the disk holding {out_dir.parent} (a render stages changed files beside the site), " \
              "then run render again"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = f"make {out_dir.parent} (and the archive) writable, then run render again"
    elif exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        fix = "pass an --out (and --archive) whose parent folders are directories"
    else:
        fix = f"check {out_dir.parent}, then run render again"
    return UserError(problem.replace("\n", " "), fix.replace("\n", " "))


def _generation_on_disk(out_dir: Path) -> str | None:
    """The generation of the site in ``out_dir`` when its manifest says the render completed, else None."""
    try:
        previous = read_manifest(out_dir)
    except (UserError, ValueError, OSError):
        return None
    complete = previous.get("stage") == "render" and previous.get("complete") is True
    return generation_of(previous) if complete and out_dir.is_dir() else None


RENDER_AGAIN = "render the site again (python -m generator render ...) and publish when it completes"


def assert_render_complete(site_dir) -> dict:
    """Raise UserError unless ``site_dir`` is a render that finished; returns its manifest.

    A render writes ``<site>.manifest.json`` with ``complete: true`` only after the site is in
    place, so publish calls this first and never uploads a half-built or foreign folder: no
    manifest (the render died, or the folder is not render's), one of another stage, one saying
    ``"complete": false`` or one without the field are all refused.
    """
    site_dir = Path(site_dir)
    path = manifest_path(site_dir)
    if not site_dir.is_dir() or not path.is_file():
        raise UserError(f"site {site_dir} has no render manifest ({path.name} beside it): its render did not "
                        "complete", RENDER_AGAIN)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"the render manifest {path} is unreadable ({exc})", RENDER_AGAIN) from None
    if not isinstance(manifest, dict) or manifest.get("stage") != "render":
        raise UserError(f"site {site_dir} is not a complete render: {path.name} is not render's manifest",
                        RENDER_AGAIN)
    if manifest.get("complete") is False:
        raise UserError(f"site {site_dir} is incomplete: {path.name} says its render did not complete", RENDER_AGAIN)
    if manifest.get("complete") is not True:
        raise UserError(f"site {site_dir} is not a complete render: {path.name} does not say it completed",
                        RENDER_AGAIN)
    return manifest


def render(samples_path, out_dir, settings: RenderSettings, night: str | None = None,
           report: dict | None = None, archive_dir=None) -> dict:
    """Render the gallery for ``samples_path`` (curated kept JSONL) into ``out_dir``; returns the manifest."""
    started = time.perf_counter()
    settings.validate()  # the loader validated a loaded config; this guards direct callers
    samples_path, out_dir = Path(samples_path), Path(out_dir)
    if report is not None and not isinstance(report, dict):
        raise UserError("the report must be a JSON object", "pass the report.json the pipeline wrote")
    night = check_night(night or (report or {}).get("night") or "undated", allow_undated=True)
    items, duplicates = load_items(read_jsonl(samples_path), night, str(samples_path))
    _check_out_dir(out_dir)
    try:
        with exclusive(out_dir, "site"):  # two renders would share one staging folder
            return _render(samples_path, out_dir, settings, night, report, archive_dir, items, duplicates, started)
    except OSError as exc:  # the lock file itself could not be made beside the site
        raise _os_error(exc, out_dir) from exc


def _render(samples_path: Path, out_dir: Path, settings: RenderSettings, night: str, report, archive_dir, items,
            duplicates: int, started: float) -> dict:

    writer = None
    try:
        if archive_dir is not None:
            if night == "undated":
                raise UserError("archiving a night needs its date", "pass --night YYYY-MM-DD (or a report with \"night\")")
            archive_dir = Path(archive_dir)
            # Tonight from its samples, not yet from the archive: a render that fails leaves the archive as it was.
            tonight = archived_night(archive_dir, night, items, report)
            nights = sorted([n for n in load_archive(archive_dir) if n.date != night] + [tonight],
                            key=lambda n: n.date)
        else:
            nights = [Night(night, items, report or {})]
        previous_generation = _generation_on_disk(out_dir)
        writer = SiteWriter(out_dir)
        site = Site(settings, writer, nights)
        built = site.build()

        def before_swap() -> None:
            if archive_dir is not None:  # the whole site is built: now the archive may hold tonight
                archive_night(archive_dir, night, samples_path, report)
            # From the swap until the new manifest is written the site is tonight's but the manifest last
            # night's: mark it incomplete first, so a crash in between cannot pass for a complete render.
            _mark_incomplete(out_dir)

        removed = writer.finish(before_swap=before_swap)
        if writer.kept_previous and archive_dir is not None:  # the site on disk is tonight's already
            archive_night(archive_dir, night, samples_path, report)
        # What changed, for publish (generator.site_journal); written before the manifest that names it.
        generation = previous_generation if writer.kept_previous and previous_generation else \
            declare(out_dir, previous_generation, writer.changed, writer.removed)
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if isinstance(exc, OSError):
            raise _os_error(exc, out_dir) from exc
        raise
    seconds = time.perf_counter() - started
    current = site.current
    log.info("rendered %d pages (%d written, %d unchanged, %d removed) in %.1fs -> %s",
             len(writer.produced), writer.written, writer.unchanged, removed, seconds, out_dir)
    fields = dict(
        complete=True,
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
        generation=generation,
        bytes=writer.bytes,
        types=dict(sorted(site.root_view.type_counts.items())),
        genres=dict(sorted(site.root_view.genre_counts.items())),
        base_url=site.base_url,
        seconds=round(seconds, 2),
        outputs={"site": str(out_dir), "home": str(out_dir / "index.html"),
                 "model_card": str(out_dir / "about" / "index.html")},
    )
    try:
        return write_manifest(out_dir, "render", **fields)
    except OSError as exc:
        raise UserError(f"render into {out_dir} swapped the new site in but could not write its manifest: "
                        f"{exc.strerror or exc}", "free space or fix permissions beside the site, then run render "
                        "again (publish refuses the site until then)") from exc
