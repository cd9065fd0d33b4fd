"""Train: fine-tune the base model on the ingested training text.

GPT-2 (``model.family = "gpt2"``): gpt-2-simple's ``finetune``, checkpoints in its layout at
``<checkpoint_dir>/<run_name>/``. Llama: LoRA adapters (or a full fine-tune) over the base GGUF,
in :mod:`generator.models.llama.run`'s layout in the same folder (:mod:`generator.models.llama.train_loop`).
A night trains ``steps`` more steps on top of what the run already has; a
``train_state.json`` written before training records the night's target step,
so a training killed partway (SIGKILL, preempted GPU) resumes from its last
saved checkpoint up to the same target instead of starting over or overshooting.
The manifest (``<run_name>.manifest.json`` beside the run) reports the train
loss curve and the held-out validation loss.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import time
from pathlib import Path

from .artifacts import atomic_write_json, atomic_write_text, path_inside, read_manifest, write_manifest
from .base_model import ModelSettings, ensure_base_model, model_path
from .checkpoints import anchor_run_state, read_loss_curve, write_generation_info
from .console import library_output, progress
from .errors import UserError
from .models import held_out
from .models.llama import train_loop as llama_train
from .models.llama.run import LORA_TARGETS, is_llama_run
from .settings import NAME_PATTERN, check_declared, setting

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainSettings:
    run_name: str = setting("nightly", "checkpoint run name: <checkpoint_dir>/<run_name>/ (gpt-2-simple's run_name)",
                           pattern=NAME_PATTERN)
    steps: int = setting(1000, "fine-tuning steps per night, added to the checkpoint's existing steps",
                         at_least=0)
    batch_size: int = setting(1, "sequences per training step", at_least=1)
    learning_rate: float = setting(0.0001, "optimizer learning rate (any finite rate above 0: a diverging one is caught by the promotion gate)", above=0)
    accumulate_gradients: int = setting(1, "steps whose gradients are summed before one update",
                                       at_least=1)
    optimizer: str = setting("adam", "gpt-2-simple optimizer", choices=("adam", "sgd"))
    save_every: int = setting(100, "save every N steps, so a killed training resumes from at most N steps back",
                         at_least=1)
    max_checkpoints: int = setting(1, "checkpoints kept in the run folder", at_least=1)
    only_train_transformer_layers: bool = setting(False, "freeze embeddings (gpt-2-simple's option for big models)")
    use_memory_saving_gradients: bool = setting(False, "gradient checkpointing (less memory, slower)")
    multi_gpu: bool = setting(False, "spread training over every visible GPU")
    val_max_tokens: int = setting(50000, "validation loss is the mean next-token loss over at most this many "
                                  "held-out tokens", at_least=1)
    threads: int = setting(0, "TensorFlow threads (0 = all cores)", at_least=0)
    seed: int = setting(1234, "seed of the training data sampler", at_least=0, below=2**32)
    adapter: str = setting("lora", "llama: what trains: lora (low-rank adapters on train.lora_targets, the base "
                           "frozen; CPU-sized) or full (every weight: a GPU worker's fine-tune)", choices=("lora", "full"))
    lora_rank: int = setting(8, "llama, lora: the adapters' rank r", at_least=1, at_most=4096)
    lora_alpha: float = setting(16.0, "llama, lora: the adapters' scale is lora_alpha / lora_rank", above=0)
    lora_targets: list = setting(list(LORA_TARGETS), "llama, lora: the projections that get adapters "
                                 f"(of {', '.join(LORA_TARGETS)})")
    frozen_dtype: str = setting("bfloat16", "llama, lora: the frozen weights' type in training's matmuls: bfloat16 "
                                "(several times float32's speed on CPUs with AMX or AVX512_BF16 and on recent GPUs; "
                                "finer than the Q4_1 file's own rounding) or float32 (older hardware); held-out "
                                "losses are float32 either way", choices=("bfloat16", "float32"))
    promotion_margin: float = setting(0.02, "promotion gate: a new checkpoint goes live only if its validation "
                                      "loss is at most (1 + margin) x the live checkpoint's on the same text",
                                      at_least=0)

    def validate(self) -> None:
        check_declared(self, "train")  # the loader checked a loaded config; this guards direct callers
        if self.optimizer not in ("adam", "sgd"):
            raise UserError(f"train.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}", "fix train.optimizer")
        unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        if unknown or not self.lora_targets:
            raise UserError(f"train.lora_targets {self.lora_targets} must name some of {', '.join(LORA_TARGETS)}"
                            + (f" (unknown: {', '.join(unknown)})" if unknown else ""), "fix train.lora_targets")

    def adapter_record(self) -> dict:
        """The Llama run's adapter as ``family.json`` records it."""
        if self.adapter == "full":
            return {"kind": "full"}
        return {"kind": "lora", "rank": self.lora_rank, "alpha": float(self.lora_alpha),
                "targets": [name for name in LORA_TARGETS if name in self.lora_targets]}


