"""LoRA fine-tuning of SmolLM2-135M on N cores: seconds per step against the arithmetic limit, and what it learns.

Speed: LoRA training steps (rank 8, alpha 16, all seven projections, the bundled catalog's
chat-rendered lines) at batch 4 and 8, the frozen weights in bfloat16 (the default,
``train.frozen_dtype``) and in float32, each timed after a warm-up step, with this machine's float32
and bfloat16 matmul peaks (1024^3) measured in the same process before every step (a shared
machine's load moves both). The limit counts the matmuls a LoRA step cannot avoid, per real
(unpadded) token:

    4 x 106.2M (30 blocks' frozen projections: forward and the input's gradient, no weight gradient)
  + 4 x  28.3M per reply token (the tied output head, only where the loss is)
  + 6 x   2.4M (the adapters: forward, input and weight gradients)
  + 12 x n_head x head_dim x T per token and layer (attention scores and mixing, forward and backward)

so about 4 x 135M x tokens, as for any frozen-base adapter. Quality: the held-out loss (mean
negative log-likelihood per reply token on val.txt, the promotion gate's measure) of the untrained
base and after each of ``--checkpoints`` steps (bfloat16 training), for each learning rate. The
ratio is the limit's seconds over the measured ones against the matmul peak of the step's own type.
Figures and ratios last.

    .venv/bin/python bench/bench_llama_train.py [--threads 2] [--timed-steps 3] [--checkpoints 30,60]
        [--learning-rates 0.001] [--batch-size 8] [--dtypes bfloat16,float32]
        [--catalog sample_data/catalog.csv] [--speed-only]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.models.llama import examples as chat  # noqa: E402
from generator.models.llama import model_file, run, train_loop  # noqa: E402


def eager_matmul_peak(tf, dtype: str = "float32", best_of: int = 5) -> float:
    """FLOP/s of a 1024^3 matmul in ``dtype`` as a tf.function (eager stays on for the training after it)."""
    a = tf.cast(tf.random.normal([1024, 1024]), dtype)
    b = tf.cast(tf.random.normal([1024, 1024]), dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(best_of):
        started = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * 1024 ** 3 / best


def step_flops(hp, batch, lora_parameters: int) -> float:
    """The unavoidable FLOPs of one LoRA step on ``batch`` (tokens, mask, reply), real tokens only."""
    _, mask, reply = batch
    tokens = float(mask.sum())
    replies = float(reply[:, 1:].sum())
    blocks = hp.n_layer * (hp.n_embd * (hp.n_head + 2 * hp.n_head_kv) * hp.head_dim
                           + hp.n_head * hp.head_dim * hp.n_embd + 3 * hp.n_embd * hp.n_ff)
    head = hp.n_vocab * hp.n_embd
    return 4 * blocks * tokens + 4 * head * replies + 6 * lora_parameters * tokens + attention_flops(hp, mask)


def full_step_flops(hp, batch, parameters: int) -> float:
    """A full fine-tune's step on ``batch``: 6 x parameters per real token (forward and both gradients), plus attention."""
    _, mask, _ = batch
    return 6 * parameters * float(mask.sum()) + attention_flops(hp, mask)


def attention_flops(hp, mask) -> float:
    """Attention's own FLOPs in a training step (the score and mixing matmuls, forward and backward), real tokens only."""
    lengths = mask.sum(axis=1).astype(float)
    return 12 * hp.n_layer * hp.n_head * hp.head_dim * float((lengths ** 2).sum())


def speed(model, items, adapter, batch_sizes, timed_steps, threads, tf, frozen_dtype) -> list[dict]:
    from generator.models.llama.lora import initial_arrays, trainable_parameters
    from generator.models.llama.trainer import LlamaNetwork

    arrays = initial_arrays(model, adapter, seed=1)
    lora_parameters = trainable_parameters(arrays)
    started = time.perf_counter()
    network = LlamaNetwork(model, adapter, arrays, learning_rate=1e-3, threads=threads, frozen_dtype=frozen_dtype)
    print(f"{frozen_dtype}: network built in {time.perf_counter() - started:.1f} s; "
          f"{lora_parameters / 1e6:.2f}M trainable parameters", flush=True)
    rows, step = [], 0
    for batch_size in batch_sizes:
        step += 1
        warm = time.perf_counter()
        network.train_step(chat.pad_batch([items[i] for i in chat.step_items(len(items), batch_size, 7, step)], 2))
        print(f"{frozen_dtype} batch {batch_size}: first step (trace, optimise, run) "
              f"{time.perf_counter() - warm:.1f} s", flush=True)
        for _ in range(timed_steps):
            step += 1
            batch = chat.pad_batch([items[i] for i in chat.step_items(len(items), batch_size, 7, step)], 2)
            peaks = {dtype: eager_matmul_peak(tf, dtype) for dtype in ("float32", "bfloat16")}
            started = time.perf_counter()
            network.train_step(batch)
            seconds = time.perf_counter() - started
            flops = step_flops(model.hparams, batch, lora_parameters)
            rows.append({"dtype": frozen_dtype, "batch": batch_size, "tokens": int(batch[1].sum()),
                         "seconds": seconds, "flops": flops, "peaks": peaks})
            print(f"{frozen_dtype} batch {batch_size} x {batch[0].shape[1]} ({int(batch[1].sum())} real tokens): "
                  f"{seconds:.2f} s, {flops / seconds / 1e9:.1f} GFLOP/s; matmul peaks float32 "
                  f"{peaks['float32'] / 1e9:.0f}, bfloat16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s", flush=True)
    network.close()
    return rows


