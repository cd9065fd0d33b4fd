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
``RACY_NS`` of being hashed is never trusted on its stat, since a second write in the
same mtime tick would go unseen (git's "racy clean" problem); its entry is kept, marked
so that no stat matches it, for the journal below, which vouches for it without a stat.

Render's journal (``generator.site_journal``) makes the common case O(change): the cache
remembers the site generation it describes in full, and when the render journal goes
from that generation to the site's current one, the files render did not write are
the very files hashed last time, so they are taken as cached without a stat
(:meth:`DigestCache.follow`); only the written ones are read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ..artifacts import atomic_write_bytes
from ..site_journal import Journal

CACHE_VERSION = 2  # 1 was {key: [size, mtime_ns, inode, md5, upload size]}; read as "hash everything"
# Files whose mtime is this close to the hashing (or later) are hashed again next time.
RACY_NS = 2_000_000_000
_UNSETTLED = -1  # the mtime_ns of a racy entry: never matches a stat, still vouched for by a journal
_COLUMNS = ("size", "mtime", "inode", "md5", "upload")


def cache_path(site_dir: Path) -> Path:
    return site_dir.parent / f"{site_dir.name}-publish.digests.json"


class DigestCache:
    """key -> (size, mtime_ns, inode, md5 of the upload bytes, upload size), for one body rule."""

    def __init__(self, path: Path | None, body_rule: str, entries: dict[str, tuple] | None = None,
                 generation: str | None = None):
        self.path = path
        self.body_rule = body_rule
        self.entries = entries or {}
        self.generation = generation  # the site generation these entries describe in full, if known
        self.fresh: dict[str, tuple] = {}
        self.started_ns = time.time_ns()
        self.hits = 0
        # key -> entry of files a render journal vouches for: taken without a stat (see follow()).
        self.vouched: dict[str, tuple] = {}
        self.site_generation: str | None = None  # the render's, saved with a scan that covered every file

    @classmethod
    def load(cls, path: Path | None, body_rule: str, trust: bool = True) -> "DigestCache":
        """The cache at ``path`` (empty if missing, unreadable, of other rules, or ``trust`` is False)."""
        if path is None or not trust:
            return cls(path, body_rule)
        try:
            state = json.loads(path.read_bytes())
            columns = [state[name] for name in ("keys", *_COLUMNS)]
            if not (state.get("version") == CACHE_VERSION and state.get("body") == body_rule
                    and all(isinstance(column, list) and len(column) == len(columns[0]) for column in columns)):
                return cls(path, body_rule)
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path, body_rule)
        generation = state.get("generation") if isinstance(state.get("generation"), str) else None
        return cls(path, body_rule, dict(zip(columns[0], zip(*columns[1:]))), generation)

    def follow(self, journal: Journal | None, site_dir: Path) -> list[tuple[str, str]] | None:
        """(key, path) of every site file, from this cache and render's journal, or None to walk the site.

        Only when the cache describes the generation the journal starts from (or the current
        one); files the journal did not write are then vouched for without a stat.
        """
        if journal is None or self.generation is None:
            return None
        if self.generation == journal.generation:
            written: frozenset[str] = frozenset()
        elif self.generation == journal.previous:
            written = journal.written
        else:
            return None
        gone = journal.removed | written
        self.vouched = {key: entry for key, entry in self.entries.items() if key not in gone} if gone else self.entries
        self.fresh = dict(self.vouched)  # still current: describe() takes them as they are
        self.hits = len(self.vouched)
        root = f"{site_dir}/"
        keys = sorted([*self.vouched, *written])  # nearly sorted already (the cache is saved in key order)
        return [(key, root + key) for key in keys]

    def lookup(self, key: str, stat: os.stat_result) -> tuple[str, int] | None:
        """(md5, upload size) if ``key`` was hashed as this very file; records it as still current."""
        entry = self.entries.get(key)
        if (entry is not None and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns
                and entry[2] == stat.st_ino):
            self.hits += 1
            self.fresh[key] = entry
            return entry[3], entry[4]
        return None

    def store(self, key: str, stat: os.stat_result, md5: str, upload_size: int) -> None:
        racy = stat.st_mtime_ns >= self.started_ns - RACY_NS
        self.fresh[key] = (stat.st_size, _UNSETTLED if racy else stat.st_mtime_ns, stat.st_ino, md5, upload_size)

    def save(self, files: int) -> None:
        """Write the entries of this scan of ``files`` files (files gone from the site drop out), naming the
        site generation when every file has its entry; a failure only costs speed."""
        generation = self.site_generation if len(self.fresh) == files else None
        if self.path is None or (self.fresh == self.entries and generation == self.generation):
            return
        keys = sorted(self.fresh)
        rows = [self.fresh[key] for key in keys]
        state = {"version": CACHE_VERSION, "body": self.body_rule, "generation": generation, "keys": keys,
                 **{name: [row[index] for row in rows] for index, name in enumerate(_COLUMNS)}}
        try:
            atomic_write_bytes(self.path, json.dumps(state, separators=(",", ":")).encode())
        except OSError as exc:  # e.g. a read-only folder beside the site: the next publish hashes everything
            logging.getLogger("generator.publish").warning("could not keep the digest cache %s: %s", self.path, exc)
