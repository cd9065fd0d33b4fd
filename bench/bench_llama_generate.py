"""Llama-family generation on N cores: our sampler (TensorFlow, XLA) vs llama.cpp on the same GGUF, vs the limit.

* decode: tokens/s of the sampler's own loop (sampling included) at each batch size, every row made
  to run the whole ``--decode-steps`` (the end marker ignored), the batch's prefill subtracted;
* samples: ``--samples`` descriptions from the prompted base (a run with no adapter: SmolLM2 itself),
  requests drawn from the bundled catalog's (type, genre) mix, through the generate stage:
  samples/s, how many ended at ``<|im_end|>``, the loop's utilisation (tokens kept over rows x steps);
* whole process: the ``generate`` CLI on the same run, ``--batch-size`` samples, once with an
  empty XLA compile cache and once with the cache the first run filled (``<workdir>/xla-cache``),
  each run's start-up phases (import, graph, compile, first sample) from its manifest;
* llama.cpp (llama-cpp-python, when installed): tokens/s decoding one sequence, and the same
  number of samples from the same chat requests;
* the limit: 2 x parameters FLOPs per token (0.27 GFLOP for 135M; attention's few extra FLOPs not
  counted) over this machine's float32 matmul peak (bench_generate.matmul_peak). Ratios are printed last.

    nice .venv/bin/python bench/bench_llama_generate.py [--threads 2] [--samples 48] [--batch-sizes 1,16,32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generator.models.llama import model_file  # noqa: E402


def prompted_run(root: Path, path: Path) -> Path:
    """A Llama run of the base itself (no adapter) with the bundled catalog's generation info."""
    from generator.artifacts import atomic_write_json
    from generator.ingest import IngestSettings, ingest
    from generator.models.llama import run
    from generator.models.llama.gguf_weights import load_llama_gguf
    from generator.models.llama.tokenizer import LlamaTokenizer
    from generator.textformat import START_TOKEN, control_prefix, parse_training_line

    ingest(str(ROOT / "sample_data" / "catalog.csv"), root / "ingest", IngestSettings())
    tokenizer = LlamaTokenizer(load_llama_gguf(path).tokenizer_fields)
    lines = (root / "ingest" / "train.txt").read_text(encoding="utf-8").splitlines()
    counts: dict[str, int] = {}
    longest = 0
    for line in lines:
        kind, genre, text = parse_training_line(line) or (None, None, "")
        longest = max(longest, len(tokenizer.encode(text)) + 1)  # + <|im_end|>
        if kind and genre:
            condition = control_prefix(kind, genre).strip()
            counts[condition] = counts.get(condition, 0) + 1
    run_dir = root / "checkpoints" / "prompted"
    run.write_family(run_dir, path, model_file.file_sha256(path), None)
    atomic_write_json(run_dir / "generation.json", {"max_tokens": longest, "conditions": sorted(counts),
                                                    "condition_counts": dict(sorted(counts.items())),
                                                    "examples": [line for line in lines[:16] if line.startswith(START_TOKEN)]})
    return run_dir


def decode_rate(run_dir: Path, batch: int, steps: int, threads: int) -> tuple[float, float]:
    """(tokens/s, compile seconds) of the sampler's loop at ``batch`` rows, every row running ``steps`` steps."""
    from generator.generate.llama_sampler import LlamaSampler
    from generator.textformat import START_TOKEN

    prefix = START_TOKEN + " [Movie] [Dramas]"
    sampler = LlamaSampler(run_dir, steps, batch_size=batch, prompts=[prefix], temperature=0.8, top_p=0.9,
                           threads=threads)
    sampler.stop_ids, sampler.restart_id = [-1], -1  # before the first call traces: no row ever ends early
    jobs = [(index, prefix, [7, index]) for index in range(batch)]
    started = time.perf_counter()
    list(sampler.generate([]))  # compile, then one prefill with no active row
    compiled = time.perf_counter() - started
    started = time.perf_counter()
    list(sampler.generate([]))
    prefill = time.perf_counter() - started
    started = time.perf_counter()
    rows = list(sampler.generate([([0], jobs)]))
    loop = time.perf_counter() - started - prefill
    assert all(len(row.tokens) == steps for _, row in rows)
    sampler.close()
    return batch * steps / loop, compiled


