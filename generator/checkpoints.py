"""What a checkpoint run is: its files, step, hparams, loss, generation info, releases and the live pointer.

Training works in ``<checkpoint_root>/<run_name>/`` (gpt-2-simple's own run
folder, resumable). A checkpoint that passes the gate is copied, whole, into an
immutable release ``<checkpoint_root>/releases/<run_name>/step-<N>/`` and the
live pointer ``<checkpoint_root>/<run_name>.live.json`` is rewritten atomically
to name it. Generation reads only releases, so it never sees a checkpoint that
training is still writing, and a failed or regressed night leaves the live one
as it was. A run also carries ``generation.json`` (written by train): what
generation derives its defaults from, so they travel with every release.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
from pathlib import Path

from .artifacts import atomic_write_json, replace_directory
from .errors import UserError
from .textformat import START_TOKEN, control_prefix, parse_training_line

log = logging.getLogger(__name__)

GENERATION_INFO = "generation.json"
RUN_FILES = ("checkpoint", "hparams.json", "encoder.json", "vocab.bpe", "counter", GENERATION_INFO)
KEEP_RELEASES = 3
_STEP = re.compile(r"model-(\d+)$")


# --- a run's files ------------------------------------------------------------------------------

def checkpoint_step(run_dir: str | Path) -> int:
    """The step of the latest complete checkpoint in ``run_dir`` (0 if none).

    Reads TensorFlow's ``checkpoint`` state file, which TF rewrites atomically
    only after the checkpoint's data files are complete.
    """
    state = Path(run_dir) / "checkpoint"
    if not state.is_file():
        return 0
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.M)
    step = _STEP.search(match.group(1)) if match else None
    return int(step.group(1)) if step else 0


def read_hparams(model_dir: str | Path) -> dict:
    """The GPT-2 shape of a run or base model (``hparams.json``)."""
    return json.loads((Path(model_dir) / "hparams.json").read_text())


def gpt2_hparams(values: dict):
    """gpt-2-simple's HParams object for a shape (imports gpt-2-simple, hence TensorFlow)."""
    from gpt_2_simple.src import model as gpt2_model

    hparams = gpt2_model.default_hparams()
    hparams.override_from_dict(values)
    return hparams


def load_hparams(model_dir: str | Path):
    return gpt2_hparams(read_hparams(model_dir))


def latest_checkpoint(run_dir: str | Path) -> str:
    """The path prefix of a run's latest TensorFlow checkpoint (imports TensorFlow)."""
    from .tf_runtime import import_tf

    checkpoint = import_tf().train.latest_checkpoint(str(run_dir))
    if checkpoint is None:
        raise UserError(f"no checkpoint in {run_dir}", "run the train stage first")
    return checkpoint


def run_encoder(run_dir: str | Path):
    """The run's own BPE encoder (gpt-2-simple's, from its encoder.json and vocab.bpe)."""
    from gpt_2_simple.src import encoder as gpt2_encoder

    return gpt2_encoder.get_encoder(str(run_dir))


def resolve_run(checkpoint_root: str | Path, run_name: str) -> Path:
    run_dir = Path(checkpoint_root) / run_name
    if not (run_dir / "checkpoint").is_file():
        raise UserError(f"no trained checkpoint at {run_dir}",
                        "run the train stage first, or pass the --checkpoint-dir/--run-name of a trained run")
    return run_dir


