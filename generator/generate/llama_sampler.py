"""The Llama family's sampler: static batches over a key/value cache, one compiled call per batch.

A run (:mod:`generator.models.llama.run`: the base GGUF with its LoRA or full-tune arrays folded
in, fp32) is read once. Each sample's request is its generation prefix rendered as chat
(:func:`generator.textformat.chat_prompt`): the model writes the assistant's reply and closes its
turn with ``<|im_end|>``, the end marker (``<|endoftext|>``, id 0, ends a sample too; an
``<|im_start|>`` before either opens a new turn: the sample ends there, unterminated).

One call of the compiled function (``tf.function``, XLA) samples a whole batch:

* the optional few-shot block (``generate.few_shot`` catalog examples as earlier exchanges,
  one draw per batch) is read once at batch 1 and its cache given to every row;
* the rows' requests, left-padded to one width, are read in one prefill after it;
* a ``tf.while_loop`` then samples and decodes one token per row per step, every row at the
  same column, until every row has ended or the length cap is reached. A row that ended keeps
  computing (its tokens are ignored): the batch stays one static shape, and measured on the 135M
  model, the loop ends when its last row does (see ``bench/bench_llama_generate.py``).

Shapes are fixed per sampler (rows = ``batch_size``; prompt and block widths from the longest
prompt and the longest possible block), so XLA compiles once; a short last batch is padded with
inactive rows. Randomness and filtering are the GPT-2 fast sampler's: token ``n`` of sample
``index`` is drawn by inverse CDF from the ``n``-th number of ``default_rng(sample_seed(seed,
index))``, after temperature and top-k / top-p (:func:`generator.generate.sampler.filter_logits`),
so a sample depends on its seed and index only (and, with few-shot examples, on its batch's
block), not on its batch mates or the batch size, up to float rounding.

With eager execution off (gpt-2-simple turns it off process-wide on import) the same function
runs in a graph and session of its own.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Iterable, Iterator

from ..textformat import CHAT_CLOSE, CHAT_OPEN, END_TOKEN, chat_prompt, chat_training_text, parse_sample
from .rows import Row

log = logging.getLogger(__name__)

PROMPT_STEP = 8  # prompt width rounded up to a multiple of this
BLOCK_STEP = 32  # few-shot block width likewise


def round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class LlamaSampler:
    """A Llama run's weights, tokenizer and compiled batch sampler.

    ``prompts``: every generation prefix a sample may start from (sets the prompt width);
    ``examples``: training lines for few-shot blocks; ``few_shot``: examples per block (0 = none);
    ``seen_tokens``: the token ids the training text contained: only they and the reply's end may be
    sampled (None: every token).
    """

    def __init__(self, run_dir: str | Path, length: int, *, batch_size: int, prompts: list[str],
                 examples: list[str] = (), few_shot: int = 0, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 0.0, threads: int = 0, seen_tokens: list[int] | None = None, jit: bool = True):
        import numpy as np

        from ..models.llama.run import load_run
        from ..models.llama.tokenizer import LlamaTokenizer
        from ..tf_runtime import import_tf

        tf = import_tf()
        loaded = load_run(run_dir)
        model, self.hparams = loaded.model, loaded.model.hparams
        self.tokenizer = LlamaTokenizer(model.tokenizer_fields)
        ids = {name: self.tokenizer.token_to_id(name) for name in (CHAT_CLOSE, END_TOKEN, CHAT_OPEN)}
        if ids[CHAT_CLOSE] is None:
            raise ValueError(f"the model's vocabulary has no {CHAT_CLOSE} token to end a reply with")
        self.stop_ids = sorted({ids[CHAT_CLOSE], 0 if ids[END_TOKEN] is None else ids[END_TOKEN]})
        self.restart_id = -1 if ids[CHAT_OPEN] is None else ids[CHAT_OPEN]
        self._prompt_ids: dict[str, list[int]] = {}
        self.prompt_width = round_up(max(len(self.prompt_ids(p)) for p in prompts), PROMPT_STEP)
        self.examples = [text for line in examples if (text := chat_training_text(line))]
        self.few_shot = min(few_shot, len(self.examples))
        if few_shot and not self.few_shot:
            log.warning("generate.few_shot is %d but the run records no examples: no few-shot block", few_shot)
        self.example_ids = [self.tokenizer.encode(text + "\n") for text in self.examples]
        longest_block = sum(sorted(map(len, self.example_ids))[-self.few_shot:]) if self.few_shot else 0
        self.block_width = round_up(longest_block, BLOCK_STEP)
        self.length = max(1, min(length, self.hparams.n_ctx - self.block_width - self.prompt_width))
        self.rows = batch_size
        self.temperature, self.top_k, self.top_p, self.jit = temperature, top_k, top_p, jit
        self.allowed = None
        if seen_tokens:  # the end ids too: a chat run's training text need not spell them
            self.allowed = np.zeros(self.hparams.n_vocab, bool)
            self.allowed[[t for t in list(seen_tokens) + self.stop_ids if 0 <= t < self.hparams.n_vocab]] = True
        self.steps = 0  # decoding steps run so far
        self.session = None
        if tf.executing_eagerly():
            self._call = self._eager(tf, model, threads)
        else:
            self._call = self._graph_mode(tf, model, threads)
        del model, loaded

    # --- building ------------------------------------------------------------------------------------
    def _specs(self, tf):
        B, L, Wb, Wp = self.rows, self.length, self.block_width, self.prompt_width
        return [tf.TensorSpec([1, Wb], tf.int32), tf.TensorSpec([1, Wb], tf.int32),
                tf.TensorSpec([B, Wp], tf.int32), tf.TensorSpec([B, Wp], tf.int32),
                tf.TensorSpec([B], tf.bool), tf.TensorSpec([B, L], tf.float64)]

    def _eager(self, tf, model, threads: int):
        from ..models.llama.score import as_tf_weights, set_threads

        set_threads(threads)
        self.weights = as_tf_weights(model)
        compiled = tf.function(self._sample, jit_compile=self.jit, autograph=False,
                               input_signature=self._specs(tf))
        return lambda *feeds: {key: value.numpy() for key, value in compiled(*feeds).items()}

    def _graph_mode(self, tf, model, threads: int):
        """The same function in a graph and session of its own (eager execution is off in this process)."""
        from ..models.llama.score import as_tf_weights

        graph = tf.Graph()
        with graph.as_default():
            self.weights = as_tf_weights(model)
            feeds = [tf.compat.v1.placeholder(spec.dtype, spec.shape) for spec in self._specs(tf)]
            outputs = tf.function(self._sample, jit_compile=self.jit, autograph=False)(*feeds)
            config = tf.compat.v1.ConfigProto()
            if threads > 0:
                config.intra_op_parallelism_threads, config.inter_op_parallelism_threads = threads, 1
            self.session = tf.compat.v1.Session(graph=graph, config=config)
            self.session.run(tf.compat.v1.global_variables_initializer())
        return lambda *values: self.session.run(outputs, dict(zip(feeds, values)))

    # --- the compiled batch --------------------------------------------------------------------------
    def _sample(self, block_tokens, block_mask, prompt_tokens, prompt_mask, active, uniforms):
        """Sample one batch: block, prompts, then one token per row per step until every row has ended."""
        from ..models.llama import decode
        from ..tf_runtime import import_tf

        tf = import_tf()
        hp, w, jit = self.hparams, self.weights, self.jit
        B, L, Wb, Wp = self.rows, self.length, self.block_width, self.prompt_width
        columns = Wb + Wp + L
        if Wb:
            _, block = decode.extend(w, hp, decode.empty_cache(hp, 1, Wb), block_tokens, block_mask, 0, in_place=jit)
            cache = decode.pad_columns(decode.tile_rows(block, tf.zeros([B], tf.int32)), columns)
        else:
            cache = decode.empty_cache(hp, B, columns)
        hidden, cache = decode.extend(w, hp, cache, prompt_tokens, prompt_mask, Wb, in_place=jit)
        # Hoisted out of the loop: XLA's dot is slower against a transposed operand.
        output_t = tf.transpose(w.get("output", w["embed"]))
        logits = tf.matmul(hidden[:, -1], output_t)
        stop_ids = tf.constant(self.stop_ids, tf.int32)
        allowed = None if self.allowed is None else tf.constant(self.allowed, tf.bool)

        def body(step, logits, cache, out, made, active, terminated, logprob):
            token, token_logprob = self._draw(tf, logits, uniforms[:, step], allowed)
            out = tf.where(tf.equal(tf.range(L)[None, :], step) & active[:, None], token[:, None], out)
            made = made + tf.cast(active, tf.int32)
            logprob = logprob + tf.where(active, token_logprob, 0.0)
            stopped = tf.reduce_any(tf.equal(token[:, None], stop_ids[None, :]), axis=1)
            terminated = terminated | (active & stopped)
            active = active & ~stopped & tf.not_equal(token, self.restart_id) & (made < L)
            hidden, cache = decode.extend(w, hp, cache, token[:, None], tf.ones([B, 1], tf.int32), Wb + Wp + step,
                                          in_place=jit)
            return step + 1, tf.matmul(hidden[:, 0], output_t), cache, out, made, active, terminated, logprob

        state = [tf.constant(0), logits, cache, tf.zeros([B, L], tf.int32), tf.zeros([B], tf.int32), active,
                 tf.zeros([B], tf.bool), tf.zeros([B], tf.float32)]
        steps, _, _, out, made, _, terminated, logprob = tf.while_loop(
            lambda step, logits, cache, out, made, active, *_: (step < L) & tf.reduce_any(active), body, state)
        return {"steps": steps, "tokens": out, "made": made, "terminated": terminated, "logprob": logprob}

    def _draw(self, tf, logits, uniforms, allowed):
        """The sampled token of each row and its log-probability (temperature 1, unfiltered)."""
        from .sampler import filter_logits, inverse_cdf

        scaled = logits / tf.cast(self.temperature, tf.float32)
        if allowed is not None:
            scaled = tf.where(allowed[None, :], scaled, -1e10)
        token = inverse_cdf(tf, filter_logits(tf, scaled, top_k=self.top_k, top_p=self.top_p), uniforms)
        return token, tf.gather(tf.nn.log_softmax(logits), token, batch_dims=1)

    # --- prompts, blocks, records ----------------------------------------------------------------------
    def prompt_ids(self, prefix: str) -> list[int]:
        """The tokens of a generation prefix's chat request (cached: a night has few distinct ones)."""
        if prefix not in self._prompt_ids:
            self._prompt_ids[prefix] = self.tokenizer.encode(chat_prompt(prefix))
        return self._prompt_ids[prefix]

    def block_ids(self, stream: list[int]) -> list[int]:
        """The few-shot block drawn from random ``stream``: ``few_shot`` distinct examples, as exchanges."""
        import numpy as np

        if not self.few_shot:
            return []
        chosen = np.random.default_rng(stream).choice(len(self.examples), self.few_shot, replace=False)
        return [token for index in chosen for token in self.example_ids[int(index)]]

    def record(self, prefix: str, row: Row, titled: bool = False) -> dict:
        """The samples-JSONL record of a row, parsed as the GPT-2 family's raw text would be."""
        ended = row.tokens and (row.tokens[-1] in self.stop_ids or row.tokens[-1] == self.restart_id)
        reply = self.tokenizer.decode(row.tokens[:-1] if ended else row.tokens)
        return parse_sample(prefix + " " + reply + (END_TOKEN if row.terminated else ""), prefix, titled)

    # --- running -----------------------------------------------------------------------------------------
    def _run(self, block: list[int], jobs: list[tuple[int, str, list]]) -> list[tuple[int, Row]]:
        import numpy as np

        B, L, Wb, Wp = self.rows, self.length, self.block_width, self.prompt_width
        block_tokens, block_mask = np.zeros((1, Wb), np.int32), np.zeros((1, Wb), np.int32)
        block_tokens[0, :len(block)], block_mask[0, :len(block)] = block, 1
        tokens, mask = np.zeros((B, Wp), np.int32), np.zeros((B, Wp), np.int32)
        active, uniforms = np.zeros(B, bool), np.zeros((B, L))
        for row, (index, prefix, seed) in enumerate(jobs):
            ids = self.prompt_ids(prefix)
            tokens[row, Wp - len(ids):], mask[row, Wp - len(ids):] = ids, 1  # left-padded: every row ends at Wp
            active[row] = True
            uniforms[row] = np.random.default_rng(seed).random(L)
        result = self._call(block_tokens, block_mask, tokens, mask, active, uniforms)
        self.steps += int(result["steps"])
        finished = []
        for row, (index, _, _) in enumerate(jobs):
            made = int(result["made"][row])
            finished.append((index, Row(result["tokens"][row, :made].tolist(), bool(result["terminated"][row]),
                                        float(result["logprob"][row]) / made if made else None)))
        return finished

    def generate(self, batches: Iterable[tuple[list[int], list[tuple[int, str, list]]]]) -> Iterator[tuple[int, Row]]:
        """Samples of ``batches`` = (few-shot block stream, [(index, prefix, seed), ...]), as (index, Row).

        An empty list (not an exhausted iterator) runs one batch of inactive rows: XLA compiles the
        function, or loads it from the persistent cache (the driver's warm-up).
        """
        if isinstance(batches, list) and not batches:
            self._run([], [])
            return
        for stream, jobs in batches:
            for first in range(0, len(jobs), self.rows):
                yield from self._run(self.block_ids(stream), jobs[first:first + self.rows])

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def block_stream(seed: int, first: int) -> list[int]:
    """The random stream drawing the few-shot block of the batch starting at sample ``first``."""
    return [seed & 0xFFFFFFFFFFFFFFFF, first, 2]


