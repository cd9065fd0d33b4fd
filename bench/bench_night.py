"""Benchmark: where the main job's seconds go, and training's step cost against its arithmetic limit.

    python bench/bench_night.py [--profile smollm2] [--steps 100] [--samples N] [--catalog CSV]

Runs the main job, ``python -m generator run``, as one whole process on a fresh
workdir (cold compile cache) and prints the report's ``seconds``: each step's
wall seconds and share of the night, each generation round's generate and
curate seconds and its sampler's start-up phases (import, graph, compile, first
sample; ``reused`` when the round reused the process's compiled sampler).

Training's step cost is taken from the run's own training log (the time between
its first and last progress lines over the steps between them: the steady state,
without the start-up) and compared with the arithmetic limit of its shape: FLOPs
per step (3 x forward, forward = ``Shape.flops_per_token`` at half the window
per token, ``train.batch_size`` windows of ``n_ctx`` tokens) over this machine's
float32 matmul peak (``bench_generate.matmul_peak``, at the training's threads); for the Llama
family (the default ``smollm2``), the mean FLOPs of the steps the night trained on
(``llama_step_cost``) over the peak of the frozen weights' type.
The machine's load is printed: on shared cores, compare shares, not seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
NIGHT = "2026-12-01"
STEP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO generator\.(?:train|models\.llama\.train_loop): "
                       r"train step (\d+) ")


def steady_step_seconds(stderr: str) -> float | None:
    """Seconds per training step between the run's first and last progress lines."""
    points = [(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), int(m.group(2)))
              for m in map(STEP_LINE.match, stderr.splitlines()) if m]
    if len(points) < 2 or points[-1][1] == points[0][1]:
        return None
    return (points[-1][0] - points[0][0]).total_seconds() / (points[-1][1] - points[0][1])


def gpt2_step_cost(run_dir: Path, config) -> tuple[float, float, str]:
    """GPT-2: (tokens, FLOPs, matmul type) of a step: ``batch_size`` full windows, 3 x the forward pass."""
    from generator.models.gpt2.forward import Shape

    shape = Shape.from_hparams(json.loads((run_dir / "hparams.json").read_text()))
    tokens = config.train.batch_size * shape.n_ctx
    return tokens, 3 * tokens * shape.flops_per_token(shape.n_ctx // 2), "float32"


def llama_step_cost(run_dir: Path, train_text: Path, config, steps: int) -> tuple[float, float, str]:
    """Llama: (tokens, FLOPs, matmul type) of the night's mean step over the batches it trained on.

    LoRA counts what bench_llama_train.step_flops does (the frozen weights' forward and input
    gradient, the head where the loss is, the adapters, attention), against the frozen weights' type;
    a full fine-tune 6 x parameters per token (plus attention) against float32.
    """
    import gguf
    import numpy as np

    from bench_llama_train import full_step_flops, step_flops
    from generator.models.llama import examples as chat
    from generator.models.llama import run
    from generator.models.llama.gguf_weights import read_hparams

    base = run.read_family(run_dir)["base"]["path"]
    hp = read_hparams(gguf.GGUFReader(base))
    items = chat.chat_examples(chat.read_lines(train_text), chat.read_tokenizer(base), hp.n_ctx)
    trained = run.load_weights(run_dir)
    lora = config.train.adapter == "lora"
    batches = [chat.pad_batch([items[i] for i in chat.step_items(len(items), config.train.batch_size,
                                                                  config.train.seed, step)], 0)
               for step in range(1, steps + 1)]
    parameters = sum(a.size for a in trained.values())  # the adapters' for LoRA, every weight's for a full fine-tune
    per_step = [(step_flops if lora else full_step_flops)(hp, batch, parameters) for batch in batches]
    tokens = float(np.mean([batch[1].sum() for batch in batches]))
    return tokens, float(np.mean(per_step)), config.train.frozen_dtype if lora else "float32"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT / "sample_data" / "catalog.csv"))
    parser.add_argument("--profile", default=None, help="default: the main job's (the configured default profile)")
    parser.add_argument("--steps", type=int, default=None, help="training steps of the night (default: the profile's)")
    parser.add_argument("--samples", type=int, help="--samples N for the night (then N in all, one round)")
    args = parser.parse_args()

    from generator.config import load_config
    from bench_generate import matmul_peak

    args.profile = args.profile or load_config(environ={}).profile
    args.steps = args.steps or load_config(profile=args.profile, environ={}).train.steps

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        command = [sys.executable, "-m", "generator", "run", "--profile", args.profile, "--catalog", args.catalog,
                   "--workdir", str(work), "--target", f"file://{tmp}/public", "--steps", str(args.steps),
                   "--night", NIGHT] + (["--samples", str(args.samples)] if args.samples else [])
        load = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                env={**os.environ, "GENERATOR_GENERATE__PROGRESS": "false"})
        wall = time.perf_counter() - started
        night = work / "nights" / NIGHT
        if not (night / "report.json").is_file():
            print(result.stderr[-3000:], file=sys.stderr)
            return 1
        report = json.loads((night / "report.json").read_text())
        config = load_config(profile=args.profile, environ={}, overrides={"paths": {"workdir": str(work)}})
        step_seconds = steady_step_seconds(result.stderr)
        run_dir = config.paths.checkpoint_root / config.train.run_name
        if config.model.family == "llama":
            tokens, flops, dtype = llama_step_cost(run_dir, night / "ingest" / "train.txt", config, args.steps)
        else:
            tokens, flops, dtype = gpt2_step_cost(run_dir, config)
    seconds = report["seconds"]
    print(f"main job: run --profile {args.profile} --steps {args.steps}"
          f"{f' --samples {args.samples}' if args.samples else ''}: {wall:.1f} s whole process "
          f"(load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores); "
          f"exit {result.returncode}")
    print(f"  {'step':22s} {'seconds':>8s} {'share':>7s}")
    for step, value in seconds["steps"].items():
        print(f"  {step:22s} {value:8.2f} {value / max(seconds['total'], 1e-9):7.1%}")
    print(f"  {'steps in all':22s} {seconds['total']:8.2f}; process start, imports and the rest "
          f"{wall - seconds['total']:.2f}")
    for entry in seconds["rounds"]:
        startup = entry.get("startup") or {}
        phases = ", ".join(f"{k.removesuffix('_seconds')} {v}" for k, v in startup.items())
        print(f"  round {entry['round']}: {entry['samples']} samples, {entry['seconds']}; sampler: {phases}")
    print(f"  rounds stop: {report['generate'].get('stop')}")

    threads = config.train.threads
    peak = matmul_peak(threads, dtype)
    limit = flops / peak
    print(f"training: {tokens:.0f} tokens per step (batch {config.train.batch_size}), "
          f"{flops / 1e9:.2f} GFLOP per step; {dtype} matmul peak {peak / 1e9:.1f} GFLOP/s "
          f"({threads or 'all'} thread(s)): limit {1000 * limit:.1f} ms per step")
    if step_seconds:
        print(f"training: {1000 * step_seconds:.1f} ms per step measured (steady state) = "
              f"{limit / step_seconds:.1%} of the arithmetic limit")
    else:
        print("training: too few progress lines to time a step (pass more --steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
