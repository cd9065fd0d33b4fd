"""What a checkpoint run is: its files, step, hparams, loss, generation info, releases and the live pointer.

Training works in ``<checkpoint_root>/<run_name>/`` (gpt-2-simple's own run
folder, resumable; a Llama run's layout is :mod:`generator.models.llama.run`'s). A checkpoint that passes the gate is copied, whole, into an
immutable release ``<checkpoint_root>/releases/<run_name>/step-<N>/`` and the
live pointer ``<checkpoint_root>/<run_name>.live.json`` is rewritten atomically
to name it. Generation reads only releases, so it never sees a checkpoint that
training is still writing, and a failed or regressed night leaves the live one
as it was. A run also carries ``generation.json`` (written by train): what
generation derives its defaults from, so they travel with every release.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import shutil
import tempfile
from pathlib import Path

from .artifacts import atomic_write_json, atomic_write_text, read_json_object, replace_directory
from .errors import UserError
from .models.llama import run as llama_run
from .settings import NAME_PATTERN
from .textformat import START_TOKEN, control_prefix, parse_training_line, titled_lines

log = logging.getLogger(__name__)

GENERATION_INFO = "generation.json"
RUN_FILES = ("checkpoint", "hparams.json", "encoder.json", "vocab.bpe", "counter", GENERATION_INFO)
LLAMA_RUN_FILES = (llama_run.FAMILY_FILE, llama_run.COUNTER_FILE, GENERATION_INFO)  # + the latest model-<N>.npz
FEW_SHOT_EXAMPLES = 48
KEEP_RELEASES = 3
_STEP = re.compile(r"model-(\d+)$")


# --- a run's files ------------------------------------------------------------------------------

def checkpoint_step(run_dir: str | Path) -> int:
    """The step of the latest complete checkpoint in ``run_dir`` (0 if none).

    Reads TensorFlow's ``checkpoint`` state file, which TF rewrites atomically
    only after the checkpoint's data files are complete. TF may have written an
    absolute path (the run's old place, for a moved workdir): what counts is that
    the ``model-<N>`` it names is in ``run_dir`` itself. A state file naming
    anything else is a UserError: training would silently start from fresh
    weights and the night would report a step it never trained.
    """
    run_dir = Path(run_dir)
    if llama_run.is_llama_run(run_dir):
        return llama_run.latest_step(run_dir)
    state = run_dir / "checkpoint"
    if not state.is_file():
        return 0
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(errors="replace"), re.M)
    name = Path(match.group(1)).name if match else ""
    step = _STEP.fullmatch(name)
    if step is None or not (run_dir / f"{name}.index").is_file():
        saved = sorted((int(m.group(1)) for p in run_dir.glob("model-*.index")
                        if (m := _STEP.fullmatch(p.name[:-len(".index")]))), reverse=True)
        newest = f'model_checkpoint_path: "model-{saved[0]}"' if saved else None
        raise UserError(f"{state} names {match.group(1) if match else 'no checkpoint'!r}, which is not a "
                        f"checkpoint in {run_dir}: training would restart from fresh weights",
                        (f"write {newest!r} into it (the newest checkpoint there)" if newest else
                         "remove the run folder") + " and run again; the live release is untouched")
    return int(step.group(1))


def anchor_run_state(run_dir: str | Path) -> int:
    """Point the run's ``checkpoint`` state file at its checkpoint by name, relative to the run; returns the step.

    TensorFlow follows an absolute path as written: in a moved workdir it would restore the
    old place's weights, or none. The checkpoint it names is in the run (checked by
    :func:`checkpoint_step`), so naming it relatively is the same checkpoint, wherever the run is.
    """
    run_dir = Path(run_dir)
    step = checkpoint_step(run_dir)
    if llama_run.is_llama_run(run_dir):
        return step  # its files are named relatively already
    relative = f'model_checkpoint_path: "model-{step}"\nall_model_checkpoint_paths: "model-{step}"\n'
    if step and (run_dir / "checkpoint").read_text(errors="replace") != relative:
        atomic_write_text(run_dir / "checkpoint", relative)
    return step


def read_hparams(model_dir: str | Path) -> dict:
    """The GPT-2 shape of a run or base model (``hparams.json``)."""
    return json.loads((Path(model_dir) / "hparams.json").read_text())


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


def has_checkpoint(run_dir: str | Path) -> bool:
    """Does ``run_dir`` hold a checkpoint of either family (a GPT-2 ``checkpoint`` file, a Llama ``family.json``)?"""
    return (Path(run_dir) / "checkpoint").is_file() or llama_run.is_llama_run(run_dir)


def resolve_run(checkpoint_root: str | Path, run_name: str) -> Path:
    run_dir = Path(checkpoint_root) / run_name
    if not has_checkpoint(run_dir):
        raise UserError(f"no trained checkpoint at {run_dir}",
                        "run the train stage first, or pass the --checkpoint-dir/--run-name of a trained run")
    return run_dir


def write_generation_info(run_dir: str | Path, train_text: str | Path) -> dict:
    """Record, in the run, what sampling needs to know about the training data.

    ``max_tokens``: the longest training description in the family's tokens (the default
    length cap: GPT-2, the line after the start marker; Llama, the chat reply with its
    ``<|im_end|>``); ``conditions``: the control prefixes seen; ``condition_counts``: how many
    descriptions had each complete ``[type] [genre]`` prefix (the mix catalog conditioning
    draws from); ``seen_tokens``: the token ids that may be sampled (GPT-2: those the training
    text contains; Llama: the whole vocabulary but its control tokens, ``<|im_end|>`` kept);
    ``examples``: :func:`few_shot_examples`, training lines for few-shot prompts; ``titles``: every
    line carries a title (generation then parses one out of each sample). It lives in
    the run, so it travels with the checkpoint and its promoted copies.
    """
    from collections import Counter

    lines = Path(train_text).read_text(encoding="utf-8").splitlines()
    controls, pairs = set(), Counter()
    for line in lines:
        parsed = parse_training_line(line)
        if parsed is None:
            continue
        kind, genre, _ = parsed
        if kind or genre:
            controls.add(control_prefix(kind or "", genre or "").strip())
        if kind and genre:
            pairs[control_prefix(kind, genre).strip()] += 1
    if llama_run.is_llama_run(run_dir):
        from .models.llama.examples import generation_figures, read_tokenizer

        figures = generation_figures(lines, read_tokenizer(llama_run.read_family(run_dir)["base"]["path"]))
    else:
        figures = _gpt2_token_figures(run_encoder(run_dir), lines)
    info = {**figures, "conditions": sorted(controls), "condition_counts": dict(sorted(pairs.items())),
            "examples": few_shot_examples(lines), "titles": titled_lines(lines)}
    atomic_write_json(Path(run_dir) / GENERATION_INFO, info)
    return info


def _gpt2_token_figures(enc, lines: list[str]) -> dict:
    longest = 0
    seen = set(enc.encode("\n"))  # gpt-2-simple encodes the file whole: lines are joined by newlines
    for line in lines:
        seen.update(enc.encode(line))
        if parse_training_line(line) is not None:
            longest = max(longest, len(enc.encode(line[len(START_TOKEN):])))
    return {"max_tokens": longest, "seen_tokens": sorted(seen)}


def few_shot_examples(lines: list[str], count: int = FEW_SHOT_EXAMPLES) -> list[str]:
    """``count`` training lines for few-shot prompts: those with the smallest SHA-256, in that order.

    Chosen by content, like the validation split, so the list stays the same across nights and a
    catalog refresh changes it only where a new line's digest comes before a chosen one's.
    """
    import hashlib

    found = {line.strip() for line in lines if parse_training_line(line.strip()) is not None}
    return sorted(found, key=lambda line: hashlib.sha256(line.encode("utf-8")).hexdigest())[:count]


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
    """[[step, loss], ...]: a Llama run's ``loss_curve.json``, or the TensorBoard events gpt-2-simple writes."""
    points: dict[int, float] = {}
    curve_file = Path(run_dir) / "loss_curve.json"
    if llama_run.is_llama_run(run_dir):
        up_to = llama_run.latest_step(run_dir)  # points past the last save were trained again after a kill
        entries = json.loads(curve_file.read_text()) if curve_file.is_file() else []
        points = {int(step): float(loss) for step, loss in entries if step <= up_to}
    else:
        points = _gpt2_loss_events(run_dir)
    curve = sorted(points.items())
    if len(curve) > max_points:
        stride = len(curve) / max_points
        curve = [curve[int(i * stride)] for i in range(max_points)] + [curve[-1]]
    return [[step, round(loss, 5)] for step, loss in curve]


