"""Continuous-batching sampler: a fixed set of row slots, each refilled as soon as its sample ends.

The early-stopping loop of :mod:`generator.generate.reference_loop` runs a batch until its
slowest row ends, shrinking the batch as rows finish; at a tight length cap it
spends most of its time on per-step overhead with few rows left. Here the batch
never shrinks: ``batch_size`` slots decode side by side and a slot whose sample
wrote the end marker (or reached the cap) takes the next sample of the queue at
the very next step. That needs per-row positions and a masked KV cache, which
gpt-2-simple's ``model.model`` lacks, so the network is
:func:`generator.models.gpt2.forward.decode_step` over the same checkpoint variables.

* Prompts: the distinct prompts of a job (``<|startoftext|>`` plus a control
  prefix) are few; each one's keys and values (all but its last token, like
  gpt-2-simple's prefill) are computed once at set-up and copied into a slot's
  cache when a sample starts there, so a sample costs exactly one decoding step
  per new token.
* One ``session.run`` feeds a chunk of the queue and runs the whole decoding
  loop in-graph, compiled by XLA (``tf.function(jit_compile=True)``): one
  fused program per step instead of hundreds of TensorFlow kernel launches.
  Slots still busy when the chunk's last sample has started keep their state
  (TF variables) for the next run; the last run drains them.
* Randomness: sample ``index`` draws its ``n``-th token by inverse CDF from the
  ``n``-th number of ``numpy.random.default_rng(sample_seed(seed, index))`` --
  the streams of :class:`generator.generate.reference_loop.FastSampler` -- so a sample
  depends on neither its slot, its batch mates, the batch size nor refills (up
  to float rounding in differently shaped matrix products).
* Filtering is gpt-2-simple's: temperature, then ``top_k`` or nucleus ``top_p``
  (its sort-based thresholds found by bisection over the logits' bit patterns,
  :func:`filter_logits`, because sorting is slow under XLA on CPU). ``allowed`` tokens
  (those seen in training) are applied before filtering: the others get
  -1e10, like gpt-2-simple's filtered tokens, so they are never drawn.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

from ..checkpoints import latest_checkpoint, read_hparams, run_encoder
from ..models.gpt2.forward import Shape, cache_shape, decode_step, empty_cache, model_variables, restore
from ..textformat import END_TOKEN
from .rows import Row, end_marker_table

log = logging.getLogger(__name__)

def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


CDF_BLOCK = 64  # inverse CDF: block sums first, then one block's running sum


def sortable_keys(tf, values):
    """int64 keys ordered like the float32 ``values`` (IEEE bits, negatives flipped)."""
    bits = tf.bitcast(values, tf.int32)
    return tf.cast(tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, 0x7FFFFFFF), bits), tf.int64)


def lowest_kept_key(tf, keys, weights, limit):
    """Per row, the least key K with (sum of ``weights`` of entries whose key > K) < ``limit``.

    Bisection over the integer key space (at most 33 passes, each one masked
    sum): the exact threshold of a sort-based rule without sorting, which XLA
    on CPU does slowly (TopK and sort both lower to a full sort there).
    """
    low = tf.reduce_min(keys, axis=1) - 1  # everything lies above: the sum is the whole row, >= limit
    high = tf.reduce_max(keys, axis=1)  # nothing lies above: 0 < limit

    def body(low, high):
        middle = low + (high - low) // 2
        above = tf.reduce_sum(tf.where(keys > middle[:, tf.newaxis], weights, tf.zeros_like(weights)), axis=1)
        below_limit = above < limit
        return tf.where(below_limit, low, middle), tf.where(below_limit, middle, high)

    _, high = tf.while_loop(lambda low, high: tf.reduce_any(high - low > 1), body, [low, high],
                            maximum_iterations=34)
    return high


def filter_logits(tf, logits, *, top_k: int, top_p: float):
    """gpt-2-simple's ``top_k_logits`` / ``top_p_logits``, static-shaped and sort-free for XLA.

    top-p: gpt-2-simple sorts, takes the softmax and keeps each token whose
    exclusive cumulative probability is below ``p``. For distinct logits that
    cumulative probability is the mass of the strictly larger logits, so the
    kept tokens are those whose key is at least :func:`lowest_kept_key` of the
    probabilities. top-k likewise with counts. Only the order of float
    additions differs from gpt-2-simple (a token's fate can differ only when its
    cumulative probability is within rounding of ``p``).
    """
    drop = tf.cast(-1e10, logits.dtype)
    keys = sortable_keys(tf, logits)
    if top_p > 0.0:
        threshold = lowest_kept_key(tf, keys, tf.nn.softmax(logits), tf.cast(top_p, logits.dtype))
    elif top_k > 0:
        threshold = lowest_kept_key(tf, keys, tf.ones_like(logits), tf.cast(min(top_k, logits.shape[-1]), logits.dtype))
    else:
        return logits
    return tf.where(keys < threshold[:, tf.newaxis], drop, logits)


def inverse_cdf(tf, logits, uniforms):
    """The token whose CDF step holds ``uniforms``, over exp(logit - max) as TF's Multinomial kernel.

    The running sum is float64 like that kernel's, taken in two levels (block
    sums, then within the chosen block) because a vocabulary-long cumsum is
    slow under XLA on CPU; only the order of float additions differs.
    """
    vocab = logits.shape[-1]
    blocks = -(-vocab // CDF_BLOCK)
    weights = tf.cast(tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)), tf.float64)
    weights = tf.reshape(tf.pad(weights, [[0, 0], [0, blocks * CDF_BLOCK - vocab]]), [-1, blocks, CDF_BLOCK])
    block_cdf = tf.cumsum(tf.reduce_sum(weights, axis=2), axis=1)
    target = uniforms * block_cdf[:, -1]
    block = tf.minimum(tf.reduce_sum(tf.cast(block_cdf <= target[:, tf.newaxis], tf.int32), axis=1), blocks - 1)
    before = tf.gather(tf.pad(block_cdf, [[0, 0], [1, 0]]), block, batch_dims=1)
    inner_cdf = before[:, tf.newaxis] + tf.cumsum(tf.gather(weights, block, batch_dims=1), axis=1)
    inner = tf.reduce_sum(tf.cast(inner_cdf <= target[:, tf.newaxis], tf.int32), axis=1)  # searchsorted(right)
    return tf.minimum(block * CDF_BLOCK + inner, vocab - 1)


class _Loop:
    """The compiled decoding loop's fixed parts and its pieces (refill, one step, the stop test).

    Built once per sampler; :meth:`run` is what ``tf.function`` compiles. The queue
    arrays always have ``chunk`` rows (padded), so XLA compiles once.
    """

    def __init__(self, tf, np, sampler: "ContinuousSampler", table, matched: int, prompts: list[list[int]],
                 weight_names: list[str], state_names: list[str], *, cache_len: int, prefix_len: int,
                 temperature: float, top_k: int, top_p: float, allowed, jit: bool):
        self.tf, self.shape, self.jit = tf, sampler.shape, jit
        self.rows, self.chunk, self.length = sampler.rows, sampler.chunk, sampler.length
        self.cache_len, self.prefix_len = cache_len, prefix_len
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.weight_names, self.state_names = weight_names, state_names
        self.automaton, self.matched = tf.constant(table), matched
        self.last_token = tf.constant([p[-1] for p in prompts], tf.int32)
        self.start_position = tf.constant([len(p) - 1 for p in prompts], tf.int32)
        self.caps = tf.constant(sampler.caps, tf.int32)
        self.allowed_mask = None if allowed is None else tf.constant(np.asarray(allowed, bool))

    def run(self, queue_ids, queue_prompt, queue_uniforms, queued, drain, prefixes, weight_values, *values):
        tf = self.tf
        self.queue = (queue_ids, queue_prompt, queue_uniforms, queued)
        self.prefixes = prefixes
        self.w = dict(zip(self.weight_names, weight_values))
        # Hoisted out of the loop: XLA's dot is ~2x slower against a transposed operand.
        self.output_embedding = tf.transpose(self.w["wte"])
        self.size = size = self.chunk + self.rows + 1  # every queued sample, the slots' carried ones, a dump row
        outputs = {"sample": tf.fill([size], -1), "tokens": tf.zeros([size, self.length], tf.int32),
                   "made": tf.zeros([size], tf.int32), "ended": tf.zeros([size], tf.bool),
                   "logprob": tf.zeros([size], tf.float32)}
        slots = dict(zip(self.state_names, values))

        def cond(step, next_in_queue, done, out, s):
            return (next_in_queue < queued) | (drain & tf.reduce_any(s["sample"] >= 0))

        steps, _, done, out, slots = tf.while_loop(cond, self.step, [0, 0, 0, outputs, slots])
        return [steps, done, out["sample"], out["tokens"], out["made"], out["ended"], out["logprob"]] + \
            [slots[name] for name in self.state_names]

    def refill(self, s, next_in_queue):
        """Free slots take the next queued samples: their prompt's cache, token, position and uniforms."""
        tf = self.tf
        queue_ids, queue_prompt, queue_uniforms, queued = self.queue
        free = s["sample"] < 0
        rank = tf.cumsum(tf.cast(free, tf.int32), exclusive=True)
        take = free & (next_in_queue + rank < queued)
        pick = tf.minimum(next_in_queue + rank, tf.maximum(queued - 1, 0))
        # Unconditionally (rows not taken keep their values): a tf.cond carrying the cache
        # through its branches makes XLA copy the whole cache at every step.
        s = dict(s)
        prompt = tf.gather(queue_prompt, pick)
        s["sample"] = tf.where(take, tf.gather(queue_ids, pick), s["sample"])
        s["token"] = tf.where(take, tf.gather(self.last_token, prompt), s["token"])
        s["position"] = tf.where(take, tf.gather(self.start_position, prompt), s["position"])
        s["cap"] = tf.where(take, tf.gather(self.caps, prompt), s["cap"])
        for name in ("made", "matcher"):
            s[name] = tf.where(take, 0, s[name])
        s["logprob"] = tf.where(take, 0.0, s["logprob"])
        s["uniforms"] = tf.where(take[:, tf.newaxis], tf.gather(queue_uniforms, pick), s["uniforms"])
        chosen = take[:, tf.newaxis, tf.newaxis, tf.newaxis]
        caches = []
        for tensor, prefix in zip(s["cache"], self.prefixes):
            head = tf.where(chosen, tf.gather(prefix, prompt), tensor[:, :, :self.prefix_len])
            if self.jit:  # in place: only the prompt's span of the cache is written
                from tensorflow.compiler.tf2xla.python import xla

                caches.append(xla.dynamic_update_slice(tensor, head, tf.zeros([4], tf.int32)))
            else:
                caches.append(tf.concat([head, tensor[:, :, self.prefix_len:]], axis=2))
        s["cache"] = caches
        return s, next_in_queue + tf.reduce_sum(tf.cast(take, tf.int32))

    def step(self, step, next_in_queue, done, out, s):
        """One decoding step of every slot; samples that end are written to ``out`` and free their slot."""
        tf = self.tf
        s, next_in_queue = self.refill(s, next_in_queue)
        active = s["sample"] >= 0
        # A free slot computes at position 0 (its cache is rewritten when it is refilled), so
        # stale positions do not widen the attention window.
        position = tf.where(active, tf.minimum(s["position"], self.cache_len - 1), 0)
        raw, cache = decode_step(tf, self.w, self.shape, s["token"], position, s["cache"], self.output_embedding,
                                 windowed=64)
        logits = raw / tf.cast(self.temperature, tf.float32)
        if self.allowed_mask is not None:
            logits = tf.where(self.allowed_mask[tf.newaxis, :], logits, -1e10)
        logits = filter_logits(tf, logits, top_k=self.top_k, top_p=self.top_p)
        made = tf.minimum(s["made"], self.length - 1)
        token = inverse_cdf(tf, logits, tf.gather(s["uniforms"], made, batch_dims=1))
        logprob = tf.gather(tf.nn.log_softmax(raw), token, batch_dims=1)
        rows = tf.range(self.rows)
        s = {**s, "cache": cache, "token": token, "position": s["position"] + 1,
             "made": s["made"] + 1, "logprob": s["logprob"] + tf.where(active, logprob, 0.0),
             "matcher": tf.gather_nd(self.automaton, tf.stack([s["matcher"], token], axis=1)),
             "out": tf.tensor_scatter_nd_update(s["out"], tf.stack([rows, made], axis=1), token)}
        terminated = tf.equal(s["matcher"], self.matched)
        ended = active & (terminated | (s["made"] >= s["cap"]))
        at = tf.where(ended, done + tf.cumsum(tf.cast(ended, tf.int32), exclusive=True), self.size - 1)
        at = at[:, tf.newaxis]
        out = {"sample": tf.tensor_scatter_nd_update(out["sample"], at, s["sample"]),
               "tokens": tf.tensor_scatter_nd_update(out["tokens"], at, s["out"]),
               "made": tf.tensor_scatter_nd_update(out["made"], at, s["made"]),
               "ended": tf.tensor_scatter_nd_update(out["ended"], at, terminated),
               "logprob": tf.tensor_scatter_nd_update(out["logprob"], at, s["logprob"])}
        s["sample"] = tf.where(ended, -1, s["sample"])
        return step + 1, next_in_queue, done + tf.reduce_sum(tf.cast(ended, tf.int32)), out, s