def quality(work: Path, ingest_dir: Path, adapter: dict, checkpoints, learning_rate: float, batch_size: int,
            threads: int, base_loss=None) -> dict:
    """Held-out loss of the base and after each checkpoint's steps, one run trained straight through."""
    run_dir = work / f"run-lr{learning_rate:g}"
    shutil.rmtree(run_dir, ignore_errors=True)
    path, digest = model_file.base_file()
    val = ingest_dir / "val.txt"
    run.write_family(run_dir, path, digest, adapter)
    losses = {0: base_loss if base_loss is not None else train_loop.held_out_loss(run_dir, val, threads=threads)}
    print(f"lr {learning_rate:g}: held-out loss at step 0 (the base): {losses[0]:.4f}", flush=True)
    current, seconds = 0, 0.0
    for target in checkpoints:
        loop = train_loop.LoopSettings(steps_to=target, batch_size=batch_size, learning_rate=learning_rate,
                                       save_every=target, keep=1, seed=1234, threads=threads,
                                       frozen_dtype="bfloat16")
        started = time.perf_counter()
        train_loop.finetune(run_dir, ingest_dir / "train.txt", current, loop, resume_optimizer=True)
        seconds += time.perf_counter() - started
        current = target
        losses[target] = train_loop.held_out_loss(run_dir, val, threads=threads)
        print(f"lr {learning_rate:g}: held-out loss after {target} steps of batch {batch_size}: "
              f"{losses[target]:.4f} ({seconds:.0f} s of training so far)", flush=True)
    return {"learning_rate": learning_rate, "losses": losses, "train_seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--batch-sizes", default="4,8")
    parser.add_argument("--checkpoints", default="30,60")
    parser.add_argument("--learning-rates", default="0.001")
    parser.add_argument("--batch-size", type=int, default=8, help="batch of the quality runs")
    parser.add_argument("--catalog", default=str(ROOT / "sample_data" / "catalog.csv"))
    parser.add_argument("--dtypes", default="bfloat16,float32", help="frozen weights' types to time")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()

    from generator.ingest import IngestSettings, ingest
    from generator.models.llama.gguf_weights import load_llama_gguf
    from generator.models.llama.tokenizer import LlamaTokenizer
    from generator.tf_runtime import import_tf
    from generator.train import TrainSettings

    from generator.models.llama.score import set_threads

    set_threads(args.threads)
    tf = import_tf()
    work = Path(tempfile.mkdtemp(prefix="bench-llama-train-"))
    try:
        ingest(args.catalog, work / "ingest", IngestSettings())
        adapter = TrainSettings().adapter_record()
        model = load_llama_gguf(model_file.base_file()[0])
        items = chat.chat_examples(chat.read_lines(work / "ingest" / "train.txt"),
                                   LlamaTokenizer(model.tokenizer_fields), model.hparams.n_ctx)
        rows = [row for dtype in args.dtypes.split(",") for row in
                speed(model, items, adapter, [int(b) for b in args.batch_sizes.split(",")], args.timed_steps,
                      args.threads, tf, dtype)]
        del model
        results = []
        if not args.speed_only:
            checkpoints = [int(c) for c in args.checkpoints.split(",")]
            base_loss = None
            for rate in (float(r) for r in args.learning_rates.split(",")):
                results.append(quality(work, work / "ingest", adapter, checkpoints, rate, args.batch_size,
                                       args.threads, base_loss))
                base_loss = results[-1]["losses"][0]
        report(rows, results, items)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(rows: list[dict], results: list[dict], items) -> None:
    import statistics

    print()
    print(f"{len(items)} training lines, {statistics.mean(len(e.ids) for e in items):.1f} tokens each "
          f"({statistics.mean(chat.reply_tokens(e) for e in items):.1f} of them the reply)")
    for result in results:
        losses = ", ".join(f"step {step}: {loss:.4f}" for step, loss in result["losses"].items())
        print(f"held-out loss per reply token, lr {result['learning_rate']:g}: {losses} "
              f"({result['train_seconds']:.0f} s of training)")
    groups = sorted({(row["dtype"], row["batch"]) for row in rows})
    for dtype, batch in groups:
        mine = [row for row in rows if (row["dtype"], row["batch"]) == (dtype, batch)]
        print(f"{dtype} batch {batch}: {statistics.median(row['seconds'] for row in mine):.2f} s/step (median of "
              f"{len(mine)}), {statistics.median(row['tokens'] for row in mine):.0f} real tokens/step, "
              f"{statistics.median(row['tokens'] / row['seconds'] for row in mine):.0f} tokens/s, "
              f"{statistics.median(row['flops'] / row['seconds'] for row in mine) / 1e9:.1f} GFLOP/s")
    for dtype, batch in groups:
        mine = [row for row in rows if (row["dtype"], row["batch"]) == (dtype, batch)]
        shares = {peak: statistics.median(row["flops"] / row["peaks"][peak] / row["seconds"] for row in mine)
                  for peak in ("float32", "bfloat16")}
        print(f"ratio {dtype} batch {batch}: limit / measured = {shares[dtype]:.1%} of the {dtype} matmul peak "
              f"({shares['float32']:.1%} of float32's)")

if __name__ == "__main__":
    sys.exit(main())
