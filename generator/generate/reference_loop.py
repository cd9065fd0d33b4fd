"""Early-stopping sampler over gpt-2-simple's own model graph, and the fast backend's driver.

The fast backend samples with :mod:`generator.generate.sampler` (continuous
batching, XLA); :func:`generate_fast` below drives it (ordering, streaming,
resume). :class:`FastSampler`, the previous per-batch loop described here,
stays as the path verified token for token against ``gpt2.generate`` and as the
benchmark's baseline.

gpt-2-simple's ``generate`` runs a ``tf.while_loop`` that always decodes
``length`` tokens for every row and only afterwards cuts the text at
``<|endoftext|>``. This sampler builds the same loop from gpt-2-simple's own
pieces (``model.model`` with its KV cache, the same prefill, temperature and
``top_k_logits``; its ``top_p_logits`` rule) on the same weights and encoder,
and changes what the loop does around the model:

* End marker: the marker is not one symbol of the vocabulary (its BPE is ``<|``
  ``endoftext`` ``|>``, and the first piece often merges with the punctuation
  before it, ``.<|``). Each row carries the state of a Knuth-Morris-Pratt
  matcher over its tokens' characters, advanced per step by one lookup
  ``table[state, token]``: it fires exactly where ``"<|endoftext|>" in text``
  would on the decoded text, whatever the tokenisation, without decoding text.
* Early stop: the loop ends when every row has produced the marker or the
  length cap is reached; one ``session.run`` per batch.
* Compaction: finished rows leave the batch and its KV cache (``compact``), so
  the remaining steps compute only unfinished rows. Refilling a finished row
  with a new sample is not possible on gpt-2-simple's model without changing
  the sample's distribution: it has no attention mask and takes positions from
  the cache length shared by all rows.
* Nucleus (top-p) filtering gives gpt-2-simple's kept set without sorting the
  vocabulary at every step (``nucleus_logits``).
* Randomness: each token is drawn by inverse CDF (the algorithm of TF's
  ``Multinomial`` kernel behind gpt-2-simple's ``tf.random.categorical``) from a
  uniform number of the sample's own stream, ``numpy.random.default_rng([seed,
  index])``. A sample therefore depends on neither its batch mates, the batch
  size, compaction nor where a resumed run restarted (up to float rounding in
  differently shaped matrix products). gpt-2-simple's stateful
  stream cannot serve here: its position depends on how many steps every
  earlier batch ran, so stopping a batch early shifts all later batches. To
  verify the loop against ``gpt2.generate`` token for token, the sampler can be
  built with gpt-2-simple's own seeded ``tf.random.categorical`` instead
  (``gpt2_seeds``; see tests/test_fast_sample.py).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoints import latest_checkpoint, run_encoder
from ..models.gpt2.weights import load_hparams
from ..textformat import END_TOKEN
from .rows import Row, end_marker_table

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def nucleus_logits(tf, logits, p: float, bins: int = 1024, span: float = 30.0):
    """gpt-2-simple's ``top_p_logits`` without sorting the vocabulary.

    gpt-2-simple sorts each row, takes the softmax and keeps every token whose
    exclusive cumulative probability (the mass of the tokens sorted before it)
    is below ``p``; the rest become -1e10. The same threshold, found by bucketing:
    logits go into ``bins`` buckets by their distance below the row's maximum
    (``span`` nats, the last bucket takes the tail), the buckets' probability
    masses are summed in order, and only the one bucket where the running mass
    crosses ``p`` is sorted (``top_k`` over its few tokens). Tokens in earlier
    buckets are all kept, in later ones all dropped. Only the order of float
    additions differs from gpt-2-simple, so a token's fate can differ only when
    its cumulative probability is within rounding of ``p``.
    """
    rows = tf.shape(logits)[0]
    shifted = logits - tf.reduce_max(logits, axis=1, keepdims=True)
    probs = tf.nn.softmax(shifted)
    bucket = tf.minimum(tf.cast(shifted * (-bins / span), tf.int32), bins - 1)  # 0 holds the most probable
    mass = tf.reshape(tf.math.unsorted_segment_sum(probs, bucket + bins * tf.range(rows)[:, tf.newaxis],
                                                   rows * bins), [rows, bins])
    before = tf.cumsum(mass, axis=1, exclusive=True)
    crossing = tf.reduce_sum(tf.cast(before < p, tf.int32), axis=1, keepdims=True) - 1  # last bucket starting below p
    in_crossing = tf.equal(bucket, crossing)
    count = tf.reduce_max(tf.reduce_sum(tf.cast(in_crossing, tf.int32), axis=1))
    values, _ = tf.math.top_k(tf.where(in_crossing, logits, -float("inf")), k=count)
    value_probs = tf.exp(values - tf.reduce_logsumexp(logits, axis=1, keepdims=True))
    exclusive = tf.gather(before, crossing, batch_dims=1) + tf.cumsum(value_probs, axis=1, exclusive=True)
    threshold = tf.reduce_min(tf.where((exclusive < p) & (value_probs > 0), values, 1000.0), axis=1)
    above = tf.reduce_min(tf.where(bucket < crossing, logits, 1000.0), axis=1)  # all kept
    threshold = tf.minimum(threshold, above)
    return tf.where(logits < threshold[:, tf.newaxis], -1e10, logits)


class FastSampler:
    """A checkpoint loaded in its own graph and session, with the compiled sampling loop.

    ``sample()`` runs one batch: every row continues the same context, each row
    with its own random stream; the loop stops when all rows have written the
    end marker or ``length`` tokens. ``compact`` drops finished rows from the
    batch and its KV cache as they end.

    ``gpt2_seeds=(graph_seed, op_seed)`` draws with gpt-2-simple's seeded
    ``tf.random.categorical`` instead, on the full batch (no compaction), so the
    loop reproduces ``gpt2.generate`` token for token; everything else is the
    production loop. Verification only: that stream runs on across batches, so
    only a fresh sampler's first batch lines up with a fresh ``gpt2.generate``.
    """

    def __init__(self, run_dir: str | Path, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0,
                 threads: int = 0, compact: bool = True, gpt2_seeds: tuple[int, int] | None = None):
        from ..tf_runtime import import_gpt2, import_tf

        tf = import_tf()
        gpt2 = import_gpt2()
        from gpt_2_simple.src import model as gpt2_model
        from gpt_2_simple.src import sample as gpt2_sample

        self.run_dir = Path(run_dir)
        self.checkpoint = latest_checkpoint(self.run_dir)
        self.encoder = run_encoder(self.run_dir)
        hparams = load_hparams(self.run_dir)
        self.n_ctx = hparams.n_ctx
        self.verifying = gpt2_seeds is not None
        self.compact = compact = compact and not self.verifying

        strings = [self.encoder.decoder.get(i, "") for i in range(hparams.n_vocab)]
        marker = "".join(self.encoder.byte_encoder[b] for b in END_TOKEN.encode("utf-8"))
        table = end_marker_table(strings, marker)
        matched = len(marker)

        self.graph = tf.Graph()
        with self.graph.as_default():
            if self.verifying:
                tf.compat.v1.set_random_seed(gpt2_seeds[0])
            self._context = tf.compat.v1.placeholder(tf.int32, [None, None], name="context")
            self._length = tf.compat.v1.placeholder(tf.int32, [], name="length")
            self._uniforms = tf.compat.v1.placeholder(tf.float64, [None, None], name="uniforms")  # [rows, length]
            batch = tf.shape(self._context)[0]
            automaton = tf.constant(table)

            def step(tokens, past=None):
                # The body of gpt-2-simple's sample_sequence.step, unchanged.
                lm_output = gpt2_model.model(hparams=hparams, X=tokens, past=past, reuse=tf.compat.v1.AUTO_REUSE)
                logits = lm_output["logits"][:, :, :hparams.n_vocab]
                presents = lm_output["present"]
                presents.set_shape(gpt2_model.past_shape(hparams=hparams, batch_size=None))
                return logits, presents

            def draw(logits, index, rows):
                if self.verifying:
                    return tf.random.categorical(logits, num_samples=1, dtype=tf.int32, seed=gpt2_seeds[1])[:, 0]
                # Inverse CDF in float64 over exp(logit - max), as TF's Multinomial kernel does.
                shifted = tf.cast(logits, tf.float64)
                shifted -= tf.reduce_max(shifted, axis=1, keepdims=True)
                cdf = tf.cumsum(tf.exp(shifted), axis=1)
                uniform = tf.gather(self._uniforms[:, index], rows)
                token = tf.searchsorted(cdf, uniform[:, tf.newaxis] * cdf[:, -1:], side="right", out_type=tf.int32)
                return tf.minimum(token[:, 0], hparams.n_vocab - 1)

            # Like gpt-2-simple: prefill all but the last context token, which the loop feeds.
            _, context_past = step(self._context[:, :-1])

            def body(index, past, prev, rows, state, done, output, finished_at, logprob_sum):
                raw_logits, presents = step(prev[:, tf.newaxis], past=past)
                raw_logits = raw_logits[:, -1, :]
                logits = raw_logits / tf.cast(temperature, tf.float32)
                if top_p > 0.0:
                    logits = nucleus_logits(tf, logits, top_p)
                else:
                    logits = gpt2_sample.top_k_logits(logits, k=top_k)
                token = draw(logits, index, rows)
                active = tf.logical_not(done)
                logprob = tf.gather(tf.nn.log_softmax(raw_logits), token, axis=1, batch_dims=1)
                state = tf.gather_nd(automaton, tf.stack([state, token], axis=1))
                ended = tf.logical_and(active, tf.equal(state, matched))
                at = rows[:, tf.newaxis]
                output = tf.concat([output, tf.scatter_nd(at, token, [batch])[:, tf.newaxis]], axis=1)
                logprob_sum = tf.tensor_scatter_nd_add(logprob_sum, at, tf.where(active, logprob, 0.0))
                finished_at = tf.tensor_scatter_nd_max(finished_at, at, tf.where(ended, index + 1, 0))
                past = tf.concat([past, presents], axis=-2)
                done = tf.logical_or(done, ended)
                if compact:
                    keep = tf.where(tf.logical_not(done))[:, 0]
                    past, token, rows, state, done = (tf.gather(t, keep) for t in (past, token, rows, state, done))
                return index + 1, past, token, rows, state, done, output, finished_at, logprob_sum

            def cond(index, past, prev, rows, state, done, *_):
                return tf.logical_not(tf.reduce_all(done))

            zeros = tf.zeros([batch], tf.int32)
            vector = tf.TensorShape([None])
            loop = tf.while_loop(
                cond=cond, body=body, maximum_iterations=self._length,
                loop_vars=[tf.constant(0), context_past, self._context[:, -1], tf.range(batch), zeros,
                           tf.zeros([batch], tf.bool), self._context[:, :0], zeros, tf.zeros([batch], tf.float32)],
                shape_invariants=[tf.TensorShape([]),
                                  tf.TensorShape(gpt2_model.past_shape(hparams=hparams, batch_size=None)),
                                  vector, vector, vector, vector, tf.TensorShape([None, None]), vector, vector],
            )
            steps, output, finished_at, logprob_sum = loop[0], loop[6], loop[7], loop[8]
            self._fetch = {"steps": steps, "tokens": output, "finished_at": finished_at, "logprob_sum": logprob_sum}
            self.session = gpt2.start_tf_sess(threads=threads if threads > 0 else -1)
            model_vars = [v for v in tf.compat.v1.global_variables() if v.name.startswith("model/")]
            tf.compat.v1.train.Saver(var_list=model_vars).restore(self.session, self.checkpoint)

    def max_new_tokens(self, context_tokens: list[int], length: int) -> int:
        """gpt-2-simple's cap: never past position 1023 of the context window."""
        return max(0, min(length, self.n_ctx - 1 - len(context_tokens)))

    def sample(self, context_tokens: list[int], length: int, seeds: list) -> tuple[list[Row], int]:
        """One row per seed: continuations of ``context_tokens``; returns (rows, decoding steps run).

        A row's random numbers come from ``numpy.random.default_rng(seed)``.
        """
        import numpy as np

        length = self.max_new_tokens(context_tokens, length)
        if length == 0:
            return [Row([], False, None) for _ in seeds], 0
        uniforms = np.zeros((len(seeds), 0)) if self.verifying else np.stack(
            [np.random.default_rng(seed).random(length) for seed in seeds])
        result = self.session.run(self._fetch, feed_dict={
            self._context: [context_tokens] * len(seeds), self._length: length, self._uniforms: uniforms})
        steps = int(result["steps"])
        samples = []
        for row in range(len(seeds)):
            finished = int(result["finished_at"][row])
            end = finished or steps
            tokens = result["tokens"][row, :end].tolist()
            logprob = float(result["logprob_sum"][row]) / end if end else None
            samples.append(Row(tokens, finished > 0, logprob))
        return samples, steps

    def decode(self, context_tokens: list[int], row: Row) -> str:
        return self.encoder.decode(list(context_tokens) + row.tokens)

    def close(self) -> None:
        self.session.close()
