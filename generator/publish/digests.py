"""The local digest cache: each site file's upload MD5, kept across publishes so unchanged files are not re-read.

Without it every publish reads (and, with gzip, compresses) every file of the site to
learn its MD5, so a publish of a 100k-file site costs 100k reads even when 1% changed.
Render leaves a file it did not rewrite as the very same file (``render.writer``
hard-links it from the previous site: same inode, same mtime), and writes changed
files anew (new inode, new mtime). So an entry is trusted while the file's
``(size, mtime_ns, inode)`` are what they were when it was hashed, and the rules that
make the upload bytes (plain or gzip) are the same.

It lives beside the site, as ``<site name>-publish.digests.json`` (like the publish
summary, never part of the site), and is only a cache: a missing, unreadable or
foreign one means "hash everything", and ``--verify`` ignores it (and rewrites it).

Accepted risk (documented in the README): a file rewritten in place with the same
size, the same inode and its mtime set back to the old nanosecond (``touch -d`` on
purpose) keeps its old digest until ``--verify``. A file modified within
``RACY_NS`` of being hashed is not cached at all, since a second write in the same
mtime tick would go unseen (git's "racy clean" problem).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ..artifacts import atomic_write_bytes

CACHE_VERSION = 1
# Files whose mtime is this close to the hashing (or later) are hashed again next time.
RACY_NS = 2_000_000_000


def cache_path(site_dir: Path) -> Path:
    return site_dir.parent / f"{site_dir.name}-publish.digests.json"


class DigestCache:
    """key -> (size, mtime_ns, inode, md5 of the upload bytes, upload size), for one body rule."""

    def __init__(self, path: Path | None, body_rule: str, entries: dict[str, list] | None = None):
        self.path = path
        self.body_rule = body_rule
        self.entries = entries or {}
        self.fresh: dict[str, list] = {}
        self.started_ns = time.time_ns()
        self.hits = 0

    @classmethod
    def load(cls, path: Path | None, body_rule: str, trust: bool = True) -> "DigestCache":
        """The cache at ``path`` (empty if missing, unreadable, of other rules, or ``trust`` is False)."""
        if path is None or not trust:
            return cls(path, body_rule)
        try:
            state = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cls(path, body_rule)
        if not (isinstance(state, dict) and state.get("version") == CACHE_VERSION
                and state.get("body") == body_rule and isinstance(state.get("files"), dict)):
            return cls(path, body_rule)
        return cls(path, body_rule, state["files"])

    def lookup(self, key: str, stat: os.stat_result) -> tuple[str, int] | None:
        """(md5, upload size) if ``key`` was hashed as this very file; records it as still current."""
        entry = self.entries.get(key)
        if (isinstance(entry, list) and len(entry) == 5 and entry[0] == stat.st_size
                and entry[1] == stat.st_mtime_ns and entry[2] == stat.st_ino):
            self.hits += 1
            self.fresh[key] = entry
            return entry[3], entry[4]
        return None

    def store(self, key: str, stat: os.stat_result, md5: str, upload_size: int) -> None:
        if stat.st_mtime_ns < self.started_ns - RACY_NS:
            self.fresh[key] = [stat.st_size, stat.st_mtime_ns, stat.st_ino, md5, upload_size]

    def save(self) -> None:
        """Write the entries of this scan (files gone from the site drop out); a failure only costs speed."""
        if self.path is None or self.fresh == self.entries:
            return
        body = json.dumps({"version": CACHE_VERSION, "body": self.body_rule, "files": self.fresh},
                          separators=(",", ":")).encode()
        try:
            atomic_write_bytes(self.path, body)
        except OSError as exc:  # e.g. a read-only folder beside the site: the next publish hashes everything
            logging.getLogger("generator.publish").warning("could not keep the digest cache %s: %s", self.path, exc)
