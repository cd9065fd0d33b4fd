"""Benchmark: finished descriptions per second, early-stopping sampler vs gpt-2-simple vs HF transformers.

    python bench/bench_generate.py [--samples 64] [--train-steps 1000] [--no-hf]

One process, one checkpoint: the `tiny` profile (vocab 4096, n_embd 128, 2 layers)
fine-tuned on ../shared/data/netflix_titles_2021.csv (cached under var/bench, so
reruns skip training). Two settings:

* the seed's: gpt-2-simple's default ``length`` 1023, batch 16;
* a tight cap: length = the longest training description in tokens (generation.json).

Backends, each timed from "model in memory" to "texts cut at <|endoftext|>":

* gpt-2-simple ``gpt2.generate`` (one call, as the reference backend uses it);
* ours (generator.fast_sample.FastSampler, the `fast` backend's sampler), and ours
  without compaction (finished rows stay in the batch) to show what compaction buys;
* HF transformers ``GPT2LMHeadModel.generate`` (PyTorch CPU, KV cache) on the same
  weights converted from the checkpoint (logits checked against TensorFlow first),
  stopping each row at the same end marker through a StoppingCriteria.

A sample counts as finished when it ends with the marker. Same sampling settings
everywhere (temperature 0.8, top_p 0.9). Targets: >= 10x gpt-2-simple at the seed's
settings, >= 2x at the tight cap, not slower than HF. The machine may be shared:
rounds alternate the backends and the table reports each one's best round, and
every backend runs single-threaded by default (--threads), because PyTorch's
OpenMP threads slow down by 10x or more when other processes hold the cores.
One-time set-up (graph building, weight loading, conversion) is reported, not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DEFAULT_CATALOG = ROOT.parent / "shared" / "data" / "netflix_titles_2021.csv"
BATCH = 16
SAMPLING = {"temperature": 0.8, "top_k": 0, "top_p": 0.9}


def prepare_checkpoint(catalog: Path, cache: Path, steps: int) -> Path:
    """The tiny profile fine-tuned ``steps`` steps on the catalog (cached by catalog and steps)."""
    from generator.config import load_config
    from generator.ingest import ingest
    from generator.checkpoints import checkpoint_step
    from generator.train import train

    work = cache / f"tiny-{steps}"
    config = load_config(profile="tiny", environ={}, overrides={
        "paths": {"workdir": str(work)}, "train": {"steps": steps}})
    run_dir = config.paths.checkpoint_root / config.train.run_name
    if checkpoint_step(run_dir) != steps or not (run_dir / "generation.json").is_file():
        print(f"training the tiny profile {steps} steps on {catalog} (once; cached in {work}) ...", flush=True)
        ingest(str(catalog), work / "ingest", config.ingest)
        train(work / "ingest", config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    return run_dir


@dataclasses.dataclass
class Result:
    backend: str
    setting: str
    samples: int
    finished: int
    seconds: float
    tokens: int  # tokens decoded per row summed over rows (work done, including past the marker)

    @property
    def rate(self) -> float:
        return self.finished / self.seconds


def finished_count(texts: list[str], prefix: str) -> int:
    from generator.textformat import parse_sample

    return sum(parse_sample(text, prefix)["terminated"] for text in texts)


def run_gpt2_simple(run_dir: Path, samples: int, length: int, seed: int, threads: int) -> tuple[float, list[str], int]:
    from generator.textformat import START_TOKEN
    from generator.tf_runtime import import_gpt2, new_session

    gpt2 = import_gpt2()
    sess = new_session(threads)
    try:
        gpt2.load_gpt2(sess, run_name=run_dir.name, checkpoint_dir=str(run_dir.parent))
        started = time.perf_counter()
        texts = gpt2.generate(sess, run_name=run_dir.name, checkpoint_dir=str(run_dir.parent), return_as_list=True,
                              nsamples=samples, batch_size=BATCH, length=length, prefix=START_TOKEN, seed=seed,
                              include_prefix=True, **SAMPLING)
        return time.perf_counter() - started, texts, samples * length
    finally:
        sess.close()


def run_fast(sampler, samples: int, length: int, seed: int) -> tuple[float, list[str], int]:
    from generator.textformat import START_TOKEN
    from generator.fast_sample import sample_seed

    context = sampler.encoder.encode(START_TOKEN)
    texts, work = [], 0
    started = time.perf_counter()
    for first in range(0, samples, BATCH):
        seeds = [sample_seed(seed, index) for index in range(first, min(samples, first + BATCH))]
        rows, steps = sampler.sample(context, length, seeds)
        texts += [sampler.decode(context, row) for row in rows]
        # A compacted row is computed until it ends; otherwise until the batch ends.
        work += sum(len(row.tokens) for row in rows) if sampler.compact else steps * len(rows)
    return time.perf_counter() - started, texts, work


# --- HF transformers on the converted checkpoint -------------------------------------------------


def convert_to_hf(run_dir: Path):
    """GPT2LMHeadModel with the checkpoint's weights (TF conv1d [1, in, out] -> HF Conv1D [in, out])."""
    import numpy as np
    import tensorflow as tf
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    hparams = json.loads((run_dir / "hparams.json").read_text())
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir)))
    config = GPT2Config(vocab_size=hparams["n_vocab"], n_positions=hparams["n_ctx"], n_embd=hparams["n_embd"],
                        n_layer=hparams["n_layer"], n_head=hparams["n_head"], activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = GPT2LMHeadModel(config).eval()

    def weight(name: str):
        value = reader.get_tensor(f"model/{name}")
        return torch.from_numpy(np.ascontiguousarray(value[0] if value.ndim == 3 else value))

    state = {"transformer.wte.weight": weight("wte"), "transformer.wpe.weight": weight("wpe"),
             "transformer.ln_f.weight": weight("ln_f/g"), "transformer.ln_f.bias": weight("ln_f/b")}
    for layer in range(hparams["n_layer"]):
        for ours, theirs in [("ln_1/g", "ln_1.weight"), ("ln_1/b", "ln_1.bias"), ("ln_2/g", "ln_2.weight"),
                             ("ln_2/b", "ln_2.bias"), ("attn/c_attn/w", "attn.c_attn.weight"),
                             ("attn/c_attn/b", "attn.c_attn.bias"), ("attn/c_proj/w", "attn.c_proj.weight"),
                             ("attn/c_proj/b", "attn.c_proj.bias"), ("mlp/c_fc/w", "mlp.c_fc.weight"),
                             ("mlp/c_fc/b", "mlp.c_fc.bias"), ("mlp/c_proj/w", "mlp.c_proj.weight"),
                             ("mlp/c_proj/b", "mlp.c_proj.bias")]:
            state[f"transformer.h.{layer}.{theirs}"] = weight(f"h{layer}/{ours}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model


def check_logits(model, run_dir: Path, tokens: list[int]) -> float:
    """Max |logit difference| between TF (gpt-2-simple's model) and the converted HF model."""
    import numpy as np
    import tensorflow as tf
    import torch
    from gpt_2_simple.src import model as gpt2_model

    hparams = gpt2_model.default_hparams()
    hparams.override_from_dict(json.loads((run_dir / "hparams.json").read_text()))
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [1, None])
        logits = gpt2_model.model(hparams=hparams, X=x)["logits"]
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, tf.train.latest_checkpoint(str(run_dir)))
            expected = sess.run(logits, {x: [tokens]})[0]
    with torch.no_grad():
        actual = model(torch.tensor([tokens])).logits[0].numpy()
    return float(np.abs(actual - expected).max())


