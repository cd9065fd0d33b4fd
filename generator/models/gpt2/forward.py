"""GPT-2's forward pass, one token per row, over gpt-2-simple's own checkpoint variables.

gpt-2-simple's ``model.model`` takes one position for the whole batch (the
length of the shared KV cache) and has no attention mask, so every row of a
batch must be at the same point of its sequence. Continuous batching needs the
opposite: each row of a fixed-size batch is a slot whose sample started
whenever the previous one in that slot ended. :func:`decode_step` is the same
network, written for that:

* each row has its own position (``positions[b]``), used for the position
  embedding and as the slot in the KV cache where the row's new key and value
  are written;
* the cache is preallocated, one ``[rows, heads, cache_len, head_dim]`` tensor
  of keys and one of values per layer (separate tensors, so XLA updates them in
  place and feeds them to the attention products without copying slices),
  and attention sees only cache entries ``<= positions[b]``; later entries may
  hold a previous sample's keys and are masked exactly as gpt-2-simple masks
  the future (weight -1e10 before the softmax, so they contribute exactly 0).

The arithmetic is gpt-2-simple's (its ``norm``, ``gelu``, ``conv1d``, the
``rsqrt(head_dim)`` scaling, tied output embedding), so logits agree with
``model.model`` to float rounding (tests/test_gpt2_forward.py). Shapes are
static, so the whole decoding loop compiles with XLA.
"""

from __future__ import annotations

import dataclasses
import math

LAYER_PARAMS = ("ln_1/g", "ln_1/b", "attn/c_attn/w", "attn/c_attn/b", "attn/c_proj/w", "attn/c_proj/b",
                "ln_2/g", "ln_2/b", "mlp/c_fc/w", "mlp/c_fc/b", "mlp/c_proj/w", "mlp/c_proj/b")


@dataclasses.dataclass
class Shape:
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_head: int
    n_layer: int

    @classmethod
    def from_hparams(cls, hparams: dict) -> "Shape":
        return cls(**{field.name: int(hparams[field.name]) for field in dataclasses.fields(cls)})

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def flops_per_token(self, attended: int) -> int:
        """Multiply-adds x 2 of one decoding step of one row attending ``attended`` cache entries."""
        per_layer = 2 * self.n_embd * (3 * self.n_embd + self.n_embd + 8 * self.n_embd) + 4 * attended * self.n_embd
        return self.n_layer * per_layer + 2 * self.n_embd * self.n_vocab


def model_variables(tf, shape: Shape) -> dict:
    """Resource variables named exactly like gpt-2-simple's (``model/h0/attn/c_attn/w`` ...).

    A ``tf.compat.v1.train.Saver`` over them restores a gpt-2-simple checkpoint.
    """
    shapes = {"wte": [shape.n_vocab, shape.n_embd], "wpe": [shape.n_ctx, shape.n_embd],
              "ln_f/g": [shape.n_embd], "ln_f/b": [shape.n_embd]}
    e = shape.n_embd
    per_layer = {"ln_1/g": [e], "ln_1/b": [e], "attn/c_attn/w": [1, e, 3 * e], "attn/c_attn/b": [3 * e],
                 "attn/c_proj/w": [1, e, e], "attn/c_proj/b": [e], "ln_2/g": [e], "ln_2/b": [e],
                 "mlp/c_fc/w": [1, e, 4 * e], "mlp/c_fc/b": [4 * e], "mlp/c_proj/w": [1, 4 * e, e],
                 "mlp/c_proj/b": [e]}
    for layer in range(shape.n_layer):
        shapes.update({f"h{layer}/{name}": dims for name, dims in per_layer.items()})
    variables = {}
    for name, dims in shapes.items():
        variables[name] = tf.compat.v1.get_variable(
            f"model/{name}", dims, dtype=tf.float32, trainable=False, use_resource=True,
            initializer=tf.compat.v1.zeros_initializer())
    return variables


def restore(tf, session, variables: dict, checkpoint: str) -> None:
    saver = tf.compat.v1.train.Saver(var_list={f"model/{name}": v for name, v in variables.items()})
    saver.restore(session, checkpoint)


def _norm(tf, x, g, b, epsilon=1e-5):
    u = tf.reduce_mean(x, axis=-1, keepdims=True)
    s = tf.reduce_mean(tf.square(x - u), axis=-1, keepdims=True)
    return (x - u) * tf.math.rsqrt(s + epsilon) * g + b


