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
import math
import os
import re
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


# Samples fields other stages read, and the JSON types they must have (None: the field may be null).
SAMPLE_FIELDS = {
    "text": ((str,), "a string"),
    "title": ((str, type(None)), "a string or null"),
    "terminated": ((bool,), "true or false"),
    "type": ((str, type(None)), "a string or null"),
    "genre": ((str, type(None)), "a string or null"),
    "index": ((int,), "an integer"),
    "logprob": ((int, float, type(None)), "a number or null"),
}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _sample_type_error(record: dict) -> str | None:
    """What is wrong with the types of a samples record (``"terminated": "false"`` is not false)."""
    if not isinstance(record.get("text"), str):
        got = json.dumps(record["text"])[:40] if "text" in record else "none"
        return f'each line needs a string "text" (got {got})'
    for field, (types, expected) in SAMPLE_FIELDS.items():
        value = record.get(field)
        if field not in record or field == "text":
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f'"{field}" must be {expected}, got {json.dumps(value)[:40]}'
        if isinstance(value, float) and not math.isfinite(value):
            return f'"{field}" must be a finite number, got {value}'
    return None


def read_jsonl(path: str | os.PathLike, require_text: bool = True) -> Iterator[dict]:
    """Yield the objects of a JSON-lines file; any bad line is a UserError naming the file and line.

    One boundary for reading and decoding: a missing or unreadable file, bytes that are not
    UTF-8, malformed JSON, a lone surrogate (``\\ud800``, which no UTF-8 writer can write
    back), nesting too deep to parse, or a line that is not an object. Samples files
    (``require_text``) must also give their fields the types in :data:`SAMPLE_FIELDS`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file not found: {path}", "pass the path of an existing .jsonl file")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", "check the file's permissions") from None
    fix = "make every line one JSON object such as {\"text\": \"...\"}"
    with handle:
        number = 0
        while True:
            try:
                raw = handle.readline()
            except OSError as exc:
                raise UserError(f"cannot read {path}: {exc.strerror or exc}", "check the disk and the file") from None
            if not raw:
                return
            number += 1
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}:{number}: not UTF-8 text (byte {exc.start} of the line)",
                                "re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if _SURROGATE_ESCAPE.search(raw):
                    json.dumps(record, ensure_ascii=False).encode("utf-8")
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: malformed JSON line ({exc.msg})", fix) from None
            except UnicodeEncodeError:
                raise UserError(f"{path}:{number}: a string holds a lone surrogate (an unpaired \\ud800-\\udfff "
                                "escape), which is not text", "write valid Unicode escapes or plain UTF-8") from None
            except RecursionError:
                raise UserError(f"{path}:{number}: JSON nested too deeply to read", fix) from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{number}: each line must be a JSON object with a string \"text\"",
                                "write lines like {\"text\": \"A detective ...\", \"terminated\": true}")
            if require_text:
                problem = _sample_type_error(record)
                if problem:
                    raise UserError(f"{path}:{number}: {problem}",
                                    "write lines like {\"text\": \"A detective ...\", \"terminated\": true}")
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
    hint = f"run the {stage} stage first" if stage else "run the previous stage first"
    if not path.is_file():
        raise UserError(f"no manifest at {path}", hint)
    return read_json_object(path, "manifest", f"{hint} again (it rewrites the manifest)")


def read_json_object(path: str | os.PathLike, what: str, fix: str) -> dict:
    """A JSON file holding one object; unreadable, not UTF-8, not JSON, too deep or not an object: UserError."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} file not found: {path}", fix) from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}", fix) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:120]
        raise UserError(f"{what} {path} is not valid JSON: {why}", fix) from None
    if not isinstance(value, dict):
        raise UserError(f"{what} {path} must be a JSON object", fix)
    return value


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output file path that cannot be written (a folder, under a file, read-only)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory", f"pass a file path for {flag}, such as {path / 'out.jsonl'}")
    _check_writable_parent(path, flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file", f"pass a directory path for {flag}")
    _check_writable_parent(path if path.is_dir() else path, flag, own=path.is_dir())
    return path


def _check_writable_parent(path: Path, flag: str, own: bool = False) -> None:
    ancestor = path if own else path.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{flag} {path}: {ancestor} is a file, not a directory", f"pass a {flag} under a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if _read_only(ancestor) else "is not writable"
        raise UserError(f"{flag} {path}: {ancestor} {why}", f"pass a {flag} in a writable directory")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def os_error_message(exc: OSError) -> tuple[str, str]:
    """``(problem, fix)`` for a filesystem error that reached the CLI: what failed, where, and what to do."""
    where = " and ".join(str(name) for name in (exc.filename, exc.filename2) if name)
    problem = f"{exc.strerror or exc}" + (f": {where}" if where else "")
    fixes = {
        errno.ENOSPC: "free space on that disk, then run the command again",
        errno.EDQUOT: "free space within your disk quota, then run the command again",
        errno.EROFS: "that filesystem is mounted read-only: write to a writable path",
        errno.EACCES: "make that path readable/writable for this user, or pick another",
        errno.EPERM: "make that path writable for this user, or pick another",
        errno.ENOTDIR: "a part of that path is a file: pass a path under a directory",
        errno.EISDIR: "that path is a directory: pass a file path",
        errno.ENOENT: "create the missing folder or pass an existing path",
        errno.EEXIST: "remove what is in the way or pass another path",
    }
    return problem.replace("\n", " "), fixes.get(exc.errno, "check the path and the disk, then run the command again")


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


def path_inside(root: str | os.PathLike, name: str, what: str) -> Path:
    """``root/name``, refused unless, resolved (``..``, symlinks), it stays strictly inside ``root``.

    A name from a setting or a run param becomes a folder that is written and replaced
    (a base model, a checkpoint run): one that climbs out of its root could delete anything.
    """
    root = Path(root)
    path = root / name
    resolved, top = path.resolve(), root.resolve()
    if resolved == top or not resolved.is_relative_to(top):
        raise UserError(f"{what} {name!r} leads outside {root} (to {resolved})",
                        f"set {what} to a plain name of a folder inside {root}")
    return path