def _gpt2_loss_events(run_dir: str | Path) -> dict[int, float]:
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
    return points


# --- releases and the live pointer --------------------------------------------------------------



PLAIN_NAME = re.compile(NAME_PATTERN)  # a name that is one folder, never "." or ".." (declared once in settings)
RELEASE_NAME = re.compile(r"step-\d{7,}")


@dataclasses.dataclass(frozen=True)
class Release:
    """A released checkpoint: its run, its step and its folder (``releases/<run>/step-<N>/``).

    ``record`` is the live pointer's whole content (what the checkpoint was trained on, its losses).
    """

    run: str
    step: int
    path: Path
    record: dict = dataclasses.field(default_factory=dict, compare=False)

    def as_record(self) -> dict:
        """The pointer's fields plus the release's folder, for the night's decision file (JSON)."""
        return {**self.record, "path": str(self.path)}


def live_pointer_path(checkpoint_root: str | Path, run_name: str) -> Path:
    return Path(checkpoint_root) / f"{run_name}.live.json"


def read_live(checkpoint_root: str | Path, run_name: str) -> Release | None:
    """The live release, or None before the first promotion.

    The pointer is state a person or a crash can damage: it must be a JSON object naming a
    ``step-<N>`` folder of ``releases/<run_name>/`` (resolved: no way out of it) that holds a
    checkpoint, else UserError; nothing is ever generated from a folder it merely names.
    """
    path = live_pointer_path(checkpoint_root, run_name)
    if not path.is_file():
        return None
    releases = (Path(checkpoint_root) / "releases" / run_name).resolve()
    fix = (f"point {path.name}'s \"release\" at a folder of {releases} (releases/{run_name}/step-NNNNNNN), "
           "or delete the pointer so the next trained checkpoint is released afresh")
    live = read_json_object(path, "the live pointer", fix)
    release, step = live.get("release"), live.get("step")
    if not isinstance(release, str) or not isinstance(step, int) or isinstance(step, bool):
        raise UserError(f"the live pointer {path} has no \"release\" name and \"step\" number", fix)
    where = (Path(checkpoint_root) / release).resolve()
    if where.parent != releases or not RELEASE_NAME.fullmatch(where.name):
        raise UserError(f"the live pointer {path} names {release!r}, which is not a release of {releases}", fix)
    if not has_checkpoint(where):
        raise UserError(f"the live pointer {path} names {release!r}, which holds no checkpoint", fix)
    return Release(run_name, step, where, live)


