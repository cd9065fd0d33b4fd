"""One writer at a time: an advisory lock on a workdir, a stage output or a publish target.

``with exclusive(path, "workdir"):`` takes ``fcntl.flock`` on a lock file and writes into
it who holds it: ``{"pid", "host", "since", "command"}``. A second process asking for the
same lock does not wait: it fails at once with a :class:`UserError` naming the holder::

    error: workdir var/run is in use by pid 123 on host h since 2026-12-01T20:00Z
    (`python -m generator run ...`) (fix: wait for it to finish, or if that process is gone,
    run again: a lock whose process is dead is taken over)

Stale locks: the lock is the ``flock``, not the file. The kernel releases a flock when its
process exits, however it exits (even SIGKILL or a crash), so a lock file left behind with
a dead process's record is not a lock: the next process takes it over and rewrites the
record. A clean release removes the file (while still holding it; a process that opened
the old file just before checks, after locking, that the name still points at what it
locked, and retries otherwise), so only a killed process leaves one. ``flock`` works on
local filesystems and on NFSv4 (Linux emulates it with a byte-range lock there); workers
sharing a workdir need one of those.

``shared(path, what)`` is the reader side (``LOCK_SH``): any number of shared holders (the
DAG's generate shards), but never together with an exclusive one. Locks are re-entrant
within a process: ``run`` holds the workdir for the whole night and each step it calls
asks again without deadlocking itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .redact import mask_url

# lock file (resolved) -> [fd, mode, depth]: what this process holds (flock is per open file).
_held: dict[str, list] = {}
_guard = threading.Lock()

EXCLUSIVE, SHARED = "exclusive", "shared"
_FIX = ("wait for it to finish, or if that process is gone, run again: a lock whose process is dead is "
        "taken over")


def lock_file(path: str | os.PathLike) -> Path:
    """Where the lock of ``path`` lives: a hidden sibling ``.<name>.lock``.

    Beside rather than inside, because stage outputs and publish targets are replaced
    whole by a rename, which would take a lock file inside them away.
    """
    path = Path(path).expanduser().absolute()
    return path.with_name(f".{path.name}.lock")


def workdir_lock_file(workdir: str | os.PathLike) -> Path:
    """A workdir is never replaced whole, so its lock lives inside it: ``<workdir>/.lock``."""
    return Path(workdir).expanduser().absolute() / ".lock"


def command_line(argv: list[str] | None = None) -> str:
    """This process's command, for the record; URLs lose their userinfo and query (signatures)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith("__main__.py") and "generator" in argv[0]:
        argv[0:1] = ["python", "-m", "generator"]
    shown = [mask_url(a) if "://" in a else a for a in argv]
    text = " ".join(shown)
    return text if len(text) <= 300 else text[:297] + "..."


def _record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "command": command_line()}


def _holder(fd: int) -> str:
    """Who holds the lock, from its record; the record may be half-written or from an older version."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode("utf-8"))
        return (f"pid {record['pid']} on host {record['host']} since {record['since']} "
                f"(`{record['command']}`)")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its record is not readable)"


def _open(lock: Path) -> int:
    """The lock file's descriptor; an OSError (read-only, not a directory, no space) goes to the caller's boundary."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(lock, flags, 0o644)
    except FileNotFoundError:  # the folder the lock guards is not made yet
        lock.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock, flags, 0o644)


@contextlib.contextmanager
def _locked(path, what: str, mode: str, lock: Path | None = None) -> Iterator[Path]:
    lock = (lock or lock_file(path)).absolute()
    key = str(lock)
    with _guard:
        held = _held.get(key)
        if held is not None:
            if mode == EXCLUSIVE and held[1] == SHARED:
                raise RuntimeError(f"{key}: an exclusive lock asked for inside a shared one (a bug)")
            held[2] += 1
    if held is not None:
        try:
            yield lock
        finally:
            with _guard:
                held[2] -= 1
        return
    fd = _acquire(lock, what, path, mode)
    with _guard:
        _held[key] = [fd, mode, 1]
    try:
        yield lock
    finally:
        with _guard:
            del _held[key]
        if mode == EXCLUSIVE:
            # Unlinked while still held: whoever opens the name next gets a new file, and
            # _acquire's inode check makes a late opener of this one retry on that.
            with contextlib.suppress(OSError):
                os.unlink(lock)
        os.close(fd)  # closing the last descriptor releases the flock


def _acquire(lock: Path, what: str, path, mode: str) -> int:
    """Open and flock the lock file; retry when the name was unlinked and re-created meanwhile."""
    while True:
        fd = _open(lock)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if mode == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(f"{what} {path} is in use by {holder}", _FIX) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # we locked a file its holder had just unlinked: lock the current one instead
            os.close(fd)
            continue
        if mode == EXCLUSIVE:
            data = (json.dumps(_record(), sort_keys=True) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        return fd


def exclusive(path, what: str, lock: Path | None = None):
    """Hold ``path`` alone (``what`` names it in the error: "workdir", "site", …); fail fast if taken."""
    return _locked(path, what, EXCLUSIVE, lock)


def shared(path, what: str, lock: Path | None = None):
    """Hold ``path`` together with other shared holders, never with an exclusive one; fail fast if taken."""
    return _locked(path, what, SHARED, lock)


def workdir(config, mode: str = EXCLUSIVE):
    """The lock of the configured workdir (``<workdir>/.lock``)."""
    root = Path(config.paths.workdir).expanduser()
    return _locked(root, "workdir", mode, workdir_lock_file(root))