class ContinuousSampler:
    """A checkpoint, its prompts' caches and the compiled continuous-batching loop.

    ``prompts`` are the token lists every sample starts from (by position);
    ``length`` caps new tokens per sample (further capped, like gpt-2-simple, so
    a sample never passes position ``n_ctx - 1``).
    """

    def __init__(self, run_dir: str | Path, prompts: list[list[int]], length: int, *, batch_size: int,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0, threads: int = 0,
                 allowed: "np.ndarray | None" = None, jit: bool = True, chunk: int = 0):
        import numpy as np

        from ..tf_runtime import import_tf

        tf = import_tf()
        # --- set-up: the run's checkpoint, encoder and shape; the prompts' caps ------------------------
        self.run_dir = Path(run_dir)
        self.checkpoint = latest_checkpoint(self.run_dir)
        self.encoder = run_encoder(self.run_dir)
        shape = self.shape = Shape.from_hparams(read_hparams(self.run_dir))
        if not prompts or min(len(p) for p in prompts) < 1:
            raise ValueError("every prompt needs at least one token")
        self.prompts = [list(p) for p in prompts]
        longest_prompt = max(len(p) for p in prompts)
        self.caps = [max(0, min(length, shape.n_ctx - 1 - len(p))) for p in prompts]
        self.length = max(1, max(self.caps))
        self.rows = batch_size
        self.chunk = chunk or 4 * batch_size  # samples queued per session run
        cache_len = min(shape.n_ctx, longest_prompt - 1 + self.length)
        prefix_len = max(1, longest_prompt - 1)
        self.steps = 0  # decoding steps run so far
        if allowed is not None and len(allowed) != shape.n_vocab:
            raise ValueError(f"allowed has {len(allowed)} entries for a vocabulary of {shape.n_vocab}")
        strings = [self.encoder.decoder.get(i, "") for i in range(shape.n_vocab)]
        marker = "".join(self.encoder.byte_encoder[b] for b in END_TOKEN.encode("utf-8"))

        self.graph = tf.Graph()
        with self.graph.as_default():
            weights = model_variables(tf, shape)
            prefix_cache = self._build_prefill(tf, np, weights, prefix_len)
            state_specs = self._build_state(tf, cache_len)
            loop = _Loop(tf, np, self, end_marker_table(strings, marker), len(marker), self.prompts, list(weights),
                         list(state_specs), cache_len=cache_len, prefix_len=prefix_len, temperature=temperature,
                         top_k=top_k, top_p=top_p, allowed=allowed, jit=jit)
            self._build_fetch(tf, loop, prefix_cache, weights, jit)
            self._restore(tf, threads, weights, prefix_cache)

    def _build_prefill(self, tf, np, weights, prefix_len: int) -> list:
        """Each prompt's keys and values, all but its last token, into variables (run once by :meth:`_restore`)."""
        shape, prompts = self.shape, self.prompts
        padded = np.zeros((len(prompts), prefix_len), np.int32)
        for i, prompt in enumerate(prompts):
            padded[i, :len(prompt) - 1] = prompt[:-1]
        prefix_cache = [tf.Variable(tf.zeros(cache_shape(shape, len(prompts), prefix_len)), trainable=False)
                        for _ in range(2 * shape.n_layer)]
        cache = empty_cache(tf, shape, len(prompts), prefix_len)
        for position in range(prefix_len):
            _, cache = decode_step(tf, weights, shape, tf.constant(padded[:, position]),
                                   tf.fill([len(prompts)], position), cache)
        self._prefill = tf.group(*(v.assign(c) for v, c in zip(prefix_cache, cache)))
        return prefix_cache

    def _build_state(self, tf, cache_len: int) -> dict:
        """The loop's state, kept in variables across session runs; the queue's placeholders."""
        B, chunk = self.rows, self.chunk
        state_specs = {
            "cache": empty_cache(tf, self.shape, B, cache_len),
            "token": tf.zeros([B], tf.int32), "position": tf.zeros([B], tf.int32),
            "made": tf.zeros([B], tf.int32), "cap": tf.zeros([B], tf.int32),
            "sample": tf.fill([B], -1), "matcher": tf.zeros([B], tf.int32),
            "logprob": tf.zeros([B], tf.float32), "out": tf.zeros([B, self.length], tf.int32),
            "uniforms": tf.zeros([B, self.length], tf.float64)}
        self._state = {name: [tf.Variable(v, trainable=False) for v in value] if isinstance(value, list)
                       else tf.Variable(value, trainable=False, name=f"slot_{name}")
                       for name, value in state_specs.items()}
        self._reset = tf.group(*(v.assign(value) for name, values in state_specs.items()
                                 for v, value in zip(_as_list(self._state[name]), _as_list(values))))
        self._queue_ids = tf.compat.v1.placeholder(tf.int32, [chunk], name="queue_ids")
        self._queue_prompt = tf.compat.v1.placeholder(tf.int32, [chunk], name="queue_prompt")
        self._queue_uniforms = tf.compat.v1.placeholder(tf.float64, [chunk, self.length], name="queue_uniforms")
        self._queued = tf.compat.v1.placeholder(tf.int32, [], name="queued")  # real entries of the queue
        self._drain = tf.compat.v1.placeholder(tf.bool, [], name="drain")
        return state_specs

    def _build_fetch(self, tf, loop: _Loop, prefix_cache: list, weights: dict, jit: bool) -> None:
        """The compiled loop over the queue; its end state is written back to the slots' variables."""
        state, names = self._state, loop.state_names
        compiled = tf.function(loop.run, jit_compile=jit, autograph=False)
        result = compiled(self._queue_ids, self._queue_prompt, self._queue_uniforms, self._queued, self._drain,
                          [v.read_value() for v in prefix_cache], [v.read_value() for v in weights.values()],
                          *[tf.nest.map_structure(lambda v: v.read_value(), state[name]) for name in names])
        assigns = [v.assign(value) for name, values in zip(names, result[7:])
                   for v, value in zip(_as_list(state[name]), _as_list(values))]
        with tf.control_dependencies(assigns):
            self._fetch = {key: tf.identity(value) for key, value in
                           zip(("steps", "done", "sample", "tokens", "made", "ended", "logprob"), result[:7])}

    def _restore(self, tf, threads: int, weights: dict, prefix_cache: list) -> None:
        """A session with the checkpoint's weights restored and the prompts' caches computed."""
        from ..tf_runtime import import_gpt2

        self.session = import_gpt2().start_tf_sess(threads=threads if threads > 0 else -1)
        self.session.run(tf.compat.v1.variables_initializer(
            [v for value in self._state.values() for v in _as_list(value)] + prefix_cache))
        restore(tf, self.session, weights, self.checkpoint)
        self.session.run(self._prefill)

    def _run(self, queue: list[tuple[int, int, list]], drain: bool) -> list[tuple[int, Row]]:
        import numpy as np

        chunk = self.chunk
        ids, prompts, uniforms = np.zeros(chunk, np.int32), np.zeros(chunk, np.int32), np.zeros((chunk, self.length))
        for row, (index, prompt, seed) in enumerate(queue):
            ids[row], prompts[row] = index, prompt
            uniforms[row, :self.caps[prompt]] = np.random.default_rng(seed).random(self.caps[prompt])
        result = self.session.run(self._fetch, feed_dict={
            self._queue_ids: ids, self._queue_prompt: prompts, self._queue_uniforms: uniforms,
            self._queued: len(queue), self._drain: drain})
        self.steps += int(result["steps"])
        finished = []
        for row in range(int(result["done"])):
            made = int(result["made"][row])
            tokens = result["tokens"][row, :made].tolist()
            finished.append((int(result["sample"][row]),
                             Row(tokens, bool(result["ended"][row]), float(result["logprob"][row]) / made if made else None)))
        return finished

    def generate(self, jobs: Iterable[tuple[int, int, list]]) -> Iterator[tuple[int, Row]]:
        """Samples of ``jobs`` = (index, prompt position, seed), yielded as (index, Row) in the order they end."""
        self.session.run(self._reset)
        pending: list[tuple[int, int, list]] = []
        for job in jobs:
            if self.caps[job[1]] == 0:  # no room after the prompt: nothing to sample
                yield job[0], Row([], False, None)
                continue
            pending.append(job)
            if len(pending) == self.chunk:
                yield from self._run(pending, drain=False)
                pending = []
        yield from self._run(pending, drain=True)

    def close(self) -> None:
        self.session.close()
