"""Key/value-cache decoding for the Llama family, on :mod:`forward`'s functions.

A :class:`Cache` holds, per layer, the keys and values of every token read so far, head-major
``(batch, kv heads, columns, head_dim)`` (the layout ``forward.mix`` multiplies in, so a step never
transposes the cache), and a ``(batch, columns)`` mask of the columns that hold a real token.
Columns are time: :func:`extend` reads a chunk of ``time`` new tokens into columns
``[start, start + time)``, attending to every valid column up to its own. Prefill is one
:func:`extend` of the (left- or right-padded) prompts at ``start`` 0, a decoding step one of a
single token per row. Grouped-query attention comes with ``forward.mix``: the cache holds only
the ``n_head_kv`` key/value heads.

Positions count real tokens, as in ``forward``: a token's position is the number of valid
columns before it in its row, so padding anywhere (left, right, a shared block's tail) changes
nothing but float rounding, and prefill plus N steps gives ``forward.logits`` of the whole
sequence.

``in_place``: under XLA (``jit_compile``) the new columns are written with ``dynamic_update_slice``,
in place in a loop's buffer; elsewhere (eager, plain graphs) by concatenation, which copies the
cache once per call.
"""

from __future__ import annotations

from typing import NamedTuple

from ...tf_runtime import import_tf
from . import forward

tf = import_tf()


class Cache(NamedTuple):
    keys: list    # per layer: (batch, n_head_kv, columns, head_dim)
    values: list  # the same
    mask: object  # (batch, columns) int32: 1 where a column holds a real token


def empty_cache(hp, batch, columns) -> Cache:
    """A cache of ``columns`` empty columns for ``batch`` rows."""
    shape = [batch, hp.n_head_kv, columns, hp.head_dim]
    return Cache([tf.zeros(shape) for _ in range(hp.n_layer)],
                 [tf.zeros(shape) for _ in range(hp.n_layer)], tf.zeros([batch, columns], tf.int32))


def write_columns(tensor, new, start, axis: int, in_place: bool):
    """``tensor`` with ``new`` written from column ``start`` of ``axis`` (2 for keys/values, 1 for the mask)."""
    if in_place:
        from tensorflow.compiler.tf2xla.python import xla

        offsets = [0] * len(new.shape)
        offsets[axis] = start
        return xla.dynamic_update_slice(tensor, new, tf.stack([tf.cast(o, tf.int32) for o in offsets]))
    width = tf.shape(new)[axis]
    before = tf.gather(tensor, tf.range(start), axis=axis)
    after = tf.gather(tensor, tf.range(start + width, tf.shape(tensor)[axis]), axis=axis)
    written = tf.concat([before, new, after], axis=axis)
    written.set_shape(tensor.shape)  # the same columns: a while loop carries it with its static shape
    return written


def chunk_bias(cache_mask, start, time):
    """(batch, 1, 1, time, columns): query ``start + i`` sees the valid columns up to its own."""
    columns = tf.range(tf.shape(cache_mask)[1])
    queries = start + tf.range(time)
    causal = columns[None, :] <= queries[:, None]  # (time, columns)
    allowed = tf.logical_and(causal[None, :, :], tf.cast(cache_mask, tf.bool)[:, None, :])
    return tf.where(allowed, 0.0, forward.NEG_INF)[:, None, None, :, :]


def extend(weights: dict, hp, cache: Cache, tokens, mask, start, *, in_place: bool = False):
    """Read ``tokens`` (batch, time) with ``mask`` into ``cache`` at column ``start``.

    Returns the final-norm hidden states (batch, time, width) and the new cache.
    """
    time = tf.shape(tokens)[1]
    mask = tf.cast(mask, tf.int32)
    before = tf.reduce_sum(cache.mask, axis=1, keepdims=True)  # columns from ``start`` on are still empty
    positions = tf.maximum(before + tf.cumsum(mask, axis=1) - 1, 0)
    cos, sin = forward.rope_angles(positions, hp.head_dim, hp.rope_base)
    cache_mask = write_columns(cache.mask, mask, start, 1, in_place)
    bias = chunk_bias(cache_mask, start, time)
    x = tf.gather(weights["embed"], tokens)
    keys, values = [], []
    for index, layer in enumerate(weights["layers"]):
        h = forward.rms_norm(x, layer["attn_norm"], hp.rms_eps)
        q, k, v = forward.query_key_value(h, layer, hp, cos, sin)
        keys.append(write_columns(cache.keys[index], k, start, 2, in_place))
        values.append(write_columns(cache.values[index], v, start, 2, in_place))
        attended = forward.mix(q, keys[-1], values[-1], hp, bias)
        x = x + forward.project(attended, layer["wo"])
        x = x + forward.feed_forward(forward.rms_norm(x, layer["ffn_norm"], hp.rms_eps), layer)
    return forward.rms_norm(x, weights["output_norm"], hp.rms_eps), Cache(keys, values, cache_mask)


def output_logits(weights: dict, hidden):
    """Next-token logits of hidden states (..., width) -> (..., vocab)."""
    return tf.matmul(hidden, forward.output_matrix(weights), transpose_b=True)


def tile_rows(cache: Cache, rows) -> Cache:
    """The cache of each of ``rows`` (indices into ``cache``'s batch): a shared block read once, given to many."""
    return Cache([tf.gather(k, rows) for k in cache.keys], [tf.gather(v, rows) for v in cache.values],
                 tf.gather(cache.mask, rows))


def pad_columns(cache: Cache, columns) -> Cache:
    """The cache widened to ``columns`` with empty columns on the right (room for what follows)."""
    extra = columns - tf.shape(cache.mask)[1]
    pad = [[0, 0], [0, 0], [0, extra], [0, 0]]
    return Cache([tf.pad(k, pad) for k in cache.keys], [tf.pad(v, pad) for v in cache.values],
                 tf.pad(cache.mask, [[0, 0], [0, extra]]))
