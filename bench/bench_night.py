"""Benchmark: where the main job's seconds go, and training's step cost against its arithmetic limit.

    python bench/bench_night.py [--profile tiny] [--steps 100] [--samples N] [--catalog CSV]

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
float32 matmul peak (``bench_generate.matmul_peak``, at the training's threads).
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
STEP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO generator\.train: train step (\d+) ")


def steady_step_seconds(stderr: str) -> float | None:
    """Seconds per training step between the run's first and last progress lines."""
    points = [(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), int(m.group(2)))
              for m in map(STEP_LINE.match, stderr.splitlines()) if m]
    if len(points) < 2 or points[-1][1] == points[0][1]:
        return None
    return (points[-1][0] - points[0][0]).total_seconds() / (points[-1][1] - points[0][1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT / "sample_data" / "catalog.csv"))
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the night")
    parser.add_argument("--samples", type=int, help="--samples N for the night (then N in all, one round)")
    args = parser.parse_args()

    from generator.config import load_config
    from generator.models.gpt2.forward import Shape
    from bench_generate import matmul_peak

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
        hparams = json.loads(next((work / "checkpoints").rglob("hparams.json")).read_text())
    config = load_config(profile=args.profile, environ={})
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

    shape = Shape.from_hparams(hparams)
    step_seconds = steady_step_seconds(result.stderr)
    threads = config.train.threads
    peak = matmul_peak(threads)
    tokens = config.train.batch_size * shape.n_ctx
    flops = 3 * tokens * shape.flops_per_token(shape.n_ctx // 2)
    limit = flops / peak
    print(f"training: {tokens} tokens per step ({config.train.batch_size} x {shape.n_ctx}), "
          f"{flops / 1e9:.2f} GFLOP per step; matmul peak {peak / 1e9:.1f} GFLOP/s "
          f"({threads or 'all'} thread(s)): limit {1000 * limit:.1f} ms per step")
    if step_seconds:
        print(f"training: {1000 * step_seconds:.1f} ms per step measured (steady state) = "
              f"{limit / step_seconds:.1%} of the arithmetic limit")
    else:
        print("training: too few progress lines to time a step (pass more --steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
