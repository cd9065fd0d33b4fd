"""The site writer: every file of the site written atomically, and only when its bytes change.

A new site is built in a staging folder and swapped in with one rename; an existing one is
updated in place, each file compared with what is on disk and replaced atomically only when
its bytes differ, and files no longer produced removed. So an unchanged night rewrites
nothing and the publisher uploads only what changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..artifacts import replace_directory


class SiteWriter:
    """Writes the site's files atomically and only when their bytes change.

    A new site (missing or empty folder) is built in a staging folder beside it and swapped
    into place in one rename. An existing site is updated in place: each file is compared
    with what is on disk and replaced (temp file + rename) only when it differs; finish()
    removes the files not produced this time.
    """

    def __init__(self, target: Path):
        self.target = target
        self.fresh = not target.is_dir() or not any(target.iterdir())
        staging = target.with_name(f".{target.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)  # left by a crashed render
        self.root = staging if self.fresh else target
        self.root.mkdir(parents=True, exist_ok=True)
        self.produced: set[str] = set()
        self.sitemap: list[str] = []
        self.written = self.unchanged = self.bytes = 0
        self._root = str(self.root)
        self._dirs: set[str] = {self._root}

    def write(self, rel: str, data: str | bytes, indexable: bool = False) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if rel in self.produced:
            raise AssertionError(f"render produced {rel} twice")
        self.produced.add(rel)
        self.bytes += len(data)
        if indexable:
            self.sitemap.append(rel)
        path = f"{self._root}/{rel}"  # plain strings: pathlib costs more than the write on 100k files
        parent, _, name = path.rpartition("/")
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        if self.fresh:  # nobody reads the staging folder: write straight in
            with open(path, "wb") as handle:
                handle.write(data)
            self.written += 1
            return
        try:
            if os.stat(path).st_size == len(data):
                with open(path, "rb") as handle:
                    if handle.read() == data:
                        self.unchanged += 1
                        return
        except FileNotFoundError:
            pass
        # Temp file + rename: a reader (or a crash) sees the old file or the new one, never half.
        # No fsync per file (100k fsyncs would dominate the render); finish() syncs once.
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.written += 1

    def finish(self) -> int:
        """Put the site in place; returns how many stale files were removed."""
        if self.fresh:
            _syncfs(self.root)
            replace_directory(self.root, self.target)
            return 0
        removed, cut = 0, len(self._root) + 1
        for dirpath, dirnames, filenames in os.walk(self._root, topdown=False):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if path[cut:] not in self.produced:
                    os.unlink(path)
                    removed += 1
            if dirpath != self._root and not os.listdir(dirpath):
                os.rmdir(dirpath)
        if self.written or removed:
            _syncfs(self.root)  # one flush for every rename above
        return removed


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