def write_generation_info(run_dir: str | Path, train_text: str | Path) -> dict:
    """Record, in the run, what sampling needs to know about the training data.

    ``max_tokens``: the longest training description in tokens (the default
    length cap); ``conditions``: the control prefixes seen; ``condition_counts``:
    how many descriptions had each complete ``[type] [genre]`` prefix (the mix
    catalog conditioning draws from); ``seen_tokens``: the token ids the
    training text contains (the others are never sampled). It lives in the run,
    so it travels with the checkpoint and its promoted copies.
    """
    from collections import Counter

    enc = run_encoder(run_dir)
    longest, controls, pairs = 0, set(), Counter()
    seen = set(enc.encode("\n"))  # gpt-2-simple encodes the file whole: lines are joined by newlines
    for line in Path(train_text).read_text(encoding="utf-8").splitlines():
        seen.update(enc.encode(line))
        parsed = parse_training_line(line)
        if parsed is None:
            continue
        longest = max(longest, len(enc.encode(line[len(START_TOKEN):])))
        kind, genre, _ = parsed
        if kind or genre:
            controls.add(control_prefix(kind or "", genre or "").strip())
        if kind and genre:
            pairs[control_prefix(kind, genre).strip()] += 1
    info = {"max_tokens": longest, "conditions": sorted(controls), "condition_counts": dict(sorted(pairs.items())),
            "seen_tokens": sorted(seen)}
    atomic_write_json(Path(run_dir) / GENERATION_INFO, info)
    return info


def read_generation_info(run_dir: str | Path) -> dict:
    path = Path(run_dir) / GENERATION_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def default_length(run_dir: Path) -> int:
    """Length cap when none is set: the longest training description plus a 25 % margin."""
    longest = read_generation_info(run_dir).get("max_tokens")
    if longest:
        return min(1023, math.ceil(longest * 1.25) + 8)
    return 1023  # gpt-2-simple's own default


def read_loss_curve(run_dir: str | Path, max_points: int = 300) -> list[list[float]]:
    """[[step, loss], ...] from the TensorBoard events gpt-2-simple writes into the run."""
    from .tf_runtime import import_tf

    tf = import_tf()
    points: dict[int, float] = {}
    for events in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        try:
            for event in tf.compat.v1.train.summary_iterator(str(events)):
                for value in event.summary.value:
                    if value.tag == "loss":
                        loss = value.simple_value if value.HasField("simple_value") else float(
                            tf.make_ndarray(value.tensor))
                        points[int(event.step)] = float(loss)
        except Exception:  # a truncated events file from a killed run: keep what was read
            log.warning("skipping unreadable events file %s", events)
    curve = sorted(points.items())
    if len(curve) > max_points:
        stride = len(curve) / max_points
        curve = [curve[int(i * stride)] for i in range(max_points)] + [curve[-1]]
    return [[step, round(loss, 5)] for step, loss in curve]


def evaluate_loss(run_dir: str | Path, text_path: str | Path, max_tokens: int = 50000, threads: int = 0) -> float | None:
    """Mean next-token cross-entropy of the run's latest checkpoint on a text file.

    The text is encoded with the run's own encoder and cut into ``n_ctx``-token
    windows; None when the file is empty.
    """
    import numpy as np

    from .tf_runtime import import_tf, new_session
    from gpt_2_simple.src import model as gpt2_model

    run_dir = Path(run_dir)
    text = Path(text_path).read_text(encoding="utf-8")
    if not text.strip():
        return None
    enc = run_encoder(run_dir)
    tokens = enc.encode(text)[:max_tokens]
    if len(tokens) < 2:
        return None
    tf = import_tf()
    sess = new_session(threads)
    try:
        hparams = load_hparams(run_dir)
        window = hparams.n_ctx
        context = tf.compat.v1.placeholder(tf.int32, [1, None])
        logits = gpt2_model.model(hparams=hparams, X=context)["logits"]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=context[:, 1:], logits=logits[:, :-1])
        saver = tf.compat.v1.train.Saver(var_list=[v for v in tf.compat.v1.trainable_variables() if "model" in v.name])
        saver.restore(sess, latest_checkpoint(run_dir))
        total, count = 0.0, 0
        for start in range(0, len(tokens) - 1, window - 1):
            chunk = tokens[start:start + window]
            if len(chunk) < 2:
                break
            values = sess.run(losses, feed_dict={context: [chunk]})
            total += float(np.sum(values))
            count += values.size
        return round(total / count, 5)
    finally:
        sess.close()



# --- releases and the live pointer --------------------------------------------------------------



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
