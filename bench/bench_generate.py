"""Benchmark: finished descriptions per second, our sampler vs gpt-2-simple vs HF transformers.

    python bench/bench_generate.py [--samples 64] [--tight-samples 1024] [--train-steps 800] [--no-hf]

One checkpoint: the `tiny` profile (vocab 4096, n_embd 128, 2 layers) fine-tuned
on ../shared/data/netflix_titles_2021.csv (cached under var/bench, so reruns skip
training). Batch 16 everywhere, temperature 0.8, top_p 0.9, unconditioned
(prefix <|startoftext|>), no unseen-token mask: the same distribution for all.

1. Measurement: a float32 matrix-multiply peak (1024^3, same threads); our
   decoding step's time against the rows in the batch; TensorFlow ops per step
   of each loop; FLOP/s achieved by each backend as a fraction of that peak.
2. Tight cap (--tight-length 96, --tight-samples 1024), whole process: the
   `generate` CLI in a child process per backend (imports, graph or XLA build,
   weights, sampling, JSONL), wall time.
3. The seed's setting (gpt-2-simple's default length 1023) and the tight cap in
   this process, timed from "model in memory" to "texts cut at <|endoftext|>":
   gpt-2-simple's ``gpt2.generate``; ours (generator.generate.sampler, the fast
   backend: continuous batching, XLA); our previous per-batch early-stopping
   loop (generator.generate.reference_loop.FastSampler); HF transformers
   ``GPT2LMHeadModel.generate`` (PyTorch CPU, KV cache) on the converted weights
   (logits checked against TensorFlow first), stopped per row at the same marker.

A sample counts as finished when it ends with the marker. Rounds alternate the
backends and each one's best round counts; everything runs single-threaded by
default (--threads) because other processes may share the cores. Ratios last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DEFAULT_CATALOG = ROOT.parent / "shared" / "data" / "netflix_titles_2021.csv"
BATCH = 16
SAMPLING = {"temperature": 0.8, "top_k": 0, "top_p": 0.9}
OURS, PREVIOUS = "ours", "ours, previous loop"


def prepare_checkpoint(catalog: Path, cache: Path, steps: int, threads: int) -> Path:
    """The tiny profile fine-tuned ``steps`` steps on the catalog (cached by catalog and steps)."""
    from generator.config import load_config
    from generator.ingest import ingest
    from generator.checkpoints import checkpoint_step, write_generation_info
    from generator.train import train

    work = cache / f"tiny-{steps}"
    config = load_config(profile="tiny", environ={}, overrides={
        "paths": {"workdir": str(work)}, "train": {"steps": steps, "threads": threads}})
    run_dir = config.paths.checkpoint_root / config.train.run_name
    if checkpoint_step(run_dir) != steps or not (run_dir / "generation.json").is_file():
        print(f"training the tiny profile {steps} steps on {catalog} (once; cached in {work}) ...", flush=True)
        ingest(str(catalog), work / "ingest", config.ingest)
        train(work / "ingest", config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    if "seen_tokens" not in json.loads((run_dir / "generation.json").read_text()):  # cached before it was recorded
        write_generation_info(run_dir, work / "ingest" / "train.txt")
    return run_dir


@dataclasses.dataclass
class Result:
    backend: str
    setting: str
    samples: int
    finished: int
    seconds: float
    flops: float  # arithmetic the backend actually did (decoded row-tokens x FLOPs per token)

    @property
    def rate(self) -> float:
        return self.finished / self.seconds


def finished_count(texts: list[str], prefix: str) -> int:
    from generator.textformat import parse_sample

    return sum(parse_sample(text, prefix)["terminated"] for text in texts)


# --- measurement -----------------------------------------------------------------------------------


def matmul_peak(threads: int, dtype: str = "float32") -> float:
    """FLOP/s of a 1024 x 1024 x 1024 matmul of ``dtype`` in TensorFlow (best of 7)."""
    from generator.tf_runtime import import_gpt2, import_tf

    tf, gpt2 = import_tf(), import_gpt2()
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(tf.cast(tf.random.normal([1024, 1024]), dtype))
        b = tf.Variable(tf.cast(tf.random.normal([1024, 1024]), dtype))
        product = tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))
        sess = gpt2.start_tf_sess(threads=threads if threads > 0 else -1)
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(product)
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            sess.run(product)
            best = min(best, time.perf_counter() - started)
        sess.close()
    return 2 * 1024 ** 3 / best


def loop_ops(graph) -> int:
    """TensorFlow ops in the bodies of a graph's while loops (what runs per decoding step before XLA)."""
    functions = {f.signature.name: f for f in graph.as_graph_def().library.function}
    return sum(len(f.node_def) for name, f in functions.items() if "body" in name)


