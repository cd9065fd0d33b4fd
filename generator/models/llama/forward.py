"""The Llama architecture in TensorFlow, as plain functions over explicit weights.

``weights`` is a dict: ``embed`` (vocab, width), ``output_norm`` (width,), ``output`` (vocab, width)
or absent when tied to ``embed``, and ``layers``: one dict per block with ``attn_norm``,
``wq`` ``wk`` ``wv`` ``wo``, ``ffn_norm``, ``w_gate`` ``w_up`` ``w_down`` (projections as (in, out),
so ``x @ w``). Values may be tensors or variables: nothing here owns state, so a training loop can
pass variables, add low-rank adapters to a projection (``project``), or add a key/value cache
around ``attention`` without touching the rest.

Rotary positions rotate adjacent pairs (llama.cpp's "normal" mode), matching the GGUF layout of Q
and K (see ``gguf_weights``). Batches are (batch, time) token ids with an ``attention_mask`` of 1 for
real tokens and 0 for padding; positions count real tokens only, so left or right padding both work.
"""

from __future__ import annotations

from ...tf_runtime import import_tf

tf = import_tf()

NEG_INF = -1e9  # finite, so a fully masked (padding) query row gives a uniform row, not NaN


def rms_norm(x, weight, eps: float):
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + eps) * weight


def project(x, weight):
    """x (..., in) @ weight (in, out): the one place a projection is applied.

    A weight may be a projection of its own, an object with ``project(x)`` (``lora.LoraProjection``:
    the frozen matmul plus its low-rank path, so no gradient of the frozen matrix is ever formed).
    """
    own = getattr(weight, "project", None)
    return tf.matmul(x, weight) if own is None else own(x)


def positions_of(attention_mask):
    """Position of each token among its row's real tokens (padding gets 0)."""
    mask = tf.cast(attention_mask, tf.int32)
    return tf.maximum(tf.cumsum(mask, axis=1) - 1, 0)


def rope_angles(positions, head_dim: int, base: float):
    """cos, sin of shape (batch, time, 1, head_dim/2) for pair i at frequency base**(-2i/head_dim)."""
    inv_freq = 1.0 / (base ** (tf.range(0, head_dim, 2, dtype=tf.float32) / head_dim))
    angles = tf.cast(positions, tf.float32)[:, :, None] * inv_freq[None, None, :]
    return tf.cos(angles)[:, :, None, :], tf.sin(angles)[:, :, None, :]


def apply_rope(x, cos, sin):
    """Rotate adjacent pairs (x[2i], x[2i+1]) of x (batch, time, heads, head_dim)."""
    shape = tf.shape(x)
    pairs = tf.reshape(x, tf.concat([shape[:-1], [-1, 2]], axis=0))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = tf.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return tf.reshape(rotated, shape)


def attention_bias(attention_mask):
    """(batch, 1, 1, time, time) additive bias: causal, and padding keys hidden."""
    time = tf.shape(attention_mask)[1]
    causal = tf.linalg.band_part(tf.ones([time, time], tf.bool), -1, 0)
    keys = tf.cast(attention_mask, tf.bool)[:, None, :]
    allowed = tf.logical_and(causal[None, :, :], keys)
    return tf.where(allowed, 0.0, NEG_INF)[:, None, None, :, :]


def query_key_value(x, layer: dict, hp, cos, sin):
    """Rotated queries (batch, time, heads, dh); keys and values head-major, (batch, kv heads, time, dh)."""
    batch, time = tf.shape(x)[0], tf.shape(x)[1]
    dh, n_kv = hp.head_dim, hp.n_head_kv
    q = tf.reshape(project(x, layer["wq"]), [batch, time, hp.n_head, dh])
    k = tf.reshape(project(x, layer["wk"]), [batch, time, n_kv, dh])
    v = tf.reshape(project(x, layer["wv"]), [batch, time, n_kv, dh])
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return q, tf.transpose(k, [0, 2, 1, 3]), tf.transpose(v, [0, 2, 1, 3])


