"""The plan: which files go in which phase, which published files go, and the summary of it all.

Order (each phase finishes before the next starts, so readers never meet a broken page):
  assets   fingerprinted files, and other non-HTML files except listings (images, fonts, the web manifest)
  pages    new HTML pages, and changed ones that link to no new page (item pages, edited pages)
  indexes  changed HTML pages that link to a new page (pagination, genre pages…), feeds, sitemap, data
  home     the root index.html
  deletes  published files no longer in the site (only files this gallery published), capped by ``max_deletes``
A new page is reachable only through a page published after it, and every page a
reader can open links only to files already up. A failed publish stops before
the next phase: the previous index.html and all it links stay intact.
"""

from __future__ import annotations

import html
import posixpath
import re
import time
import urllib.parse
from collections import Counter

from .common import PHASES, LocalFile, Plan, PublishSettings, Target, Upload, log

_HREF = re.compile(rb"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def page_links(key: str, data: bytes) -> set[str]:
    """Site keys a page may link to (``x/`` -> ``x/index.html``; ``x`` -> ``x`` and ``x/index.html``)."""
    base = posixpath.dirname(key)
    links = set()
    for match in _HREF.finditer(data):
        raw = next(group for group in match.groups() if group is not None)
        url = html.unescape(raw.decode("utf-8", "replace")).strip().split("#", 1)[0].split("?", 1)[0]
        if not url or _SCHEME.match(url) or url.startswith("//"):
            continue
        url = urllib.parse.unquote(url)
        path = posixpath.normpath(url.lstrip("/") if url.startswith("/") else posixpath.join(base, url))
        if path == ".":
            path = ""
        if path.startswith(".."):
            continue
        if url.endswith("/") or not path:
            links.add(posixpath.join(path, "index.html"))
        else:
            links.update((path, f"{path}/index.html"))
    return links


def assign_phases(uploads: list[Upload], new_keys: set[str]) -> None:
    """Put each upload in its phase (see the module docstring)."""
    # The home page goes last anyway; every page linking back to it must not make it an index.
    new_html = {u.file.key for u in uploads if u.file.is_html and u.file.key in new_keys} - {"index.html"}
    for upload in uploads:
        f = upload.file
        if f.key == "index.html":
            upload.phase = "home"
        elif f.is_html:
            # A new page is unreachable until a page published after it links to it, so new pages
            # go first whatever they link to; a page readers can already open waits for the new
            # pages it links to.
            waits = f.key not in new_keys and page_links(f.key, f.path.read_bytes()) & new_html
            upload.phase = "indexes" if waits else "pages"
        elif f.is_listing:
            upload.phase = "indexes"
        else:
            upload.phase = "assets"


# --- plans and summaries ----------------------------------------------------------------------

def change_reason(md5: str, headers: str, f: LocalFile) -> str | None:
    """Why ``f`` goes up again over a published object of ``md5`` and ``headers`` (digest); None if it is
    the same bytes with the same headers."""
    if md5 != f.md5:
        return "content changed"
    if headers != f.headers_hash:
        return "headers changed"
    return None



def split_extras(existing: set[str], owned: set[str], local_keys: set[str], settings: PublishSettings,
                 warnings: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(deletes, deletes held back by max_deletes, foreign files left alone) among what the target holds.

    Only files this gallery published (``owned``) are ever deleted; the others are
    someone else's and stay, whatever the site holds.
    """
    deletes, kept = guard_deletes(sorted((existing & owned) - local_keys), settings, warnings)
    foreign = sorted(existing - owned - local_keys)
    if foreign:
        message = (f"{len(foreign)} files in the target were not published by this gallery and are left alone "
                   f"(first: {foreign[0]}); pass --adopt to take them over")
        log.info(message)
        warnings.append(message)
    return deletes, kept, foreign


def too_many_deletes(count: int, settings: PublishSettings) -> bool:
    """More deletes than ``max_deletes`` allows (without ``force_deletes``): then none is made."""
    return count > settings.max_deletes and not settings.force_deletes


def guard_deletes(extra: list[str], settings: PublishSettings, warnings: list[str]) -> tuple[list[str], list[str]]:
    extra = sorted(extra)
    if too_many_deletes(len(extra), settings):
        message = (f"{len(extra)} files are no longer in the site, more than max_deletes={settings.max_deletes}; "
                   f"deleting none (check the site, then pass --force-deletes or raise --max-deletes)")
        log.warning(message)
        warnings.append(message)
        return [], extra
    return extra, []


def summary(target: Target, files: list[LocalFile], plan: Plan, settings: PublishSettings, started: float,
            deleted: int, requests: Counter | None = None, timings: dict | None = None, **extra) -> dict:
    """The publish's figures: returned, written to the manifest and copied into the night's report."""
    uploads = plan.uploads
    figures = {
        "target": target.uri,
        "kind": target.kind,
        "dry_run": settings.dry_run,
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "uploaded": 0 if settings.dry_run else len(uploads),
        "uploaded_bytes": 0 if settings.dry_run else sum(u.file.upload_size for u in uploads),
        "to_upload": len(uploads),
        "to_upload_bytes": sum(u.file.upload_size for u in uploads),
        "skipped": len(plan.skipped),
        "deleted": deleted,
        "to_delete": len(plan.deletes),
        "deletes_skipped": len(plan.deletes_skipped),
        "foreign": len(plan.foreign),
        "reasons": dict(sorted(Counter(u.reason for u in uploads).items())),
        "phases": {phase: sum(1 for u in uploads if u.phase == phase) for phase in PHASES},
        "requests": dict(sorted((requests or Counter()).items())),
        "requests_total": sum((requests or Counter()).values()),
        "warnings": plan.warnings,
        "seconds": round(time.monotonic() - started, 3),
        "timings": {step: round(seconds, 3) for step, seconds in (timings or {}).items()},
        **extra,
    }
    if settings.dry_run:
        figures["plan"] = plan.lines()
    return figures


def summary_line(summary: dict) -> str:
    def size(n: int) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"

    if summary["dry_run"]:
        head = f"dry run: would upload {summary['to_upload']} ({size(summary['to_upload_bytes'])}), "
        tail = f"delete {summary['to_delete']}"
    else:
        head = f"uploaded {summary['uploaded']} ({size(summary['uploaded_bytes'])}), "
        tail = f"deleted {summary['deleted']}"
    kept = f", kept {summary['deletes_skipped']} over max-deletes" if summary["deletes_skipped"] else ""
    kept += f", left {summary['foreign']} not ours" if summary.get("foreign") else ""
    requests = f", {summary['requests_total']} requests" if summary["kind"] == "s3" else ""
    return f"{head}skipped {summary['skipped']} unchanged, {tail}{kept}{requests} in {summary['seconds']:.1f} s"