def run_identity(run_dir: Path) -> tuple[str, str]:
    """(name, sha256) of what a Llama run samples from: its record (which pins the base) and its latest step."""
    from ..models.llama import run

    step = run.latest_step(run_dir)
    digest = hashlib.sha256((run_dir / run.FAMILY_FILE).read_bytes())
    if step:
        with open(run.weights_path(run_dir, step), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return (run.weights_path(run_dir, step).name if step else "base"), digest.hexdigest()


def generate_llama(run_dir: str | Path, out_path: str | Path, settings, length: int, prefixes: list[str],
                   prompts: list[str] | None = None, titled: bool = False) -> dict:
    """Write ``settings.samples`` samples of a Llama run to ``out_path``: the driver's resumable, ordered output.

    ``prefixes``: each sample's generation prefix, by index; ``prompts``: every prefix the caller's
    runs may use (the sampler's prompt width covers them all, so a later run reuses it). Batches are
    the driver's (``plan_batches``); with ``generate.few_shot``, batch ``first`` shows the examples
    drawn from ``block_stream(seed, first)``. Returns extra fields for the manifest.
    """
    from ..checkpoints import read_generation_info
    from ..models.llama import run
    from .driver import _sampler, import_tensorflow, plan_batches, resume_fingerprint, sample_seed, write_samples

    run_dir = Path(run_dir)
    run.check_base(run.read_family(run_dir))  # a missing or changed base fails here, before any output
    startup = import_tensorflow()
    fingerprint = resume_fingerprint(run_dir, settings, length, checkpoint=run_identity(run_dir))
    info = read_generation_info(run_dir)
    seen = info.get("seen_tokens") if settings.mask_unseen_tokens else None
    examples = [str(line) for line in info.get("examples") or []] if settings.few_shot else []
    distinct = sorted(set(prompts or []) | set(prefixes))

    def build() -> LlamaSampler:
        return LlamaSampler(run_dir, length, batch_size=settings.batch_size, prompts=distinct, examples=examples,
                            few_shot=settings.few_shot, temperature=settings.temperature, top_k=settings.top_k,
                            top_p=settings.top_p, threads=settings.threads, seen_tokens=seen)

    def start(resumed: int):
        key = (fingerprint["run_dir"], fingerprint["checkpoint"], fingerprint["checkpoint_index_sha256"], "llama",
               tuple(distinct), tuple(examples), settings.few_shot, length, settings.batch_size, settings.temperature,
               settings.top_k, settings.top_p, settings.threads, hashlib.sha256(repr(seen).encode()).hexdigest())
        sampler = _sampler(key, build, startup)
        batches = ((block_stream(settings.seed, first),
                    [(index, prefixes[index], sample_seed(settings.seed, index)) for index in range(first, first + rows)])
                   for first, rows in plan_batches(settings) if first >= resumed)
        return sampler, sampler.generate(batches), lambda index, row: sampler.record(prefixes[index], row, titled)

    stats = write_samples(out_path, settings, fingerprint, start, startup)
    return {**stats, "conditions_used": len(set(prefixes[stats["resumed_from"]:]))}
