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

        tf = import_tf()
        return tf.matmul(x, self.frozen) + self.scale * tf.matmul(tf.matmul(x, self.lora_a), self.lora_b)


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


def network_weights(frozen: dict, trainable: dict, adapter: dict) -> dict:
    """``forward``'s weights dict from frozen tensors and trainable variables (both by flat name).

    LoRA: each target projection becomes a :class:`LoraProjection` over its frozen matrix; full:
    every array is the trainable one.
    """
    source = {**frozen, **(trainable if adapter["kind"] == "full" else {})}
    n_layer = 1 + max(int(name[3:].split(".", 1)[0]) for name in source if name.startswith("blk"))
    layers = [{} for _ in range(n_layer)]
    for name, value in source.items():
        if name.startswith("blk"):
            index, key = name[3:].split(".", 1)
            layers[int(index)][key] = value
    if adapter["kind"] == "lora":
        scale = float(adapter["alpha"]) / float(adapter["rank"])
        for index, layer in enumerate(layers):
            for key in adapter["targets"]:
                layer[key] = LoraProjection(layer[key], trainable[f"blk{index}.{key}.lora_a"],
                                            trainable[f"blk{index}.{key}.lora_b"], scale)
    weights = {"embed": source["embed"], "output_norm": source["output_norm"], "layers": layers}
    if "output" in source:
        weights["output"] = source["output"]
    return weights


def trainable_parameters(arrays: dict[str, np.ndarray]) -> int:
    return int(sum(value.size for value in arrays.values()))
