"""Fine-tuning a Llama run: steps from the run's last save to the night's target, saved as it goes.

``train.py`` owns the night (its target step, ``train_state.json``, the manifest); this module
trains a run folder in :mod:`run`'s layout from step ``current`` to ``target``:

* the trainable arrays start from the run's ``model-<current>.npz``, or fresh (:mod:`lora`) at 0;
* every ``save_every`` steps and at the target it writes ``optimizer-<N>.npz`` (Adam's ``m``, ``v``
  and step count), the loss curve ``loss_curve.json``, then ``model-<N>.npz`` and ``counter``
  (:func:`run.save_weights`), each atomically: when ``counter`` names a step, its arrays and optimizer
  state are complete;
* a night resumed after a kill (``resume_optimizer``) continues Adam from the save it resumes at,
  and the batches are a function of the step (:func:`examples.step_items`), so it ends with the
  arrays an uninterrupted night would have. A new night starts Adam afresh on the live arrays
  (releases carry no optimizer state).

:func:`held_out_loss` is the promotion gate's measure for this family: the mean negative
log-likelihood per reply token of a run's held-out lines, the base with the run's arrays folded in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import numpy as np

from ...artifacts import atomic_write_json
from ...errors import UserError
from . import examples as chat
from . import run

log = logging.getLogger(__name__)

LOSS_CURVE = "loss_curve.json"
_OPTIMIZER = re.compile(r"optimizer-(\d+)\.npz$")
EVAL_BATCH = 16


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    steps_to: int          # the night's target step
    batch_size: int
    learning_rate: float
    save_every: int
    keep: int              # saves kept in the run folder
    seed: int              # batch order, and the fresh adapters' initial A
    threads: int = 0
    frozen_dtype: str = "float32"  # the frozen weights' type in the matmuls (trainer.LlamaNetwork)


def optimizer_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"optimizer-{int(step)}.npz"


def read_curve(run_dir: Path, up_to: int) -> list[list[float]]:
    """The run's per-step training losses up to step ``up_to`` (later points came after the last save)."""
    path = Path(run_dir) / LOSS_CURVE
    points = json.loads(path.read_text()) if path.is_file() else []
    return [point for point in points if point[0] <= up_to]


def _save(run_dir: Path, step: int, network, curve: list, keep: int) -> None:
    try:
        state = optimizer_path(run_dir, step)
        partial = state.with_name(state.name + ".partial.npz")
        np.savez(partial, **network.adam_state())
        partial.replace(state)
        atomic_write_json(run_dir / LOSS_CURVE, curve)
        run.save_weights(run_dir, step, network.arrays(), keep=keep)
    except OSError as exc:
        raise UserError(f"training could not write its checkpoint: {exc.strerror or exc}; the live checkpoint is "
                        "unchanged and the run resumes from its last complete save",
                        f"free space or fix permissions in {run_dir.parent}, then run again") from None
    kept = set(run.saved_steps(run_dir))
    for path in run_dir.glob("optimizer-*.npz"):
        match = _OPTIMIZER.fullmatch(path.name)
        if match and int(match.group(1)) not in kept:
            path.unlink(missing_ok=True)


def _starting_point(run_dir: Path, model, adapter: dict, current: int, seed: int, resume_optimizer: bool):
    """(trainable arrays, Adam state or None) at step ``current``."""
    from .lora import initial_arrays

    if current == 0:
        return initial_arrays(model, adapter, seed), None
    arrays = run.load_weights(run_dir, current)
    adam = None
    if resume_optimizer and optimizer_path(run_dir, current).is_file():
        with np.load(optimizer_path(run_dir, current)) as data:
            adam = {name: data[name] for name in data.files}
    return arrays, adam


