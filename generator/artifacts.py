"""Atomic file writes, JSONL, hashes and stage manifests.

Every stage writes its outputs through these helpers so that a crash never
leaves a half-written artifact where the next stage (or the next night) would
read it: data goes to a temporary file in the same directory, is fsynced, then
renamed over the target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError

# renameat2(2): paths relative to the working directory; swap the two names instead of replacing.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[Any]:
    """Open a temp file beside ``path``; on clean exit fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "")
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSON lines atomically; returns how many were written."""
    count = 0
    with atomic_open(path, "w") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike, require_text: bool = True) -> Iterator[dict]:
    """Yield the objects of a JSON-lines file, with a clear error for a bad line.

    Samples files (``require_text``) must give every object a string ``text``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file not found: {path}", "pass the path of an existing .jsonl file")
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{number}: malformed JSON line ({exc.msg})",
                    "make every line one JSON object such as {\"text\": \"...\"}",
                ) from None
            if not isinstance(record, dict) or (require_text and not isinstance(record.get("text"), str)):
                raise UserError(
                    f"{path}:{number}: each line must be a JSON object with a string \"text\"",
                    "write lines like {\"text\": \"A detective ...\", \"terminated\": true}",
                )
            yield record


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_path(output: str | os.PathLike) -> Path:
    """Where the manifest of a stage output lives: a sibling ``<stem>.manifest.json``.

    ``kept.jsonl`` -> ``kept.manifest.json``; a directory ``site`` -> ``site.manifest.json``.
    Beside the output rather than inside it, so a published site never carries it.
    """
    output = Path(output)
    return output.with_name(f"{output.stem}.manifest.json")


def write_manifest(output: str | os.PathLike, stage: str, **fields: Any) -> dict:
    """Write the manifest of ``output`` (see :func:`manifest_path`) and return it."""
    manifest = {"stage": stage, **fields}
    atomic_write_json(manifest_path(output), manifest)
    return manifest


def read_manifest(output: str | os.PathLike, stage: str | None = None) -> dict:
    path = manifest_path(output)
    if not path.is_file():
        hint = f"run the {stage} stage first" if stage else "run the previous stage first"
        raise UserError(f"no manifest at {path}", hint)
    return json.loads(path.read_text(encoding="utf-8"))


def exchange_directories(a: Path, b: Path) -> bool:
    """Swap two directory entries in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the kernel, the C library or the filesystem cannot do it
    (not Linux, glibc < 2.28, Linux < 3.15, some network filesystems); the caller
    then falls back to two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(a), None, str(b))


def replace_directory(staging: Path, target: Path) -> None:
    """Swap a fully built ``staging`` directory into place at ``target``; ``staging`` is gone after.

    Where the system allows it, ``target`` and ``staging`` are exchanged in one
    atomic step, so at every instant ``target`` is the whole old tree or the whole
    new one and a reader never finds it missing. Elsewhere the old target is
    renamed aside and the new one renamed in: two renames, a window of
    microseconds in which ``target`` does not exist. A symlinked ``target`` is
    replaced itself, not followed: callers that mean the directory it points to
    pass its resolved path.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() and not target.is_symlink():
        os.replace(staging, target)  # renaming onto a free name is atomic already
        return
    if target.is_dir() and not target.is_symlink() and exchange_directories(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now the old tree
        return
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