def run_hf(model, encoder, table, samples: int, length: int, seed: int) -> tuple[float, list[str], int]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from generator.textformat import START_TOKEN

    matched = table.shape[0] - 1
    automaton = torch.from_numpy(table).long()

    class EndMarker(StoppingCriteria):
        """Per-row stop at <|endoftext|>, with the same token automaton as ours."""

        def __init__(self, rows: int):
            self.state = torch.zeros(rows, dtype=torch.long)

        def __call__(self, input_ids, scores, **kwargs):
            self.state = automaton[self.state, input_ids[:, -1]]
            return self.state == matched

    context = encoder.encode(START_TOKEN)
    limit = min(length, 1023 - len(context))
    torch.manual_seed(seed)
    texts, work = [], 0
    started = time.perf_counter()
    with torch.no_grad():
        for first in range(0, samples, BATCH):
            rows = min(BATCH, samples - first)
            ids = torch.tensor([context] * rows)
            output = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=limit,
                                    temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"], top_k=0,
                                    use_cache=True, pad_token_id=0,
                                    stopping_criteria=StoppingCriteriaList([EndMarker(rows)]))
            new = output[:, len(context):]
            work += new.shape[0] * new.shape[1]
            for row in new.tolist():
                texts.append(encoder.decode(context + row))
    return time.perf_counter() - started, texts, work


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench", help="checkpoint cache directory")
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=64, help="samples per backend and setting (batches of 16)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; each backend's best counts")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow/PyTorch threads (0 = all cores)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-hf", action="store_true", help="skip HF transformers")
    args = parser.parse_args()
    if not args.catalog.is_file():
        print(f"error: catalog {args.catalog} not found (fix: pass --catalog)", file=sys.stderr)
        return 2

    from generator.fast_sample import FastSampler, end_marker_table
    from generator.textformat import END_TOKEN

    run_dir = prepare_checkpoint(args.catalog, args.cache, args.train_steps)
    tight = json.loads((run_dir / "generation.json").read_text())["max_tokens"]
    settings = [("seed (L=1023)", 1023), (f"tight (L={tight})", tight)]
    started = time.perf_counter()
    sampler = FastSampler(run_dir, threads=args.threads, **SAMPLING)
    setup = {"ours": time.perf_counter() - started}
    started = time.perf_counter()
    uncompacted = FastSampler(run_dir, threads=args.threads, compact=False, **SAMPLING)
    setup["ours, no compaction"] = time.perf_counter() - started

    hf = None
    if not args.no_hf:
        try:
            import torch
            import transformers

            transformers.logging.set_verbosity_error()
            if args.threads:
                torch.set_num_threads(args.threads)
            started = time.perf_counter()
            model = convert_to_hf(run_dir)
            setup["hf (conversion)"] = time.perf_counter() - started
            probe = sampler.encoder.encode(run_dir.joinpath("..", "..", "ingest", "val.txt").resolve()
                                           .read_text(encoding="utf-8")[:2000])[:300]
            error = check_logits(model, run_dir, probe)
            print(f"HF conversion: max |logit difference| vs TensorFlow over {len(probe)} tokens = {error:.2e}")
            if error > 1e-3:
                raise ValueError(f"converted logits differ by {error}")
            strings = [sampler.encoder.decoder.get(i, "") for i in range(model.config.vocab_size)]
            marker = "".join(sampler.encoder.byte_encoder[b] for b in END_TOKEN.encode("utf-8"))
            hf = (model, end_marker_table(strings, marker))
        except ImportError as exc:
            print(f"HF transformers skipped: {exc} (pip install -e '.[bench]')")

    from generator.textformat import START_TOKEN

    best: dict[tuple[str, str], Result] = {}

    def record(backend, setting, seconds, texts, work):
        result = Result(backend, setting, len(texts), finished_count(texts, START_TOKEN), seconds, work)
        print(f"  {backend:20s} {setting:16s} {result.finished:3d}/{result.samples} finished in {seconds:7.2f} s",
              flush=True)
        key = (backend, setting)
        if key not in best or result.rate > best[key].rate:
            best[key] = result

    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}", flush=True)
        for setting, length in settings:
            record("gpt-2-simple", setting, *run_gpt2_simple(run_dir, args.samples, length, args.seed, args.threads))
            record("ours", setting, *run_fast(sampler, args.samples, length, args.seed))
            record("ours, no compaction", setting, *run_fast(uncompacted, args.samples, length, args.seed))
            if hf:
                record("hf", setting, *run_hf(hf[0], sampler.encoder, hf[1], args.samples, length, args.seed))
    sampler.close()
    uncompacted.close()

    print()
    print(f"checkpoint: {run_dir} (tiny profile, {args.train_steps} steps); batch {BATCH}; "
          f"{', '.join(f'{k}={v}' for k, v in SAMPLING.items())}; {args.threads or 'all'} thread(s); "
          f"best of {args.rounds} rounds")
    print("one-time set-up, not timed: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in setup.items())
          + " (gpt-2-simple: load_gpt2 per round; its generate() builds its graph inside the timed call)")
    print(f"{'setting':16s} {'backend':20s} {'finished':>9s} {'seconds':>8s} {'finished/s':>10s} {'row-tokens decoded':>19s}")
    for setting, _ in settings:
        for backend in ("gpt-2-simple", "ours", "ours, no compaction", "hf"):
            r = best.get((backend, setting))
            if r:
                print(f"{setting:16s} {backend:20s} {r.finished:4d}/{r.samples:<4d} {r.seconds:8.2f} {r.rate:10.2f} "
                      f"{r.tokens:19d}")
    print()
    seed_setting, tight_setting = settings[0][0], settings[1][0]
    ratios = [("ours / ours without compaction, tight cap", tight_setting, "ours, no compaction", 1.0),
              ("ours / gpt-2-simple, seed settings", seed_setting, "gpt-2-simple", 10.0),
              ("ours / gpt-2-simple, tight cap", tight_setting, "gpt-2-simple", 2.0),
              ("ours / HF transformers, seed settings", seed_setting, "hf", 1.0),
              ("ours / HF transformers, tight cap", tight_setting, "hf", 1.0)]
    for label, setting, other, target in ratios:
        if (other, setting) in best:
            ratio = best[("ours", setting)].rate / max(best[(other, setting)].rate, 1e-9)
            print(f"{label:44s} {ratio:6.2f}x  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
