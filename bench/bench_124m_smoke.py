"""Smoke benchmark of the real-size path, offline: GPT-2 124M's exact shape on CPU.

    python bench/bench_124m_smoke.py [--catalog CSV] [--work DIR] [--steps 2] [--samples 8] [--threads 1]

No download: a model of GPT-2 124M's shape (12 layers x 768, 12 heads, n_ctx
1024, a vocabulary of exactly 50,257 tokens: the BPE trained on the catalog,
padded with never-produced placeholder tokens) is bootstrapped with random
weights and moved into ``models/124M`` -- gpt-2-simple's layout of the real
download. Then the 124M profile (``source = "pretrained"``, ``download = false``)
runs on it as it would on OpenAI's weights: base model -> ``train.steps`` steps
-> ``samples`` samples with the fast backend. Each stage runs in its own child
process; the table reports its wall time, peak resident memory (the child's
``getrusage`` maxrss) and rate. The catalog defaults to ../shared/data's 2021
snapshot, else the bundled sample catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "netflix_titles_2021.csv"
GPT2_124M = {"vocab_size": 50256, "pad_vocab": True, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_ctx": 1024}


def config_for(work: Path, args, *, bootstrap: bool):
    from generator.config import load_config

    model = {"name": "124M", "download": False}
    if bootstrap:
        model.update(source="bootstrap", **GPT2_124M)
    return load_config(profile="124M", environ={}, overrides={
        "paths": {"workdir": str(work)}, "model": model,
        "train": {"steps": args.steps, "save_every": args.steps, "threads": args.threads,
                  "val_max_tokens": args.val_tokens},
        "generate": {"samples": args.samples, "batch_size": args.samples, "threads": args.threads,
                     "progress": False}})


def stage(name: str, work: Path, args) -> dict:
    """One stage, run inside the child process."""
    if name == "base":
        from generator.base_model import ensure_base_model
        from generator.ingest import ingest

        ingest(str(args.catalog), work / "ingest", config_for(work, args, bootstrap=True).ingest)
        config = config_for(work, args, bootstrap=True)
        # Bootstrap under a scratch root, then place it where the pretrained 124M lives.
        scratch = work / "bootstrap"
        manifest = ensure_base_model(scratch, config.model, corpus_path=work / "ingest" / "train.txt")
        target = config.paths.models_root / "124M"
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch / "124M"), str(target))
        hparams = json.loads((target / "hparams.json").read_text())
        return {"hparams": hparams, "parameters": manifest.get("parameters")}
    config = config_for(work, args, bootstrap=False)
    assert config.model.source == "pretrained"
    if name == "train":
        from generator.train import train

        manifest = train(work / "ingest", config.paths.checkpoint_root, config.paths.models_root, config.model,
                         config.train)
        return {"steps": manifest["steps"], "seconds_per_step": round(1 / manifest["steps_per_second"], 2),
                "val_loss": manifest["val_loss"], "base": manifest["base_model"]["source"]}
    if name == "generate":
        from generator.generate.stage import generate

        manifest = generate(Path(config.paths.checkpoint_root) / config.train.run_name, work / "samples.jsonl",
                            config.generate)
        return {"samples": manifest["samples"], "terminated": manifest["terminated"], "length": manifest["length"],
                "samples_per_second": round(manifest["samples"] / manifest["seconds"], 3),
                "sampling_seconds": manifest["sampling_seconds"], "decode_steps": manifest["decode_steps"]}
    raise ValueError(name)


def run_child(name: str, args) -> dict:
    command = [sys.executable, __file__, "--stage", name, "--work", str(args.work), "--catalog", str(args.catalog),
               "--steps", str(args.steps), "--samples", str(args.samples), "--threads", str(args.threads),
               "--val-tokens", str(args.val_tokens)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                             cwd=ROOT)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"stage {name} failed with exit code {child.returncode}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    # Linux reports ru_maxrss in KiB.
    return {**result, "seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, default=SHARED if SHARED.is_file() else ROOT / "sample_data" / "catalog.csv")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "124m-smoke")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (0 = all cores)")
    parser.add_argument("--val-tokens", type=int, default=2048, help="held-out tokens for the validation loss")
    parser.add_argument("--stage", choices=("base", "train", "generate"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.work, args)))
        return 0
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results = {name: run_child(name, args) for name in ("base", "train", "generate")}
    hparams = results["base"]["hparams"]
    print()
    print(f"GPT-2 124M shape offline: {hparams} ({results['base']['parameters']:,} parameters), catalog {args.catalog}, "
          f"{args.threads or 'all'} thread(s)")
    print(f"{'stage':10s} {'seconds':>8s} {'peak RSS MiB':>13s}  figures")
    for name, result in results.items():
        figures = {k: v for k, v in result.items() if k not in ("seconds", "peak_rss_mib", "hparams", "parameters")}
        print(f"{name:10s} {result['seconds']:8.1f} {result['peak_rss_mib']:13d}  {figures}")
    assert hparams["n_vocab"] == 50257 and hparams["n_embd"] == 768 and hparams["n_layer"] == 12
    assert results["generate"]["samples"] == args.samples
    return 0


if __name__ == "__main__":
    sys.exit(main())
