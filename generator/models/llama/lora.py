"""Low-rank adapters (LoRA, Hu et al. 2021) on a Llama's projections, and the full fine-tune's arrays.

A LoRA-adapted projection keeps its matrix ``W`` (in, out) frozen and learns ``A`` (in, rank) and
``B`` (rank, out): ``y = x @ W + (alpha / rank) * (x @ A) @ B``. ``B`` starts at zero, so training
starts from the base model itself; ``A`` starts as PEFT's ``kaiming_uniform_(a=sqrt(5))`` does,
uniform in +-1/sqrt(in). The low-rank path is applied as two thin matmuls rather than folded into
``W``: a folded ``W + s A @ B`` would make TensorFlow form the full (in, out) gradient of the sum,
the weight gradient that freezing ``W`` saves (the backward pass then costs one matmul per frozen
projection, for the input's gradient, instead of two).

The arrays are named as :mod:`run` stores them (``blk<i>.<proj>.lora_a`` / ``.lora_b``); a full
fine-tune trains every array of :func:`run.flat_names`. Saved runs are folded back into plain
weights by :func:`run.apply_arrays`, so generation never needs this module.
"""

from __future__ import annotations

import numpy as np

from .run import LORA_TARGETS, flat_names


class LoraProjection:
    """A frozen projection with its low-rank path; :func:`forward.project` calls ``project(x)``."""

    def __init__(self, frozen, lora_a, lora_b, scale: float):
        self.frozen, self.lora_a, self.lora_b, self.scale = frozen, lora_a, lora_b, float(scale)

    def project(self, x):
        from ...tf_runtime import import_tf
        from .forward import project

        tf = import_tf()
        # The scale multiplies the rank-wide intermediate, not the projection-wide output: same sum, 1/100 the work.
        return project(x, self.frozen) + tf.matmul(self.scale * tf.matmul(x, self.lora_a), self.lora_b)


class NarrowProjection:
    """A frozen matrix kept in bfloat16: the input is rounded to it for the matmul, the product is float32.

    On a CPU with bfloat16 matrix units (AMX, AVX512_BF16) such a matmul runs several times faster
    than float32's; the rounding (8 bits of mantissa) is far finer than the Q4_1 file's 4-bit steps.
    """

    def __init__(self, weight):
        self.weight = weight

    def project(self, x):
        from ...tf_runtime import import_tf

        tf = import_tf()
        return tf.cast(tf.matmul(tf.cast(x, self.weight.dtype), self.weight), x.dtype)


def lora_names(n_layer: int, targets) -> list[str]:
    return [f"blk{i}.{key}.{part}" for i in range(n_layer) for key in targets for part in ("lora_a", "lora_b")]


def initial_lora(model, adapter: dict, seed: int) -> dict[str, np.ndarray]:
    """Fresh adapters: ``A`` uniform in +-1/sqrt(in) from ``seed``, ``B`` zero (the base's own output)."""
    rng = np.random.default_rng(seed)
    rank, arrays = int(adapter["rank"]), {}
    for index, layer in enumerate(model.layers):
        for key in adapter["targets"]:
            fan_in, fan_out = layer[key].shape
            bound = 1.0 / np.sqrt(fan_in)
            arrays[f"blk{index}.{key}.lora_a"] = rng.uniform(-bound, bound, (fan_in, rank)).astype(np.float32)
            arrays[f"blk{index}.{key}.lora_b"] = np.zeros((rank, fan_out), np.float32)
    return arrays


def initial_arrays(model, adapter: dict, seed: int) -> dict[str, np.ndarray]:
    """The trainable arrays before step 1: fresh adapters, or (full) a copy of every base array."""
    if adapter["kind"] == "lora":
        return initial_lora(model, adapter, seed)
    return {name: np.array(value, np.float32) for name, value in flat_names(model).items()}


LAYERS = "layers/"  # a stacked name: every layer's blk<i>.<rest> as one (n_layer, ...) array


def stacked(arrays: dict[str, np.ndarray], n_layer: int) -> dict[str, np.ndarray]:
    """Flat names (``blk<i>.<rest>``) -> one ``layers/<rest>`` array per rest, layers stacked first; others kept.

    Training runs the 30 identical blocks as one loop over stacked weights: a graph a thirtieth the
    size traces and optimises in seconds instead of a minute.
    """
    rests = sorted({name.split(".", 1)[1] for name in arrays if name.startswith("blk")})
    out = {name: value for name, value in arrays.items() if not name.startswith("blk")}
    for rest in rests:
        out[LAYERS + rest] = np.stack([arrays[f"blk{i}.{rest}"] for i in range(n_layer)])
    return out


def unstacked(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`stacked`: the flat names :mod:`run` saves."""
    out = {}
    for name, value in arrays.items():
        if name.startswith(LAYERS):
            out.update({f"blk{i}.{name[len(LAYERS):]}": np.ascontiguousarray(part) for i, part in enumerate(value)})
        else:
            out[name] = value
    return out


def layer_weights(frozen: dict, trainable: dict, adapter: dict, index) -> dict:
    """Block ``index``'s weights for ``forward.block``, sliced from stacked tensors (``layers/<key>``).

    LoRA: each target projection is a :class:`LoraProjection` over its frozen matrix; full: every
    array is the trainable one; none: the frozen ones.
    """
    from ...tf_runtime import import_tf

    tf = import_tf()
    source = {**frozen, **(trainable if adapter["kind"] == "full" else {})}
    layer = {name[len(LAYERS):]: tf.gather(value, index) for name, value in source.items() if name.startswith(LAYERS)}
    for key in LORA_TARGETS:  # every projection (the norms stay float32)
        if layer[key].dtype != tf.float32:
            layer[key] = NarrowProjection(layer[key])
    if adapter["kind"] == "lora":
        scale = float(adapter["alpha"]) / float(adapter["rank"])
        for key in adapter["targets"]:
            layer[key] = LoraProjection(layer[key], tf.gather(trainable[f"{LAYERS}{key}.lora_a"], index),
                                        tf.gather(trainable[f"{LAYERS}{key}.lora_b"], index), scale)
    return layer


def trainable_parameters(arrays: dict[str, np.ndarray]) -> int:
    return int(sum(value.size for value in arrays.values()))
