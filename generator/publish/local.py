"""Publishing to file:///dir: the same diff and ownership rules, and one atomic swap of the whole tree.

The new tree is built beside the target (unchanged files hard-linked from the
current tree, changed ones copied, the ownership record written into it) and
exchanged with the target in one step.

Why an exchange of two real directories, and not versioned folders behind a
symlink: readers (a web server's document root, a browser's file:// URL, the
demo's "Open the site" line) open the target path itself. A symlink flip needs
the target to be a symlink the publisher owns, which changes what users point
at, and breaks when the user's target already is a symlink of their own (which
must keep working, see below). ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15)
swaps the target directory and the staging one atomically, so a reader opening
``<target>/index.html`` gets the whole old site or the whole new one, never a
missing file or a mix of both. Where the kernel or filesystem cannot exchange,
``artifacts.replace_directory`` falls back to two renames (a window of
microseconds without the target).

A target that is a symlink stays one: the directory it points to is what gets
swapped (the staging tree is built beside that directory, on its filesystem).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..artifacts import replace_directory
from ..errors import UserError
from .common import STATE_NAME, LocalFile, Plan, PublishSettings, SiteFileGone, Target, Upload, describe
from .digests import DigestCache
from .plan import assign_phases, split_extras, summary
from .record import Entry, Record, owned_keys, parse_record

# A directory serves files as they are, with no headers of ours: the record keeps none.
NO_HEADERS = ""


def resolved_root(path: Path) -> Path:
    """The directory to publish into: a symlinked target is followed, so the link itself stays."""
    root = Path(os.path.realpath(path))
    if root.exists() and not root.is_dir():
        raise UserError(f"publish target {path} exists and is not a directory", "pick a directory path for file://")
    return root


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _published_md5(path: Path, entry: Entry | None, settings: PublishSettings) -> str:
    """The MD5 of a published file: the record's (the tree and its record are swapped in together),
    unless --verify asks to read it, or the record has none (an adopted or version-1 target)."""
    if entry is not None and entry.md5 and not settings.verify:
        return entry.md5
    return _md5_file(path)


def _existing_tree(root: Path) -> dict[str, Path]:
    """key -> path of every file the target holds, the record excluded."""
    tree = {}
    if root.is_dir():
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                tree[path.relative_to(root).as_posix()] = path
    tree.pop(STATE_NAME, None)
    return tree


def _read_record(root: Path, existing: dict[str, Path], settings: PublishSettings) -> Record | None:
    path = root / STATE_NAME
    body = path.read_bytes() if path.is_file() else None
    return parse_record(body, str(path), {key: "" for key in existing}, settings)


def _copy_file(source: Path, destination: Path) -> None:
    shutil.copyfile(source, destination)


def _link_or_copy(source: Path, destination: Path) -> None:
    """Reuse an unchanged published file: a hard link costs no bytes (we never write files in place)."""
    try:
        os.link(source, destination)
    except OSError:
        _copy_file(source, destination)


def _build_tree(staging: Path, files: list[LocalFile], changed: set[str], existing: dict[str, Path],
                carried: list[str], record: Record) -> None:
    """The new site in ``staging``: site files, files carried over (held-back deletes, others'), the record."""
    for f in files:
        destination = staging / f.key
        destination.parent.mkdir(parents=True, exist_ok=True)
        if f.key in changed:
            _copy_file(f.path, destination)
        else:
            _link_or_copy(existing[f.key], destination)
    for key in carried:
        (staging / key).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(existing[key], staging / key)
    (staging / STATE_NAME).write_bytes(record.to_bytes())


def publish_file(target: Target, paths: list[tuple[str, str]], settings: PublishSettings, started: float,
                 published_before_records: bool = False, cache: DigestCache | None = None) -> dict:
    root = resolved_root(target.path)
    clock = time.monotonic()
    try:
        files = describe(paths, settings, compress=False, cache=cache)
    except FileNotFoundError as exc:  # the stage walks the site and publishes again
        raise SiteFileGone(str(exc)) from None
    timings = {"scan": time.monotonic() - clock}
    clock = time.monotonic()
    existing = _existing_tree(root)
    record = _read_record(root, existing, settings)
    owned = owned_keys(record, set(existing), target.uri, settings, published_before_records)
    entries = record.files if record else {}
    uploads, skipped = [], []
    for f in files:
        old = existing.get(f.key)
        if old is None:
            uploads.append(Upload(f, "new"))
        elif old.stat().st_size != f.size or _published_md5(old, entries.get(f.key), settings) != f.md5:
            uploads.append(Upload(f, "content changed"))
        else:
            skipped.append(f)
    warnings: list[str] = []
    deletes, kept, foreign = split_extras(set(existing), owned, {f.key for f in files}, settings, warnings)
    assign_phases(uploads, new_keys={u.file.key for u in uploads if u.file.key not in existing})
    plan = Plan(uploads, skipped, deletes, kept, warnings, foreign)
    new_record = Record({**{key: entries.get(key, Entry("", NO_HEADERS)) for key in kept},
                         **{f.key: Entry(f.md5, NO_HEADERS) for f in files}})
    timings["plan"], clock = time.monotonic() - clock, time.monotonic()
    if settings.dry_run or not (uploads or deletes or not new_record.same_as(record)):
        return summary(target, files, plan, settings, started, 0, timings=timings)

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.staging-", dir=root.parent))
    try:
        os.chmod(staging, (root.stat().st_mode & 0o7777) if root.exists() else 0o755)
        _build_tree(staging, files, {u.file.key for u in uploads}, existing, kept + foreign, new_record)
        replace_directory(staging, root)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and any(str(exc.filename) == path for _, path in paths):
            raise SiteFileGone(str(exc)) from None  # a site file, gone: the stage walks the site
        raise UserError(f"publish to {target.uri} failed: {exc}",
                        "fix the problem and re-run; the published directory was not touched") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    timings["upload"] = time.monotonic() - clock
    return summary(target, files, plan, settings, started, len(deletes), timings=timings)