def mix(q, k, v, hp, bias):
    """Grouped-query attention of queries (batch, time, heads, dh) over head-major keys and values (batch,
    kv heads, keys, dh), with an additive ``bias`` (batch, 1, 1, time, keys): (batch, time, width) before ``wo``.

    Query head h reads key/value head h // group, and a group's query heads share one matmul. Keys
    stay head-major so a key/value cache (``decode``) is read where it lies, never transposed.
    """
    batch, time, keys = tf.shape(q)[0], tf.shape(q)[1], tf.shape(k)[2]
    dh, n_kv = hp.head_dim, hp.n_head_kv
    group = hp.n_head // n_kv
    q = tf.reshape(tf.transpose(q, [0, 2, 1, 3]), [batch, n_kv, group * time, dh])
    scores = tf.matmul(q, k, transpose_b=True) * (dh ** -0.5)
    scores = tf.reshape(scores, [batch, n_kv, group, time, keys]) + bias
    weights = tf.reshape(tf.nn.softmax(scores, axis=-1), [batch, n_kv, group * time, keys])
    mixed = tf.reshape(tf.matmul(weights, v), [batch, hp.n_head, time, dh])
    return tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [batch, time, hp.n_head * dh])


def attention(x, layer: dict, hp, cos, sin, bias):
    """Grouped-query self-attention of x (batch, time, width)."""
    q, k, v = query_key_value(x, layer, hp, cos, sin)
    return project(mix(q, k, v, hp, bias), layer["wo"])


def feed_forward(x, layer: dict):
    """SwiGLU: down(silu(gate(x)) * up(x))."""
    # x * sigmoid(x), not tf.nn.silu: silu's custom gradient registers a name per trace, which collides once
    # gpt-2-simple's process has patched TensorFlow's uids (tf_runtime.stable_function_names).
    gate = project(x, layer["w_gate"])
    return project(gate * tf.sigmoid(gate) * project(x, layer["w_up"]), layer["w_down"])


def block(x, layer: dict, hp, cos, sin, bias):
    x = x + attention(rms_norm(x, layer["attn_norm"], hp.rms_eps), layer, hp, cos, sin, bias)
    return x + feed_forward(rms_norm(x, layer["ffn_norm"], hp.rms_eps), layer)


def hidden_states(weights: dict, hp, tokens, attention_mask):
    """Final-norm hidden states (batch, time, width) of token ids (batch, time)."""
    cos, sin = rope_angles(positions_of(attention_mask), hp.head_dim, hp.rope_base)
    bias = attention_bias(attention_mask)
    x = tf.gather(weights["embed"], tokens)
    for layer in weights["layers"]:
        x = block(x, layer, hp, cos, sin, bias)
    return rms_norm(x, weights["output_norm"], hp.rms_eps)


def output_matrix(weights: dict):
    """The (vocab, width) output projection: its own, or the token embedding when tied."""
    output = weights.get("output")
    return weights["embed"] if output is None else output


def logits(weights: dict, hp, tokens, attention_mask):
    """Next-token logits (batch, time, vocab)."""
    return tf.matmul(hidden_states(weights, hp, tokens, attention_mask), output_matrix(weights), transpose_b=True)


def next_token_logprobs(weights: dict, hp, tokens, attention_mask):
    """log p(tokens[:, t+1] | tokens[:, :t+1]) as (batch, time - 1), without a full-vocab log-softmax.

    The target's logit is one dot product with its output row (float32); only the log-normaliser
    needs the whole vocabulary, as a logsumexp of the logits: with ``weights["output_narrow"]`` (a
    bfloat16 copy of the output matrix, transposed) that matmul, a fifth of the FLOPs, runs in
    bfloat16 too; a logsumexp averages the rounding of 49,152 logits away.
    """
    h = hidden_states(weights, hp, tokens, attention_mask)[:, :-1]
    table = output_matrix(weights)
    target_logit = tf.reduce_sum(h * tf.gather(table, tokens[:, 1:]), axis=-1)
    narrow = weights.get("output_narrow")  # the vocabulary's matmul in bfloat16, when the scorer keeps one
    all_logits = tf.matmul(h, table, transpose_b=True) if narrow is None else project(h, narrow)
    return target_logit - tf.reduce_logsumexp(all_logits, axis=-1)
