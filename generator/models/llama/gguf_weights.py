"""A Llama GGUF file as numpy: hyper-parameters, dequantised weights, tokenizer fields.

GGUF lists a tensor's dimensions fastest-first (``ne0`` = the input width of a projection), so
numpy's row-major shape is the reverse: a projection reads back as ``(out, in)``, as in PyTorch.
We hand the forward pass ``(in, out)`` matrices (``x @ w``).

Q and K stay in the file's layout. llama.cpp's converter (``convert_hf_to_gguf.py``, ``permute``)
reorders each head's rows of Hugging Face's ``q_proj``/``k_proj`` from "first half, second half"
to interleaved pairs, because the LLAMA architecture applies rotary positions in llama.cpp's
"normal" mode: to adjacent pairs ``(x[2i], x[2i+1])`` at frequency ``base ** (-2i / head_dim)``.
The forward pass therefore rotates adjacent pairs; ``hf_qk_rows`` undoes the permutation for an
independent implementation in Hugging Face's rotate-half convention.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...errors import UserError

LAYER_TENSORS = {  # our name -> GGUF name inside blk.<i>.
    "attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
    "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down",
}


@dataclasses.dataclass(frozen=True)
class LlamaHparams:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    n_ctx: int
    rope_base: float
    rms_eps: float

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def field_value(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_hparams(reader) -> LlamaHparams:
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise UserError(f"GGUF architecture is {arch!r}, not 'llama'", "use a Llama-architecture GGUF model file")

    def get(key: str, default=None):
        value = field_value(reader, f"llama.{key}", default)
        if value is None:
            raise UserError(f"GGUF file lacks llama.{key}", "use a complete Llama GGUF model file")
        return value

    n_vocab = field_value(reader, "llama.vocab_size") or len(field_value(reader, "tokenizer.ggml.tokens"))
    return LlamaHparams(
        n_layer=int(get("block_count")), n_embd=int(get("embedding_length")),
        n_head=int(get("attention.head_count")), n_head_kv=int(get("attention.head_count_kv")),
        n_ff=int(get("feed_forward_length")), n_vocab=int(n_vocab), n_ctx=int(get("context_length")),
        rope_base=float(get("rope.freq_base", 10000.0)),
        rms_eps=float(get("attention.layer_norm_rms_epsilon")))


def dequantised(tensor) -> np.ndarray:
    """One GGUF tensor as float32 in numpy order (dimensions reversed from GGUF's)."""
    from gguf.quants import dequantize

    values = dequantize(np.asarray(tensor.data), tensor.tensor_type)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(tuple(int(d) for d in reversed(tensor.shape)))


@dataclasses.dataclass
class LlamaFile:
    """What a forward pass and a tokenizer need, read from one GGUF file."""
    hparams: LlamaHparams
    embed: np.ndarray              # (n_vocab, n_embd)
    output_norm: np.ndarray        # (n_embd,)
    output: np.ndarray | None      # (n_vocab, n_embd); None when tied to embed
    layers: list[dict]             # LAYER_TENSORS names; projections as (in, out)
    tokenizer_fields: dict


def tokenizer_fields(reader) -> dict:
    keys = ("model", "pre", "tokens", "merges", "token_type", "bos_token_id", "eos_token_id",
            "padding_token_id", "add_bos_token", "add_eos_token")
    return {key: field_value(reader, f"tokenizer.ggml.{key}") for key in keys}


def load_llama_gguf(path: str | Path) -> LlamaFile:
    import gguf

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} not found", "python -m generator fetch-model")
    reader = gguf.GGUFReader(str(path))
    hparams = read_hparams(reader)
    tensors = {t.name: t for t in reader.tensors}

    def take(name: str) -> np.ndarray:
        if name not in tensors:
            raise UserError(f"GGUF file {path.name} lacks tensor {name}", "use a complete Llama GGUF model file")
        return dequantised(tensors[name])

    layers = []
    for index in range(hparams.n_layer):
        layer = {}
        for ours, theirs in LAYER_TENSORS.items():
            value = take(f"blk.{index}.{theirs}.weight")
            layer[ours] = value if value.ndim == 1 else np.ascontiguousarray(value.T)
        layers.append(layer)
    return LlamaFile(hparams=hparams, embed=take("token_embd.weight"), output_norm=take("output_norm.weight"),
                     output=take("output.weight") if "output.weight" in tensors else None,
                     layers=layers, tokenizer_fields=tokenizer_fields(reader))


def hf_qk_rows(weight_out_in: np.ndarray, n_head: int) -> np.ndarray:
    """Undo the converter's per-head interleave of Q/K rows: GGUF (out, in) -> Hugging Face (out, in)."""
    out_dim = weight_out_in.shape[0]
    head_dim = out_dim // n_head
    return (weight_out_in.reshape(n_head, head_dim // 2, 2, -1).swapaxes(1, 2).reshape(weight_out_in.shape))


def gguf_qk_rows(weight_out_in: np.ndarray, n_head: int) -> np.ndarray:
    """The converter's permutation (Hugging Face rows -> GGUF rows), for writing test models."""
    out_dim = weight_out_in.shape[0]
    head_dim = out_dim // n_head
    return (weight_out_in.reshape(n_head, 2, head_dim // 2, -1).swapaxes(1, 2).reshape(weight_out_in.shape))