def our_samples(run_dir: Path, out: Path, samples: int, batch: int, threads: int) -> dict:
    from generator.generate.stage import GenerateSettings, generate

    settings = GenerateSettings(samples=samples, batch_size=batch, threads=threads, seed=11, progress=False)
    started = time.perf_counter()
    manifest = generate(run_dir, out, settings)
    manifest["wall_seconds"] = time.perf_counter() - started
    return manifest


def whole_process(run_dir: Path, scratch: Path, samples: int, batch: int, threads: int) -> list[tuple[str, float, dict]]:
    """The generate CLI on the prompted run as a whole process: a cold compile cache, then the same cache warm.

    Returns [(label, wall seconds, manifest)]: the start-up phases (import, graph, compile, first
    sample) are the manifest's, as the night's report records them.
    """
    import os
    import subprocess

    workdir = scratch / "whole-process"  # holds <workdir>/xla-cache: empty on the first run, filled after it
    out = []
    for label in ("cold cache", "warm cache"):
        target = scratch / f"whole-{label.split()[0]}.jsonl"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "GENERATOR_GENERATE__THREADS": str(threads),
               "GENERATOR_GENERATE__PROGRESS": "false", "GENERATOR_GENERATE__RESUME": "false",
               "GENERATOR_PATHS__WORKDIR": str(workdir)}
        command = [sys.executable, "-m", "generator", "generate", "--checkpoint-dir", str(run_dir.parent),
                   "--run-name", run_dir.name, "--samples", str(samples), "--batch-size", str(batch),
                   "--seed", "11", "--out", str(target)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        out.append((label, time.perf_counter() - started,
                    json.loads(target.with_name(target.stem + ".manifest.json").read_text())))
    return out


def llama_cpp_side(path: Path, requests: list[str], length: int, steps: int, threads: int) -> dict | str:
    """llama.cpp's decode tokens/s (one sequence) and its samples from the same requests, or why it was skipped."""
    try:
        import llama_cpp
    except ImportError as error:
        return f"skipped: llama-cpp-python is not importable ({error}; no wheel in /root/wheels to install)"
    llm = llama_cpp.Llama(str(path), n_ctx=1024, n_batch=256, n_threads=threads, verbose=False, seed=11)
    prompt = llm.tokenize(requests[0].encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(prompt)
    started = time.perf_counter()
    for _ in range(steps):
        llm.eval([llm.sample(temp=0.8, top_p=0.9)])
    decode = steps / (time.perf_counter() - started)
    started = time.perf_counter()
    texts = []
    for request in requests:
        out = llm.create_completion(request, max_tokens=length, temperature=0.8, top_p=0.9, stop=["<|im_end|>"])
        texts.append(out["choices"][0])
    seconds = time.perf_counter() - started
    ended = sum(1 for choice in texts if choice.get("finish_reason") == "stop")
    return {"decode_tokens_s": decode, "samples_s": len(requests) / seconds, "terminated": ended}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="batch of the samples run")
    parser.add_argument("--batch-sizes", default="1,16,32", help="batches of the decode measurement")
    parser.add_argument("--decode-steps", type=int, default=48)
    parser.add_argument("--show", type=int, default=10, help="samples printed")
    args = parser.parse_args()
    path = model_file.require_model()
    with tempfile.TemporaryDirectory(prefix="bench-llama-") as tmp:
        run_dir = prompted_run(Path(tmp), path)
        rates = {}
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            rates[batch] = decode_rate(run_dir, batch, args.decode_steps, args.threads)
            print(f"ours decode, batch {batch:3d}: {rates[batch][0]:7.1f} tokens/s "
                  f"(compile {rates[batch][1]:.1f} s)", flush=True)
        from generator.generate.driver import close_samplers
        from generator.generate.stage import GenerateSettings, sample_prefixes
        from generator.textformat import chat_prompt

        manifest = our_samples(run_dir, Path(tmp) / "samples.jsonl", args.samples, args.batch_size, args.threads)
        whole = whole_process(run_dir, Path(tmp), args.batch_size, args.batch_size, args.threads)
        records = [json.loads(line) for line in (Path(tmp) / "samples.jsonl").read_text().splitlines()]
        close_samplers()
        requests = [chat_prompt(p) for p in sample_prefixes(run_dir, GenerateSettings(samples=args.samples, seed=11))]
        theirs = llama_cpp_side(path, requests, manifest["length"], args.decode_steps, args.threads)
    from bench_generate import matmul_peak

    peak = matmul_peak(args.threads)  # last: it imports gpt-2-simple, which turns eager execution off
    import gguf

    from generator.models.llama.gguf_weights import read_hparams

    hp = read_hparams(gguf.GGUFReader(str(path)))
    params = hp.n_vocab * hp.n_embd + hp.n_layer * (
        hp.n_embd * (hp.n_head + 2 * hp.n_head_kv) * hp.head_dim + hp.n_head * hp.head_dim * hp.n_embd
        + 3 * hp.n_embd * hp.n_ff)
    limit = peak / (2 * params)
    steps_rows = manifest["decode_steps"] * args.batch_size
    print(f"\n{args.samples} samples of the prompted base, batch {args.batch_size}, cap {manifest['length']} tokens:")
    for record in records[:args.show]:
        print(f"  [{record['type']}] [{record['genre']}] {'' if record['terminated'] else '(unterminated) '}"
              f"{record['text']}")
    print(f"\nmatmul peak: {peak / 1e9:.1f} GFLOP/s ({args.threads} threads, float32 1024^3); "
          f"{2 * params / 1e9:.3f} GFLOP/token; arithmetic limit {limit:.1f} tokens/s")
    print(f"ours samples: {manifest['samples'] / manifest['sampling_seconds']:.2f} samples/s sampling, "
          f"{manifest['samples'] / manifest['wall_seconds']:.2f} samples/s whole stage "
          f"({manifest['wall_seconds']:.1f} s, start-up {manifest['startup']}), "
          f"{manifest['terminated']}/{manifest['samples']} ended at <|im_end|>, "
          f"{manifest['sample_tokens'] / manifest['sampling_seconds']:.1f} tokens/s kept, "
          f"loop utilisation {manifest['sample_tokens'] / steps_rows:.0%} ({manifest['sample_tokens']} tokens "
          f"over {manifest['decode_steps']} steps x {args.batch_size} rows)")
    from bench_generate import phases_line

    for label, wall, whole_manifest in whole:
        print(f"whole process, generate CLI, {args.batch_size} samples, {label}: {phases_line(wall, whole_manifest)}")
    if isinstance(theirs, str):
        print(f"llama.cpp: {theirs}")
    else:
        print(f"llama.cpp: decode {theirs['decode_tokens_s']:.1f} tokens/s (one sequence), "
              f"{theirs['samples_s']:.2f} samples/s, {theirs['terminated']}/{args.samples} ended")
    for batch, (rate, _) in rates.items():
        print(f"ratio ours / limit, decode batch {batch}: {rate / limit:.1%}")
    if not isinstance(theirs, str):
        for batch, (rate, _) in rates.items():
            print(f"ratio ours / llama.cpp decode, batch {batch}: {rate / theirs['decode_tokens_s']:.2f}x")
        print(f"ratio ours / llama.cpp samples/s: "
              f"{manifest['samples'] / manifest['wall_seconds'] / theirs['samples_s']:.2f}x")
    print(f"ratio warm / cold compile cache, whole process: {whole[1][1] / whole[0][1]:.2f} "
          f"(compile {whole[0][2]['startup'].get('compile_seconds')} s -> {whole[1][2]['startup'].get('compile_seconds')} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