def step_profile(run_dir: Path, shape, context: list[int], length: int, threads: int, peak: float) -> list[str]:
    """Our loop's time per decoding step against the rows in the batch."""
    from generator.generate.sampler import ContinuousSampler
    from generator.generate.driver import sample_seed

    lines = []
    for rows in (1, 4, 16, 64):
        sampler = ContinuousSampler(run_dir, [context], length, batch_size=rows, threads=threads, **SAMPLING)
        try:
            list(sampler.generate([(i, 0, sample_seed(7, i)) for i in range(rows)]))  # compile
            sampler.steps = 0
            started = time.perf_counter()
            list(sampler.generate([(i, 0, sample_seed(7, i)) for i in range(4 * rows)]))
            seconds = time.perf_counter() - started
            per_step = seconds / sampler.steps
            flops = rows * shape.flops_per_token(len(context) - 1 + length)
            lines.append(f"  {rows:3d} rows: {1000 * per_step:7.3f} ms/step, {1e6 * per_step / rows:7.1f} us/row-step, "
                         f"{flops / per_step / 1e9:6.2f} GFLOP/s = {flops / per_step / peak:6.1%} of peak")
        finally:
            sampler.close()
    return lines


# --- the backends ---------------------------------------------------------------------------------


def run_gpt2_simple(run_dir: Path, samples: int, length: int, seed: int, threads: int, shape):
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
        return time.perf_counter() - started, texts, samples * length * shape.flops_per_token(length // 2)
    finally:
        sess.close()


def run_ours(sampler, samples: int, seed: int, shape, cache_len: int):
    from generator.generate.driver import sample_seed

    context = sampler.prompts[0]
    sampler.steps = 0
    started = time.perf_counter()
    rows = dict(sampler.generate([(index, 0, sample_seed(seed, index)) for index in range(samples)]))
    texts = [sampler.encoder.decode(context + rows[index].tokens) for index in range(samples)]
    # Every slot computes every step. Counted as if attention read the whole cache: an upper bound
    # at long caps, where windowed attention reads only the span the rows' positions need.
    return time.perf_counter() - started, texts, sampler.steps * sampler.rows * shape.flops_per_token(cache_len)


def run_previous(sampler, samples: int, length: int, seed: int, shape):
    from generator.textformat import START_TOKEN
    from generator.generate.driver import sample_seed

    context = sampler.encoder.encode(START_TOKEN)
    texts, work = [], 0
    started = time.perf_counter()
    for first in range(0, samples, BATCH):
        seeds = [sample_seed(seed, index) for index in range(first, min(samples, first + BATCH))]
        rows, steps = sampler.sample(context, length, seeds)
        texts += [sampler.decode(context, row) for row in rows]
        work += sum(len(row.tokens) for row in rows)  # compacted: a row is computed until it ends
    return time.perf_counter() - started, texts, work * shape.flops_per_token(length // 2)


def run_cli(run_dir: Path, backend: str, samples: int, length: int, seed: int, threads: int,
            workdir: Path | None = None) -> tuple[float, int, dict]:
    """The generate stage as a whole process; returns (wall seconds, finished samples, its manifest).

    ``workdir`` holds XLA's persistent compile cache (``<workdir>/xla-cache``): an empty
    one is a cold start, one an earlier process filled is a warm start.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.jsonl"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "GENERATOR_GENERATE__THREADS": str(threads),
               "GENERATOR_GENERATE__PROGRESS": "false", "GENERATOR_GENERATE__RESUME": "false",
               "GENERATOR_GENERATE__MASK_UNSEEN_TOKENS": "false", "GENERATOR_PATHS__WORKDIR": str(workdir or tmp)}
        command = [sys.executable, "-m", "generator", "generate", "--checkpoint-dir", str(run_dir.parent),
                   "--run-name", run_dir.name, "--samples", str(samples), "--batch-size", str(BATCH),
                   "--length", str(length), "--backend", backend, "--conditioning", "none", "--seed", str(seed),
                   "--temperature", str(SAMPLING["temperature"]), "--top-k", str(SAMPLING["top_k"]),
                   "--top-p", str(SAMPLING["top_p"]), "--out", str(out)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        finished = sum(json.loads(line)["terminated"] for line in out.read_text().splitlines())
        manifest = json.loads(out.with_name("samples.manifest.json").read_text())
    return seconds, finished, manifest


def phases_line(wall: float, manifest: dict) -> str:
    """Where a whole process's seconds went: start-up phases (ours), sampling, and the rest."""
    startup = manifest.get("startup") or {}
    parts = [("tensorflow import", startup.get("import_seconds")), ("graph", startup.get("graph_seconds")),
             ("compile", startup.get("compile_seconds")), ("first sample", startup.get("first_sample_seconds")),
             ("sampling", manifest.get("sampling_seconds"))]
    if not startup:  # gpt-2-simple: imports, graph, weights and generation are one stretch
        parts = [("stage (import, graph, weights, generation)", manifest.get("seconds"))]
    stage = manifest.get("seconds") or 0.0
    known = ", ".join(f"{name} {value:.2f}" for name, value in parts if value is not None)
    return f"{wall:7.2f} s = {known}; process start, config and the rest {wall - stage:.2f}"


def whole_process(run_dir: Path, settings: list[tuple[str, int, int]], rounds: int, seed: int, threads: int,
                  scratch: Path) -> dict:
    """gpt-2-simple against ours with a cold and a warm compile cache, each a whole process, best of ``rounds``.

    Returns {(setting, side): (seconds, finished, manifest)}; prints each run's phases.
    """
    import shutil

    best: dict = {}
    warm = {name: scratch / f"warm-{length}" for name, length, _ in settings}
    for name, length, _ in settings:  # fill each warm cache once (untimed): any sample count, same program
        run_cli(run_dir, "fast", BATCH, length, seed, threads, warm[name])
    for round_number in range(rounds):
        for name, length, samples in settings:
            for side, backend in (("gpt-2-simple", "gpt2-simple"), ("ours, cold cache", "fast"),
                                  ("ours, warm cache", "fast")):
                cold = scratch / f"cold-{round_number}-{length}"
                shutil.rmtree(cold, ignore_errors=True)
                workdir = warm[name] if side.endswith("warm cache") else cold
                seconds, finished, manifest = run_cli(run_dir, backend, samples, length, seed, threads, workdir)
                print(f"  whole process {name:16s} {side:18s} {finished:4d}/{samples} finished: "
                      f"{phases_line(seconds, manifest)}", flush=True)
                key = (name, side)
                if key not in best or finished / seconds > best[key][1] / best[key][0]:
                    best[key] = (seconds, finished, manifest)
    return best


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
    parser.add_argument("--train-steps", type=int, default=800)
    parser.add_argument("--samples", type=int, default=64, help="samples per backend and in-process setting")
    parser.add_argument("--tight-length", type=int, default=96)
    parser.add_argument("--tight-samples", type=int, default=1024, help="samples of the whole-process tight run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; each backend's best counts")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow/PyTorch threads (0 = all cores)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-hf", action="store_true", help="skip HF transformers")
    parser.add_argument("--whole-only", action="store_true", help="only the whole-process runs (cold and warm)")
    parser.add_argument("--scratch", type=Path, default=ROOT / "var" / "bench" / "compile-caches",
                        help="where the whole-process runs keep their compile caches")
    args = parser.parse_args()
    if not args.catalog.is_file():
        print(f"error: catalog {args.catalog} not found (fix: pass --catalog)", file=sys.stderr)
        return 2

    from generator.models.gpt2.forward import Shape

    run_dir = prepare_checkpoint(args.catalog, args.cache, args.train_steps, args.threads)
    shape = Shape.from_hparams(json.loads((run_dir / "hparams.json").read_text()))

    peak = matmul_peak(args.threads)
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.threads or 'all'} thread(s), float32 1024^3)", flush=True)
    print(f"load: {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} cores)", flush=True)
    whole_settings = [(f"tight (L={args.tight_length})", args.tight_length, args.tight_samples),
                      ("seed (L=1023)", 1023, args.samples)]
    print("whole processes (the generate CLI per run; phases from its manifest):", flush=True)
    whole = whole_process(run_dir, whole_settings, args.rounds, args.seed, args.threads, args.scratch)
    ratios = [] if args.whole_only else in_process(args, run_dir, shape, peak)
    print()
    print(f"whole process, batch {BATCH}, {args.threads or 'all'} thread(s), best of {args.rounds} rounds; "
          f"load {os.getloadavg()[0]:.1f} at the end:")
    for (name, side), (seconds, finished, manifest) in whole.items():
        print(f"  {name:16s} {side:18s} {finished:5d} finished, {finished / seconds:7.2f} finished/s: "
              f"{phases_line(seconds, manifest)}")
    for (name, _, _), target in zip(whole_settings, (2.0, 10.0)):
        reference = whole[(name, "gpt-2-simple")]
        for side in ("ours, cold cache", "ours, warm cache"):
            ours = whole[(name, side)]
            ratios.insert(0, (f"{side} / gpt-2-simple, {name}, whole process",
                              (ours[1] / ours[0]) / (reference[1] / reference[0]), target))
    print()
    for label, ratio, target in ratios:
        print(f"{label:56s} {ratio:6.2f}x  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})")
    return 0