def require_live(checkpoint_root: str | Path, run_name: str, fix: str = "run the train and promote steps first"
                 ) -> Release:
    release = read_live(checkpoint_root, run_name)
    if release is None:
        raise UserError("there is no live checkpoint to generate from", fix)
    return release


def _copy_checkpoint(source: Path, destination: Path) -> None:
    """Copy a run's latest checkpoint (plus its encoder/hparams, or a Llama run's record) into ``destination``."""
    step = checkpoint_step(source)
    destination.mkdir(parents=True, exist_ok=True)
    if llama_run.is_llama_run(source):  # the base stays where family.json names it (pinned by its digest)
        for name in LLAMA_RUN_FILES + ((llama_run.weights_path(source, step).name,) if step else ()):
            if (source / name).is_file():
                shutil.copy2(source / name, destination / name)
        return
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    for path in source.glob(f"model-{step}.*"):
        shutil.copy2(path, destination / path.name)
    anchor_run_state(destination)  # TF may have written absolute paths; a release must be relocatable


def promote(run_dir: str | Path, checkpoint_root: str | Path, run_name: str, record: dict) -> Release:
    """Release the run's latest checkpoint and make it live; returns the new live release."""
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
    return Release(run_name, step, release.resolve(), live)


def restore_run_from_live(checkpoint_root: str | Path, run_name: str) -> bool:
    """Reset the working run to the live release (after a rejected checkpoint).

    The next night then trains on from the good weights instead of the regressed ones.
    """
    live = read_live(checkpoint_root, run_name)
    if live is None:
        return False
    run_dir = Path(checkpoint_root) / run_name
    staging = Path(tempfile.mkdtemp(prefix=f".{run_name}-restore-", dir=checkpoint_root))
    _copy_checkpoint(live.path, staging)
    staging.chmod(0o755)
    replace_directory(staging, run_dir)
    return True


def reset_run(checkpoint_root: str | Path, run_name: str) -> str:
    """After a rejected checkpoint: the working run back to the live weights, or away when none is live.

    Without a live release there is nothing good to go back to (a diverged first night): the
    run folder is removed, so the next night starts again from the base model.
    """
    if restore_run_from_live(checkpoint_root, run_name):
        return "live"
    run_dir = Path(checkpoint_root) / run_name
    if run_dir.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{run_name}-rejected-", dir=checkpoint_root))
        run_dir.rename(aside / run_name)  # one rename: a kill leaves either the run or no run
        shutil.rmtree(aside, ignore_errors=True)
    return "base model"


def _prune_releases(releases: Path, keep: set[str]) -> None:
    names = sorted(p.name for p in releases.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names[:-KEEP_RELEASES]:
        if name not in keep:
            shutil.rmtree(releases / name, ignore_errors=True)


def gate(new_val_loss: float | None, live_val_loss: float | None, margin: float, *,
         train_loss: float | None = None) -> tuple[bool, str]:
    """Should the new checkpoint go live? Returns (promote, reason).

    A non-finite loss (NaN, inf: training diverged) is never released, whatever is live.
    """
    for name, loss in (("validation", new_val_loss), ("training", train_loss)):
        if loss is not None and not math.isfinite(loss):
            return False, f"training diverged: {name} loss {loss}"
    if live_val_loss is None:
        return True, "no live checkpoint yet"
    if new_val_loss is None:
        return True, "no held-out text to compare on"
    if not math.isfinite(live_val_loss):  # a diverged release from before this gate: anything finite is better
        return True, f"validation loss {new_val_loss:.4f}; the live checkpoint's is {live_val_loss}"
    limit = live_val_loss * (1 + margin)
    if new_val_loss <= limit:
        return True, f"validation loss {new_val_loss:.4f} <= {limit:.4f} (live {live_val_loss:.4f} + {margin:.0%})"
    return False, f"validation loss {new_val_loss:.4f} regressed beyond {limit:.4f} (live {live_val_loss:.4f} + {margin:.0%})"