def _repair_counter(run_dir: Path) -> int:
    """Make gpt-2-simple's ``counter`` file agree with the latest checkpoint.

    gpt-2-simple writes ``counter`` non-atomically after each save, so a kill at
    the wrong moment can leave it empty or ahead of the checkpoint.
    """
    step = anchor_run_state(run_dir)  # and the state file names the run's own checkpoint
    if step:
        atomic_write_text(run_dir / "counter", f"{step}\n")
    return step


def _check_same_base(run_dir: Path, model_dir: Path) -> None:
    if is_llama_run(run_dir):
        raise UserError(f"checkpoint run {run_dir} is a Llama run, not a GPT-2 one",
                        "use another --run-name for this profile, or remove that checkpoint folder")
    for name in ("hparams.json", "encoder.json"):
        ours, base = run_dir / name, model_dir / name
        if ours.is_file() and base.is_file() and ours.read_bytes() != base.read_bytes():
            raise UserError(
                f"checkpoint run {run_dir} was trained from a different base model than {model_dir} ({name} differs)",
                "use another --run-name for this profile, or remove that checkpoint folder",
            )


def train(ingest_dir: str | Path, checkpoint_root: str | Path, models_root: str | Path,
          model_settings: ModelSettings, settings: TrainSettings) -> dict:
    """Fine-tune ``settings.steps`` more steps; returns the manifest written beside the run.

    Holds the run folder's lock: two trainings into one run would interleave checkpoints.
    """
    from .lock import exclusive

    model_settings.validate()  # the loader validated a loaded config; these guard direct callers
    settings.validate()
    with exclusive(path_inside(checkpoint_root, settings.run_name, "train.run_name"), "checkpoint run"):
        return _train(ingest_dir, checkpoint_root, models_root, model_settings, settings)


def _train(ingest_dir: str | Path, checkpoint_root: str | Path, models_root: str | Path,
           model_settings: ModelSettings, settings: TrainSettings) -> dict:
    ingest_dir = Path(ingest_dir)
    ingest_manifest = read_manifest(ingest_dir, "ingest")
    train_text = ingest_dir / "train.txt"
    val_text = ingest_dir / "val.txt"
    base = ensure_base_model(models_root, model_settings, corpus_path=train_text)
    llama = model_settings.family == "llama"

    run_dir = path_inside(checkpoint_root, settings.run_name, "train.run_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    if llama:
        current = llama_train.prepare_run(run_dir, base, settings.adapter_record())
    else:
        _check_same_base(run_dir, model_path(models_root, model_settings.name))
        current = _repair_counter(run_dir)

    # The night's target survives a crash, so a restart finishes the same night's work.
    state_path = run_dir / "train_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    resuming = (state.get("catalog_hash") == ingest_manifest["catalog_hash"]
                and state.get("steps") == settings.steps and current < state.get("target_step", -1)
                and not state.get("finished"))
    if resuming:
        start_step, target_step = state["start_step"], state["target_step"]
        log.info("resuming training at step %d of %d..%d", current, start_step, target_step)
    else:
        start_step, target_step = current, current + settings.steps
        state = {"catalog_hash": ingest_manifest["catalog_hash"], "steps": settings.steps,
                 "start_step": start_step, "target_step": target_step, "finished": False}
        atomic_write_json(state_path, state)

    remaining = target_step - current
    started = time.monotonic()
    if remaining > 0 and llama:
        llama_train.run_steps(run_dir, train_text, settings, current, target_step, resuming, start_step)
    elif remaining > 0:
        _finetune(train_text, model_settings, models_root, checkpoint_root, settings, remaining,
                  seed=settings.seed + current, start_step=current)
    elapsed = time.monotonic() - started
    final_step = llama_train.latest_step(run_dir) if llama else _repair_counter(run_dir)
    if final_step < target_step:
        raise RuntimeError(f"training stopped at step {final_step}, before its target {target_step}")
    atomic_write_json(state_path, {**state, "finished": True})

    generation_info = write_generation_info(run_dir, train_text)

    curve = read_loss_curve(run_dir)
    night_curve = [point for point in curve if point[0] > start_step]
    train_loss = round(sum(p[1] for p in night_curve[-20:]) / len(night_curve[-20:]), 5) if night_curve else None
    val_loss = held_out.evaluate_loss(run_dir, val_text, settings.val_max_tokens, settings.threads)
    return write_manifest(
        run_dir, "train",
        run_dir=str(run_dir), run_name=settings.run_name, checkpoint_root=str(checkpoint_root),
        base_model=_base_record(base, model_settings, models_root, settings),
        catalog_hash=ingest_manifest["catalog_hash"], start_step=start_step, step=final_step,
        steps=final_step - start_step, resumed=resuming, seconds=round(elapsed, 2),
        steps_per_second=round(remaining / elapsed, 3) if remaining and elapsed else None,
        train_loss=train_loss, val_loss=val_loss, loss_curve=curve, max_tokens=generation_info["max_tokens"],
        settings=dataclasses.asdict(settings),
    )


