"""The site writer: a render is all or nothing, and an unchanged file stays the same file.

Every render builds the whole site in a staging folder beside it (``.<name>.staging``)
and puts it in place with one swap (:func:`generator.artifacts.replace_directory`), so
the site on disk is always a complete render: last night's until the swap, tonight's
after it. A failed render leaves the previous site untouched and the staging folder
removed (:meth:`SiteWriter.abort`).

Staging does not mean rewriting: a file whose bytes equal the previous site's is
hard-linked into staging, so after the swap it is the same file (same inode and mtime)
and only new or changed files were written. When nothing changed at all, the staging
folder is dropped and the site is left exactly as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

from ..artifacts import replace_directory
from ..console import progress

# Filesystems without hard links (or with a full link count) get a copy that keeps the mtime instead.
_NO_LINK = {errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


class SiteWriter:
    """Writes the site into a staging folder; :meth:`finish` swaps it in, :meth:`abort` drops it."""

    def __init__(self, target: Path):
        self.target = target
        self.root = target.with_name(f".{target.name}.staging")
        shutil.rmtree(self.root, ignore_errors=True)  # left by a crashed render
        self.root.mkdir(parents=True)
        self.produced: set[str] = set()
        self.sitemap: list[str] = []
        self.unchanged = self.bytes = 0
        # What this render changed, for the site journal (generator.site_journal): key -> MD5 of the
        # bytes written, and (after finish) the keys of the previous site it no longer has.
        self.changed: dict[str, str] = {}
        self.removed: list[str] = []
        self.kept_previous = False  # finish() found nothing changed and left the previous site in place
        # Pages this process writes (forked permalink workers write theirs without a bar of their own).
        self._bar, self._pid = progress(None, "render", unit="page"), os.getpid()
        self._root = str(self.root)
        self._previous = str(target) if target.is_dir() else None
        self._dirs: set[str] = {self._root}

    def make_dir(self, rel: str) -> None:
        """Create a folder of the site ahead of writers that share it (forked permalink workers)."""
        path = f"{self._root}/{rel}"
        os.makedirs(path, exist_ok=True)
        self._dirs.add(path)

    def write(self, rel: str, data: str | bytes, indexable: bool = False) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if rel in self.produced:
            raise AssertionError(f"render produced {rel} twice")
        self.produced.add(rel)
        if self._pid == os.getpid():
            self._bar.update(1)
        self.bytes += len(data)
        if indexable:
            self.sitemap.append(rel)
        path = f"{self._root}/{rel}"  # plain strings: pathlib costs more than the write on 100k files
        parent = path.rpartition("/")[0]
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        if self._previous is not None and self._keep_previous(rel, path, data):
            self.unchanged += 1
            return
        # Nobody reads the staging folder, so no temp file + rename per file; finish() syncs once.
        with open(path, "wb") as handle:
            handle.write(data)
        self.changed[rel] = hashlib.md5(data).hexdigest()

    @property
    def written(self) -> int:
        return len(self.changed)

    def _keep_previous(self, rel: str, path: str, data: bytes) -> bool:
        """Link the previous site's file into staging when its bytes are ``data``; False if they differ."""
        old = f"{self._previous}/{rel}"
        try:
            if os.stat(old).st_size != len(data):
                return False
            with open(old, "rb") as handle:
                if handle.read() != data:
                    return False
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        try:
            os.link(old, path)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            shutil.copy2(old, path)
        return True

    def finish(self, before_swap: Callable[[], None] | None = None) -> int:
        """Put the staged site in place (``before_swap`` runs just before); returns how many files went
        (:attr:`removed` lists them)."""
        self._bar.close()
        removed, same_folders = self.removed, True
        if self._previous is not None:
            folders = self._folders()
            cut = len(self._previous) + 1
            for dirpath, _, filenames in os.walk(self._previous):
                if dirpath != self._previous and dirpath[cut:] not in folders:
                    same_folders = False  # an empty or stale folder: the swap drops it
                removed.extend(key for key in (os.path.join(dirpath, name)[cut:] for name in filenames)
                               if key not in self.produced)
            if not self.written and not removed and same_folders:
                self.abort()  # the site on disk is this render already: leave it as it is
                self.kept_previous = True
                return 0
        _syncfs(self.root)  # one flush for every file written, before the swap makes them the site
        if before_swap is not None:
            before_swap()
        replace_directory(self.root, self.target)
        return len(removed)

    def _folders(self) -> set[str]:
        """Every folder (relative, with its ancestors) holding a file produced this time."""
        folders: set[str] = set()
        for rel in self.produced:
            while "/" in rel:
                rel = rel.rpartition("/")[0]
                if rel in folders:
                    break
                folders.add(rel)
        return folders

    def abort(self) -> None:
        """Drop the staging folder (a failed render); the previous site is untouched."""
        self._bar.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux syncfs), else everything (os.sync)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
