"""A Llama-family checkpoint run: which base it adapts, and its weights at each saved step.

A run folder (``<checkpoint_root>/<run_name>/``, the same place a GPT-2 run lives) holds:

* ``family.json``: ``{"family": "llama", "base": {"path", "sha256"}, "adapter": {...} | null}``;
  ``adapter`` is ``{"kind": "lora", "rank", "alpha", "targets": [...]}`` or ``{"kind": "full"}``;
  ``null`` means the base itself, untrained (a prompted night).
* ``model-<N>.npz``: the trainable arrays after step ``N``, written atomically. For LoRA, per layer
  ``blk<i>.<proj>.lora_a`` (in, rank) and ``blk<i>.<proj>.lora_b`` (rank, out), so a projection is
  ``W + (alpha / rank) * A @ B``; for a full fine-tune, the arrays that replace the base's under
  the names of :func:`flat_names` (``embed``, ``output_norm``, ``output``, ``blk<i>.<name>``).
* ``counter``: the latest complete step, as gpt-2-simple's runs have (written after its npz).

The base's bytes are never copied: ``sha256`` pins them, and a run whose base file changed is refused
(its adapter would be applied to other weights). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from ...artifacts import atomic_write_json, atomic_write_text, read_json_object
from ...errors import UserError
from .model_file import file_sha256

FAMILY_FILE = "family.json"
COUNTER_FILE = "counter"
_WEIGHTS = re.compile(r"model-(\d+)\.npz$")
LORA_TARGETS = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")


def is_llama_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FAMILY_FILE).is_file()


def write_family(run_dir: str | Path, base_path: str | Path, base_sha256: str, adapter: dict | None) -> dict:
    record = {"family": "llama", "base": {"path": str(base_path), "sha256": base_sha256}, "adapter": adapter}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(run_dir) / FAMILY_FILE, record)
    return record


def read_family(run_dir: str | Path) -> dict:
    record = read_json_object(Path(run_dir) / FAMILY_FILE, "Llama run record", "delete the run folder and train again")
    if record.get("family") != "llama" or not isinstance(record.get("base"), dict):
        raise UserError(f"{Path(run_dir) / FAMILY_FILE} is not a Llama run record",
                        "delete the run folder and train again")
    return record


def weights_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"model-{int(step)}.npz"


def saved_steps(run_dir: str | Path) -> list[int]:
    return sorted(int(m.group(1)) for p in Path(run_dir).glob("model-*.npz") if (m := _WEIGHTS.fullmatch(p.name)))


def latest_step(run_dir: str | Path) -> int:
    """The step named by ``counter`` when its weights exist, else the newest saved step (0: none)."""
    counter = Path(run_dir) / COUNTER_FILE
    if counter.is_file():
        text = counter.read_text().strip()
        if text.isdigit() and (int(text) == 0 or weights_path(run_dir, int(text)).is_file()):
            return int(text)
    steps = saved_steps(run_dir)
    return steps[-1] if steps else 0


def save_weights(run_dir: str | Path, step: int, arrays: dict[str, np.ndarray], keep: int = 2) -> Path:
    """Write ``model-<step>.npz`` atomically, then ``counter``; keep the newest ``keep`` saves."""
    path = weights_path(run_dir, step)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **{name: np.asarray(value, np.float32) for name, value in arrays.items()})
    partial.replace(path)
    atomic_write_text(Path(run_dir) / COUNTER_FILE, f"{int(step)}\n")
    for old in saved_steps(run_dir)[:-keep]:
        weights_path(run_dir, old).unlink(missing_ok=True)
    return path


def load_weights(run_dir: str | Path, step: int | None = None) -> dict[str, np.ndarray]:
    step = latest_step(run_dir) if step is None else step
    if step == 0:
        return {}
    with np.load(weights_path(run_dir, step)) as data:
        return {name: data[name] for name in data.files}


def flat_names(model) -> dict[str, np.ndarray]:
    """The base's arrays by flat name (``blk<i>.<name>`` for a layer's), the names a full save uses."""
    names = {"embed": model.embed, "output_norm": model.output_norm}
    if model.output is not None:
        names["output"] = model.output
    for index, layer in enumerate(model.layers):
        names.update({f"blk{index}.{key}": value for key, value in layer.items()})
    return names


@dataclasses.dataclass
class LlamaRun:
    """A run ready to use: the base file's arrays with the run's step applied, and what it was."""

    model: object  # gguf_weights.LlamaFile, its arrays already adapted
    family: dict
    step: int


def check_base(family: dict) -> Path:
    path = Path(family["base"]["path"])
    if not path.is_file():
        raise UserError(f"the run's base model file {path} is missing", "python -m generator fetch-model")
    if file_sha256(path) != family["base"]["sha256"]:
        raise UserError(f"the run's base model file {path} changed since the run was trained",
                        "restore the original file, or delete the run and train again")
    return path


def apply_arrays(model, family: dict, arrays: dict[str, np.ndarray]) -> None:
    """Fold the run's trained arrays into the base ``model`` in place (LoRA merged, full replaced)."""
    adapter = family.get("adapter") or {}
    if not arrays:
        return
    if adapter.get("kind") == "lora":
        scale = float(adapter["alpha"]) / float(adapter["rank"])
        for index, layer in enumerate(model.layers):
            for key in adapter["targets"]:
                a, b = arrays.get(f"blk{index}.{key}.lora_a"), arrays.get(f"blk{index}.{key}.lora_b")
                if a is not None and b is not None:
                    layer[key] = layer[key] + scale * (a @ b)
        return
    for name, value in arrays.items():
        if name.startswith("blk"):
            index, key = name[3:].split(".", 1)
            model.layers[int(index)][key] = value
        else:
            setattr(model, name, value)


def load_run(run_dir: str | Path, step: int | None = None) -> LlamaRun:
    from .gguf_weights import load_llama_gguf

    family = read_family(run_dir)
    model = load_llama_gguf(check_base(family))
    step = latest_step(run_dir) if step is None else step
    apply_arrays(model, family, load_weights(run_dir, step))
    return LlamaRun(model=model, family=family, step=step)
