"""The publish stage: check the rendered site, pick the backend, write the summary manifest.

The summary is returned and written to ``<site parent>/<site name>-publish.manifest.json``
(beside the site, so it never gets published; render owns ``<site>.manifest.json``).
"""

from __future__ import annotations

import contextlib

import dataclasses
import json
import os
import time
from pathlib import Path

from .. import lock
from ..artifacts import manifest_path, read_jsonl, read_manifest, write_manifest
from ..errors import UserError
from ..render.stage import assert_render_complete
from ..site_journal import generation_of, read_journal
from .common import PublishSettings, SiteFileGone, SiteFiles, Target, body_rule, log, parse_target
from .local import publish_file, resolved_root
from .plan import summary_line
from .s3_backend import publish_s3


def manifest_output(site_dir: Path) -> Path:
    """write_manifest() output path whose manifest is ``<site parent>/<site name>-publish.manifest.json``."""
    return site_dir.parent / f"{site_dir.name}-publish.json"


def nothing_to_publish(site_dir: Path, night: str, kept_path: Path) -> str | None:
    """Why the night leaves the site as it is, or None: it kept no descriptions and a site of another
    night is rendered at ``site_dir`` already (the pipeline's render and publish steps ask).

    Whatever ``curate.min_kept`` lets through (the ``test`` profile's 0), an empty night never
    replaces a gallery: the site on disk, and so the published one, stay as they were. A first
    night has no gallery to keep and renders its empty one.
    """
    if not Path(kept_path).is_file() or next(iter(read_jsonl(kept_path)), None) is not None:
        return None
    try:
        previous = read_manifest(site_dir)
    except (UserError, ValueError, OSError):
        return None
    if previous.get("stage") != "render" or previous.get("complete") is not True \
            or previous.get("rendered_night") == night:
        return None
    return f"night {night} kept no descriptions: the site of night {previous.get('night')} stays as it was"


def published_before_records(site: Path, target: str) -> bool:
    """Whether this site's last publish went to ``target`` with a publisher older than ownership records.

    Those publishers kept no record in a file:// target and treated everything under
    an S3 prefix as the site; their summaries (``<site>-publish.manifest.json``) lack
    the ``foreign`` count. Such a target upgrades without --adopt. A dry run in between
    keeps the finding (``presumed_ours``), since its summary replaces the old one.
    """
    path = manifest_path(manifest_output(site))
    try:
        last = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return False
    if not isinstance(last, dict) or last.get("stage") != "publish" or last.get("target") != target:
        return False
    return bool(last.get("presumed_ours")) or (last.get("dry_run") is False and "foreign" not in last)


def _publish_files(parsed: Target, files: SiteFiles, settings: PublishSettings, started: float, client,
                   legacy: bool) -> dict:
    """One attempt at the publish with the backend of the target (SiteFileGone: the site lacks a file)."""
    if parsed.kind == "s3":
        return publish_s3(parsed, files, settings, started, client=client, published_before_records=legacy)
    # Two publishers into one folder would interleave their swaps: one at a time per file:// target.
    guard = lock.exclusive(parsed.path, "publish target") if not settings.dry_run else contextlib.nullcontext()
    with guard:
        summary = publish_file(parsed, files.paths(), settings, started, published_before_records=legacy,
                               cache=files.cache)
    if settings.gzip:
        message = "gzip applies to S3 targets only (a directory serves files as they are); ignored"
        log.warning(message)
        summary["warnings"].append(message)
    return summary


def publish(site_dir: str | os.PathLike, target: str, settings: PublishSettings, *, client=None) -> dict:
    """Publish the rendered site at ``site_dir`` to ``target``; returns the summary (also the manifest).

    ``client``: an S3 client to use instead of building one (tests hook botocore events on it).
    """
    started = time.monotonic()
    settings = dataclasses.replace(settings, target=target)
    settings.validate()
    parsed = parse_target(target)
    site = Path(site_dir).expanduser().resolve()
    if not site.is_dir():
        raise UserError(f"site directory not found: {site}", "render the site first or pass --site DIR")
    if parsed.kind == "file":
        root = resolved_root(parsed.path)
        if root == site or site in root.parents or root in site.parents:
            raise UserError(f"publish target {parsed.path} overlaps the site directory {site}",
                            "publish to a directory outside the rendered site")
    rendered = assert_render_complete(site)
    legacy = published_before_records(site, target)
    generation = generation_of(rendered)
    # What render declared it changed: S3 may follow it alone; else the digest cache follows it (no walk,
    # no stat). --verify re-reads every file; the fresh digests replace the cache.
    files = SiteFiles(site, body_rule(settings.gzip and parsed.kind == "s3"), not settings.verify, generation,
                      read_journal(site, rendered), int(rendered.get("bytes") or 0))
    try:
        summary = _publish_files(parsed, files, settings, started, client, legacy)
    except SiteFileGone as gone:
        # The folder is the truth: a file the journal or the cache named is not there. Walk it (no
        # journal; the cache only for files whose stat still matches) and publish what it holds.
        log.warning("publish %s: %s: walking the site", target, gone)
        files = SiteFiles(site, files.body_rule, files.trust_cache, generation, None, files.rendered_bytes)
        try:
            summary = _publish_files(parsed, files, settings, started, client, legacy)
        except SiteFileGone as exc:
            raise UserError(f"publish to {target} failed reading the site: {exc}",
                            "do not render while publishing; re-run the publish") from None
        summary["warnings"].append(f"the site lacked a file render's journal or the digest cache named ({gone}): "
                                   "the site was walked and what it holds was published")
    if files.listed:  # else the S3 backend followed render's journal and counted what it read
        summary["hashed"] = len(files.paths()) - files.cache.hits  # files read this time (the others: digest cache)
    if legacy and settings.dry_run:
        summary["presumed_ours"] = True
    log.debug("publish %s: %s", target, summary_line(summary))
    return write_manifest(manifest_output(site), "publish", **summary)
