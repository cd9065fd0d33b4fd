"""The reader's scoring throughput on N cores: ours (TensorFlow) vs llama.cpp's own scoring, vs the limit.

Same texts (real 2021 descriptions, or the bundled sample catalog) after "Netflix description: ".
The limit is about 2 x parameters FLOPs per token (0.27 GFLOP for 135M) over this machine's float32
matmul peak, measured by bench_generate.matmul_peak. Ratios are printed last.

    .venv/bin/python bench/bench_reader.py [--texts 96] [--threads 2] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_generate import matmul_peak  # noqa: E402
from generator.models.llama import model_file  # noqa: E402

PREFIX = "Netflix description: "


def texts_of(count: int) -> list[str]:
    shared = ROOT.parent / "shared" / "data" / "netflix_titles_2021.csv"
    source = shared if shared.is_file() else Path("/work/shared/data/netflix_titles_2021.csv")
    if not source.is_file():
        source = ROOT / "sample_data" / "catalog.csv"
    with open(source, newline="", encoding="utf-8") as handle:
        texts = sorted({row["description"].strip() for row in csv.DictReader(handle) if row.get("description")})
    return random.Random(0).sample(texts, min(count, len(texts)))


def run_ours(path, texts, threads, batch_size, matmul_dtype="float32") -> tuple:
    from generator.models.llama.score import LlamaScorer

    scorer = LlamaScorer(path, threads=threads, batch_size=batch_size, matmul_dtype=matmul_dtype)
    scorer.token_logprobs(texts[:batch_size], PREFIX)  # trace once
    started = time.perf_counter()
    scored = scorer.token_logprobs(texts, PREFIX)
    tokens = sum(len(ids) for ids, _ in scorer.split(texts, PREFIX))
    return time.perf_counter() - started, tokens, scorer.hparams, sum(len(s) for s in scored)


def run_llama_cpp(path, texts, threads) -> float | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    llm = llama_cpp.Llama(str(path), n_ctx=512, n_batch=512, logits_all=True, n_threads=threads, verbose=False)
    started = time.perf_counter()
    for text in texts:
        llm.reset()
        llm.eval(llm.tokenize((PREFIX + text).encode(), add_bos=False, special=True))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--matmul-dtype", default="bfloat16", choices=("bfloat16", "float32"),
                        help="the blocks' projections, as curate.reader_matmul_dtype (the limit is this type's peak)")
    args = parser.parse_args()
    path = model_file.require_model()
    texts = texts_of(args.texts)
    ours, tokens, hp, _ = run_ours(path, texts, args.threads, args.batch_size, args.matmul_dtype)
    peak = matmul_peak(args.threads, args.matmul_dtype)  # last: gpt-2-simple's import leaves TensorFlow in graph mode
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.threads} threads, {args.matmul_dtype} 1024^3)", flush=True)
    params = hp.n_vocab * hp.n_embd + hp.n_layer * (
        hp.n_embd * (hp.n_head + 2 * hp.n_head_kv) * hp.head_dim + hp.n_head * hp.head_dim * hp.n_embd
        + 3 * hp.n_embd * hp.n_ff)
    limit_tokens_s = peak / (2 * params)
    theirs = run_llama_cpp(path, texts, args.threads)
    print(f"{len(texts)} texts, {tokens} tokens (prefix included), {2 * params / 1e9:.3f} GFLOP/token")
    print(f"ours (TensorFlow, {args.matmul_dtype}):  {len(texts) / ours:7.2f} texts/s {tokens / ours:8.1f} tokens/s")
    if theirs is not None:
        print(f"llama.cpp:          {len(texts) / theirs:7.2f} texts/s {tokens / theirs:8.1f} tokens/s")
    print(f"arithmetic limit:                 {limit_tokens_s:8.1f} tokens/s")
    print(f"ratio ours / limit: {tokens / ours / limit_tokens_s:.1%}")
    if theirs is not None:
        print(f"ratio ours / llama.cpp: {theirs / ours:.1%}")
        best = max(tokens / theirs, limit_tokens_s)
        print(f"ratio ours / better of the two: {tokens / ours / best:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