def in_process(args, run_dir: Path, shape, peak: float) -> list[tuple[str, float, float]]:
    """The in-process comparison (model in memory to texts): prints its tables, returns its ratios."""
    from generator.textformat import END_TOKEN, START_TOKEN
    from generator.generate.sampler import ContinuousSampler
    from generator.generate.reference_loop import FastSampler
    from generator.generate.rows import end_marker_table

    tight = args.tight_length
    settings = [("seed (L=1023)", 1023), (f"tight (L={tight})", tight)]
    setup, samplers = {}, {}
    previous_started = time.perf_counter()
    previous = FastSampler(run_dir, threads=args.threads, **SAMPLING)
    setup[PREVIOUS] = time.perf_counter() - previous_started
    context = previous.encoder.encode(START_TOKEN)
    for name, length in settings:
        started = time.perf_counter()
        samplers[name] = ContinuousSampler(run_dir, [context], length, batch_size=BATCH, threads=args.threads,
                                           **SAMPLING)
        list(samplers[name].generate([(0, 0, [0, 0])]))  # XLA compiles on the first run
        setup[f"{OURS} {name}"] = time.perf_counter() - started
    ops = {"previous loop (TF executor, gpt-2-simple's graph): TF ops per step": loop_ops(previous.graph),
           "ours: TF ops per step, fused by XLA into one compiled loop per chunk of samples":
           loop_ops(samplers[settings[1][0]].graph)}

    print("our decoding step against rows (tight cap):", flush=True)
    profile = step_profile(run_dir, shape, context, tight, args.threads, peak)
    print("\n".join(profile), flush=True)

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
            probe = previous.encoder.encode(run_dir.joinpath("..", "..", "ingest", "val.txt").resolve()
                                            .read_text(encoding="utf-8")[:2000])[:300]
            error = check_logits(model, run_dir, probe)
            print(f"HF conversion: max |logit difference| vs TensorFlow over {len(probe)} tokens = {error:.2e}")
            if error > 1e-3:
                raise ValueError(f"converted logits differ by {error}")
            strings = [previous.encoder.decoder.get(i, "") for i in range(model.config.vocab_size)]
            marker = "".join(previous.encoder.byte_encoder[b] for b in END_TOKEN.encode("utf-8"))
            hf = (model, end_marker_table(strings, marker))
        except ImportError as exc:
            print(f"HF transformers skipped: {exc} (pip install -e '.[bench]')")

    best: dict[tuple[str, str], Result] = {}

    def record(backend, setting, seconds, texts, flops):
        result = Result(backend, setting, len(texts), finished_count(texts, START_TOKEN), seconds, flops)
        print(f"  {backend:20s} {setting:16s} {result.finished:4d}/{result.samples} finished in {seconds:7.2f} s",
              flush=True)
        key = (backend, setting)
        if key not in best or result.rate > best[key].rate:
            best[key] = result

    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds} in process", flush=True)
        for setting, length in settings:
            record("gpt-2-simple", setting, *run_gpt2_simple(run_dir, args.samples, length, args.seed, args.threads,
                                                              shape))
            cache_len = min(shape.n_ctx, len(context) - 1 + samplers[setting].length)
            record(OURS, setting, *run_ours(samplers[setting], args.samples, args.seed, shape, cache_len))
            record(PREVIOUS, setting, *run_previous(previous, args.samples, length, args.seed, shape))
            if hf:
                seconds, texts, work = run_hf(hf[0], previous.encoder, hf[1], args.samples, length, args.seed)
                record("hf", setting, seconds, texts, work * shape.flops_per_token(length // 2))
    previous.close()
    for sampler in samplers.values():
        sampler.close()

    print()
    print(f"checkpoint: {run_dir} (tiny profile, {args.train_steps} steps); batch {BATCH}; "
          f"{', '.join(f'{k}={v}' for k, v in SAMPLING.items())}; {args.threads or 'all'} thread(s); "
          f"best of {args.rounds} rounds; matmul peak {peak / 1e9:.1f} GFLOP/s")
    print("one-time set-up, not timed in-process: " + ", ".join(f"{k} {v:.1f} s" for k, v in setup.items()))
    print("; ".join(f"{k}: {v}" for k, v in ops.items()))
    print("our decoding step against rows:\n" + "\n".join(profile))
    print(f"{'setting':16s} {'backend':20s} {'finished':>9s} {'seconds':>8s} {'finished/s':>10s} {'GFLOP/s':>8s} "
          f"{'of peak':>8s}")
    for setting, _ in settings:
        for backend in ("gpt-2-simple", OURS, PREVIOUS, "hf"):
            r = best.get((backend, setting))
            if r:
                achieved = r.flops / r.seconds
                print(f"{setting:16s} {backend:20s} {r.finished:4d}/{r.samples:<4d} {r.seconds:8.2f} {r.rate:10.2f} "
                      f"{achieved / 1e9:8.2f} {achieved / peak:8.1%}")
    print()
    seed_setting, tight_setting = settings[0][0], settings[1][0]
    ratios = []
    for label, setting, other, target in [
            ("ours / gpt-2-simple, seed settings", seed_setting, "gpt-2-simple", 20.0),
            ("ours / gpt-2-simple, tight cap, in-process", tight_setting, "gpt-2-simple", 2.0),
            ("ours / our previous loop, tight cap", tight_setting, PREVIOUS, 1.0),
            ("ours / HF transformers, seed settings", seed_setting, "hf", 2.0),
            ("ours / HF transformers, tight cap", tight_setting, "hf", 2.0)]:
        if (other, setting) in best:
            ratios.append((label, best[(OURS, setting)].rate / max(best[(other, setting)].rate, 1e-9), target))
    return ratios


if __name__ == "__main__":
    sys.exit(main())