def _base_record(base: dict, model_settings: ModelSettings, models_root, settings: TrainSettings) -> dict:
    """What the run was trained from, for the manifest and the model card."""
    if model_settings.family == "llama":
        return {"name": model_settings.name, "family": "llama", "source": "gguf", "path": base["path"],
                "sha256": base["sha256"], "adapter": settings.adapter_record()}
    return {"name": model_settings.name, "family": "gpt2", "source": model_settings.source,
            "path": str(model_path(models_root, model_settings.name)), "hparams": base.get("hparams")}


def _finetune(train_text: Path, model_settings: ModelSettings, models_root, checkpoint_root,
              settings: TrainSettings, steps: int, seed: int, start_step: int = 0) -> None:
    import numpy as np

    from .tf_runtime import import_gpt2, import_tf, new_session

    tf = import_tf()
    gpt2 = import_gpt2()
    # gpt-2-simple's Sampler draws windows with `random`; seed it so a night is repeatable.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    sess = new_session(settings.threads)
    tf.compat.v1.set_random_seed(seed)
    bar = progress(steps, "train", unit="step")
    try:
        with library_output(on_line=_loss_reporter(bar, steps, start_step)):
            gpt2.finetune(
                sess,
                dataset=str(train_text),
                steps=steps,
                model_name=model_settings.name,
                model_dir=str(models_root),
                combine=50000,
                batch_size=settings.batch_size,
                learning_rate=settings.learning_rate,
                accumulate_gradients=settings.accumulate_gradients,
                restore_from="latest",
                run_name=settings.run_name,
                checkpoint_dir=str(checkpoint_root),
                sample_every=10**9,  # its samples go to ./samples; generation is our own stage
                save_every=settings.save_every,
                print_every=max(1, min(100, steps // 10)),
                max_checkpoints=settings.max_checkpoints,
                use_memory_saving_gradients=settings.use_memory_saving_gradients,
                only_train_transformer_layers=settings.only_train_transformer_layers,
                optimizer=settings.optimizer,
                multi_gpu=settings.multi_gpu,
            )
    except AssertionError as exc:
        if "too small" in str(exc):
            raise UserError("the catalog is too small to train on (gpt-2-simple samples 1024-token windows)",
                            "use a catalog of at least ~100 descriptions") from None
        raise
    except tf.errors.OpError as exc:
        # TensorFlow's own file writes (checkpoints) fail with its error types, not OSError.
        message = str(exc.message or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, tf.errors.PermissionDeniedError) or any(
                text in message for text in ("No space left", "Read-only file system", "Disk quota", "Not a directory")):
            raise UserError(f"training could not write its checkpoint: {message}; the live checkpoint is unchanged "
                            "and the run resumes from its last complete save",
                            f"free space or fix permissions in {checkpoint_root}, then run again") from None
        raise
    finally:
        bar.close()
        sess.close()


_LOSS_LINE = re.compile(r"^\[(\d+) \| [\d.]+\] loss=([\d.]+) avg=([\d.]+)")


def _loss_reporter(bar, steps: int, start_step: int):
    """gpt-2-simple's "[12 | 3.10] loss=5.29 avg=5.68" lines -> the progress bar, or INFO lines in a log.

    Its step counter is the checkpoint's (training resumes), so this call's steps count from ``start_step``.
    """
    def report(line: str) -> None:
        match = _LOSS_LINE.match(line.strip())
        if not match:
            return
        step, loss, avg = int(match.group(1)), float(match.group(2)), float(match.group(3))
        if bar.disable:
            log.info("train step %d (%d/%d of this run): loss %.3f, running average %.3f", step, step - start_step,
                     steps, loss, avg)
        else:
            bar.update(max(0, min(steps, step - start_step) - bar.n))
            bar.set_postfix(loss=f"{avg:.3f}")

    return report


def add_cli(subparsers) -> None:
    from .config import add_setting_flag

    parser = subparsers.add_parser(
        "train", parents=[subparsers.common],
        help="fine-tune the base model on ingested text (GPT-2: gpt-2-simple finetune; Llama: LoRA adapters)",
        description="Fine-tune STEPS more steps into CHECKPOINT_DIR/RUN_NAME (resuming a killed run), "
        "bootstrapping the base model first if the profile asks for it (a Llama base file is checked by its digest).",
    )
    parser.add_argument("--ingest", required=True, metavar="DIR", help="ingest output directory")
    add_setting_flag(parser, "--checkpoint-dir", "paths.checkpoint_dir")
    add_setting_flag(parser, "--models-dir", "paths.models_dir")
    add_setting_flag(parser, "--run-name", "train.run_name")
    add_setting_flag(parser, "--steps", "train.steps")
    add_setting_flag(parser, "--batch-size", "train.batch_size")
    add_setting_flag(parser, "--learning-rate", "train.learning_rate")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    manifest = train(args.ingest, config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    print(f"trained to step {manifest['step']} (+{manifest['steps']}): train loss {manifest['train_loss']}, "
          f"validation loss {manifest['val_loss']} -> {manifest['run_dir']}")
    return 0