def _gelu(tf, x):
    return 0.5 * x * (1 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def _linear(tf, x, w, b):
    return tf.matmul(x, w[0]) + b


def cache_shape(shape: Shape, rows: int, cache_len: int) -> list[int]:
    return [rows, shape.n_head, cache_len, shape.head_dim]


def empty_cache(tf, shape: Shape, rows: int, cache_len: int) -> list:
    """[keys of layer 0, values of layer 0, keys of layer 1, ...], all zero."""
    return [tf.zeros(cache_shape(shape, rows, cache_len), tf.float32) for _ in range(2 * shape.n_layer)]


def attention_windows(cache_len: int, smallest: int = 64) -> list[int]:
    """Static spans of the cache attention may read: powers of two from ``smallest``, then the whole cache."""
    windows = []
    while smallest < cache_len:
        windows.append(smallest)
        smallest *= 2
    return windows + [cache_len]


def decode_step(tf, weights: dict, shape: Shape, tokens, positions, cache, output_embedding=None, windowed: int = 0):
    """One token per row: (logits [rows, n_vocab], updated cache).

    ``tokens`` and ``positions`` are int32 [rows]; ``cache`` is a list as made
    by :func:`empty_cache`. Row b's key and value are written at
    ``[b, :, positions[b]]`` of its layer's tensors and it attends to entries
    ``0..positions[b]`` of its own cache row. ``output_embedding`` may pass
    ``wte`` already transposed ([embd, vocab]), hoisted out of a decoding loop.
    ``windowed`` (a smallest span, 0 = off): attention reads only the first W
    cache entries, W the least of :func:`attention_windows` above every row's position (a
    ``switch_case`` of static shapes for XLA), so a 1024-entry cache costs what
    the rows' actual lengths need; the masked entries it skips weigh exactly 0.
    """
    rows = tokens.shape[0] if tokens.shape[0] is not None else tf.shape(tokens)[0]
    cache = list(cache)
    cache_len = cache[0].shape[2]
    heads, head_dim = shape.n_head, shape.head_dim
    h = tf.gather(weights["wte"], tokens) + tf.gather(weights["wpe"], positions)  # [rows, embd]
    visible = tf.range(cache_len)[tf.newaxis, tf.newaxis, :] <= positions[:, tf.newaxis, tf.newaxis]  # [rows,1,T]
    windows = attention_windows(cache_len, windowed) if windowed else [cache_len]
    window = tf.reduce_sum(tf.cast(tf.reduce_max(positions) >= tf.constant(windows[:-1], tf.int32), tf.int32))

    def attend(q, keys, values, span):
        scores = tf.einsum("bhd,bhtd->bht", q, keys[:, :, :span]) * scale
        scores = tf.where(visible[:, :, :span], scores, tf.cast(-1e10, scores.dtype))
        scores = scores - tf.reduce_max(scores, axis=-1, keepdims=True)
        e = tf.exp(scores)
        return tf.einsum("bht,bhtd->bhd", e / tf.reduce_sum(e, axis=-1, keepdims=True), values[:, :, :span])

    # Scatter indices (row, head, position): one [head_dim] vector each.
    where = tf.stack([tf.repeat(tf.range(rows), heads), tf.tile(tf.range(heads), [rows]),
                      tf.repeat(positions, heads)], axis=1)
    scale = tf.math.rsqrt(tf.cast(head_dim, tf.float32))
    for layer in range(shape.n_layer):
        w = {name: weights[f"h{layer}/{name}"] for name in LAYER_PARAMS}
        x = _norm(tf, h, w["ln_1/g"], w["ln_1/b"])
        qkv = tf.reshape(_linear(tf, x, w["attn/c_attn/w"], w["attn/c_attn/b"]), [rows, 3, heads, head_dim])
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        keys = cache[2 * layer] = tf.tensor_scatter_nd_update(cache[2 * layer], where, tf.reshape(k, [-1, head_dim]))
        values = cache[2 * layer + 1] = tf.tensor_scatter_nd_update(cache[2 * layer + 1], where,
                                                                     tf.reshape(v, [-1, head_dim]))
        if len(windows) == 1:
            a = attend(q, keys, values, cache_len)
        else:
            a = tf.switch_case(window, [lambda span=span: attend(q, keys, values, span) for span in windows])
        a = tf.reshape(a, [rows, shape.n_embd])
        h = h + _linear(tf, a, w["attn/c_proj/w"], w["attn/c_proj/b"])
        x = _norm(tf, h, w["ln_2/g"], w["ln_2/b"])
        h = h + _linear(tf, _gelu(tf, _linear(tf, x, w["mlp/c_fc/w"], w["mlp/c_fc/b"])),
                        w["mlp/c_proj/w"], w["mlp/c_proj/b"])
    h = _norm(tf, h, weights["ln_f/g"], weights["ln_f/b"])
    if output_embedding is None:
        return tf.matmul(h, weights["wte"], transpose_b=True), cache
    return tf.matmul(h, output_embedding), cache