def finetune(run_dir: str | Path, train_text: str | Path, current: int, settings: LoopSettings, *,
             resume_optimizer: bool, on_step=None) -> list[list[float]]:
    """Train ``run_dir`` from its step ``current`` to ``settings.steps_to``; returns the run's loss curve.

    ``on_step(step, loss)`` is called after every step (progress).
    """
    from .gguf_weights import load_llama_gguf
    from .tokenizer import LlamaTokenizer
    from .trainer import LlamaNetwork

    run_dir = Path(run_dir)
    family = run.read_family(run_dir)
    model = load_llama_gguf(run.check_base(family))
    tokenizer = LlamaTokenizer(model.tokenizer_fields)
    items = chat.chat_examples(chat.read_lines(train_text), tokenizer, model.hparams.n_ctx)
    if not items:
        raise UserError(f"{train_text} holds no training lines", "run ingest on a catalog with descriptions")
    arrays, adam = _starting_point(run_dir, model, family["adapter"], current, settings.seed, resume_optimizer)
    network = LlamaNetwork(model, family["adapter"], arrays, learning_rate=settings.learning_rate, adam=adam,
                           threads=settings.threads, frozen_dtype=settings.frozen_dtype)
    del model, arrays, adam  # the network holds its own copies
    pad = chat.pad_id_of(tokenizer)
    curve = read_curve(run_dir, current)
    try:
        for step in range(current + 1, settings.steps_to + 1):
            chosen = chat.step_items(len(items), settings.batch_size, settings.seed, step)
            loss = network.train_step(chat.pad_batch([items[i] for i in chosen], pad))
            curve.append([step, round(loss, 5)])
            if on_step is not None:
                on_step(step, loss)
            if step % settings.save_every == 0 or step == settings.steps_to:
                _save(run_dir, step, network, curve, settings.keep)
    finally:
        network.close()
    return curve


def held_out_loss(run_dir: str | Path, text_path: str | Path, max_tokens: int = 50000, threads: int = 0) -> float | None:
    """Mean -ln p per reply token of the run's latest step on ``text_path``'s lines (at most ``max_tokens``
    reply tokens, whole lines in file order); None when there is no line."""
    from .trainer import LlamaNetwork

    lines = chat.read_lines(text_path) if Path(text_path).is_file() else []
    if not lines:
        return None
    from .tokenizer import LlamaTokenizer

    loaded = run.load_run(run_dir)
    tokenizer = LlamaTokenizer(loaded.model.tokenizer_fields)
    items = chat.within_budget(chat.chat_examples(lines, tokenizer, loaded.model.hparams.n_ctx), max_tokens)
    if not items:
        return None
    network = LlamaNetwork(loaded.model, None, {}, threads=threads)
    del loaded
    total = count = 0.0
    try:
        for batch in chat.eval_batches(items, EVAL_BATCH, chat.pad_id_of(tokenizer)):
            batch_total, batch_count = network.nll_sum(batch)
            total, count = total + batch_total, count + batch_count
    finally:
        network.close()
    return round(total / count, 5) if count else None


# --- the night's side (train.py): the run folder, the steps with their progress -------------------

def prepare_run(run_dir: str | Path, base: dict, adapter: dict) -> int:
    """Make ``run_dir`` a run of ``base`` with ``adapter`` (or check that it is one); returns its step.

    A run trained from other weights or with another adapter is refused: its arrays belong to them.
    The same base file found at another path (a moved cache) is followed there.
    """
    run_dir = Path(run_dir)
    fix = "use another --run-name (train.run_name) for this model, or remove that checkpoint folder"
    if (run_dir / "checkpoint").is_file() or (run_dir / "hparams.json").is_file():
        raise UserError(f"checkpoint run {run_dir} is a GPT-2 run, not a Llama one", fix)
    if run.is_llama_run(run_dir):
        family = run.read_family(run_dir)
        if family["base"].get("sha256") != base["sha256"]:
            raise UserError(f"checkpoint run {run_dir} was trained from another base model file "
                            f"(sha256 {str(family['base'].get('sha256'))[:12]}..., not {base['sha256'][:12]}...)", fix)
        if family.get("adapter") != adapter:
            raise UserError(f"checkpoint run {run_dir} trains adapter {family.get('adapter')}, not {adapter}", fix)
        if family["base"].get("path") == base["path"]:
            return run.latest_step(run_dir)
    run.write_family(run_dir, base["path"], base["sha256"], adapter)
    return run.latest_step(run_dir)


def latest_step(run_dir: str | Path) -> int:
    return run.latest_step(run_dir)


def run_steps(run_dir: Path, train_text: Path, settings, current: int, target: int, resuming: bool,
              start_step: int) -> None:
    """``train.py``'s call: steps ``current + 1 .. target`` with ``TrainSettings``, a progress bar or log lines."""
    from ...console import progress

    loop = LoopSettings(steps_to=target, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                        save_every=settings.save_every, keep=settings.max_checkpoints, seed=settings.seed,
                        threads=settings.threads, frozen_dtype=settings.frozen_dtype)
    bar = progress(target - current, "train", unit="step")
    every = max(1, min(100, (target - start_step) // 10))

    def report(step: int, loss: float) -> None:
        if bar.disable:
            if step % every == 0 or step == target:
                log.info("train step %d (%d/%d of this run): loss %.3f", step, step - start_step,
                         target - start_step, loss)
        else:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

    try:
        finetune(run_dir, train_text, current, loop, resume_optimizer=resuming, on_step=report)
    finally:
        bar.close()
