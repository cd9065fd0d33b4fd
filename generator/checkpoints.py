"""Live checkpoint releases and the promotion gate.

Training works in ``<checkpoint_root>/<run_name>/`` (gpt-2-simple's own run
folder, resumable). A checkpoint that passes the gate is copied, whole, into an
immutable release ``<checkpoint_root>/releases/<run_name>/step-<N>/`` and the
live pointer ``<checkpoint_root>/<run_name>.live.json`` is rewritten atomically
to name it. Generation reads only releases, so it never sees a checkpoint that
training is still writing, and a failed or regressed night leaves the live one
as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from .artifacts import atomic_write_json, replace_directory
from .train import checkpoint_step

log = logging.getLogger(__name__)

RUN_FILES = ("checkpoint", "hparams.json", "encoder.json", "vocab.bpe", "counter", "generation.json")
KEEP_RELEASES = 3


def live_pointer_path(checkpoint_root: str | Path, run_name: str) -> Path:
    return Path(checkpoint_root) / f"{run_name}.live.json"


def read_live(checkpoint_root: str | Path, run_name: str) -> dict | None:
    """The live release's record, or None before the first promotion."""
    path = live_pointer_path(checkpoint_root, run_name)
    if not path.is_file():
        return None
    live = json.loads(path.read_text())
    live["path"] = str(Path(checkpoint_root) / live["release"])
    return live


def _copy_checkpoint(source: Path, destination: Path) -> None:
    """Copy a run's latest checkpoint (plus its encoder/hparams) into ``destination``."""
    step = checkpoint_step(source)
    destination.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    for path in source.glob(f"model-{step}.*"):
        shutil.copy2(path, destination / path.name)
    # TF may have written absolute paths; a release must be relocatable.
    (destination / "checkpoint").write_text(
        f'model_checkpoint_path: "model-{step}"\nall_model_checkpoint_paths: "model-{step}"\n')


def promote(run_dir: str | Path, checkpoint_root: str | Path, run_name: str, record: dict) -> dict:
    """Release the run's latest checkpoint and make it live; returns the new live record."""
    run_dir, checkpoint_root = Path(run_dir), Path(checkpoint_root)
    step = checkpoint_step(run_dir)
    relative = Path("releases") / run_name / f"step-{step:07d}"
    release = checkpoint_root / relative
    staging = Path(tempfile.mkdtemp(prefix=".release-", dir=checkpoint_root))
    _copy_checkpoint(run_dir, staging)
    staging.chmod(0o755)
    replace_directory(staging, release)
    live = {**record, "release": str(relative), "step": step, "run_name": run_name}
    atomic_write_json(live_pointer_path(checkpoint_root, run_name), live)
    _prune_releases(checkpoint_root / "releases" / run_name, keep={release.name})
    log.info("promoted %s to live", release)
    return {**live, "path": str(release)}


def restore_run_from_live(checkpoint_root: str | Path, run_name: str) -> bool:
    """Reset the working run to the live release (after a rejected checkpoint).

    The next night then trains on from the good weights instead of the regressed ones.
    """
    live = read_live(checkpoint_root, run_name)
    if live is None:
        return False
    run_dir = Path(checkpoint_root) / run_name
    staging = Path(tempfile.mkdtemp(prefix=f".{run_name}-restore-", dir=checkpoint_root))
    _copy_checkpoint(Path(live["path"]), staging)
    staging.chmod(0o755)
    replace_directory(staging, run_dir)
    return True


def _prune_releases(releases: Path, keep: set[str]) -> None:
    names = sorted(p.name for p in releases.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names[:-KEEP_RELEASES]:
        if name not in keep:
            shutil.rmtree(releases / name, ignore_errors=True)


def gate(new_val_loss: float | None, live_val_loss: float | None, margin: float) -> tuple[bool, str]:
    """Should the new checkpoint go live? Returns (promote, reason)."""
    if live_val_loss is None:
        return True, "no live checkpoint yet"
    if new_val_loss is None:
        return True, "no held-out text to compare on"
    limit = live_val_loss * (1 + margin)
    if new_val_loss <= limit:
        return True, f"validation loss {new_val_loss:.4f} <= {limit:.4f} (live {live_val_loss:.4f} + {margin:.0%})"
    return False, f"validation loss {new_val_loss:.4f} regressed beyond {limit:.4f} (live {live_val_loss:.4f} + {margin:.0%})"
