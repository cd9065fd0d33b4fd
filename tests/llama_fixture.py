"""A tiny random Llama written as a GGUF file the way llama.cpp's converter writes a real one.

2 layers, width 32, 4 query heads sharing 2 key/value heads (head dim 8), SwiGLU width 64, tied
embeddings, a byte-level BPE vocabulary trained here (HF ``tokenizers``) with SmolLM2's control
tokens first. Q and K rows go through the converter's per-head permutation; the token embedding is
stored Q8_0 and layer 0's Q projection Q4_1 (like the real file's), the rest F32.

``write_tiny_llama`` returns the weights in Hugging Face's layout (projections (out, in), Q/K not
permuted) with the quantised ones already rounded as the file stores them, for a reference
implementation that never reads the file's layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HPARAMS = dict(n_layer=2, n_embd=32, n_head=4, n_head_kv=2, n_ff=64, n_ctx=128, rope_base=10000.0, rms_eps=1e-5)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Netflix description: A young pilot must save her family from a ruthless gang.",
    "When a scientist discovers a portal to another world, he must decide whether to tell anyone.",
    "In 1975, two sisters open a bakery in Paris and find love, rivals and 12 secret recipes.",
    "A documentary about beekeepers and glassblowers who keep old crafts alive.",
]


def tiny_vocab(corpus=CORPUS, vocab_size: int = 400) -> tuple[list[str], list[str]]:
    """(tokens, merges) of a byte-level BPE trained on ``corpus``, control tokens at ids 0..2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    return tokens, merges


def converter_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute: each head's two halves interleaved row by row."""
    out_dim = weight.shape[0]
    return weight.reshape(n_head, 2, out_dim // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def random_hf_weights(seed: int, n_vocab: int) -> dict:
    hp = HPARAMS
    rng = np.random.default_rng(seed)
    width, dh = hp["n_embd"], hp["n_embd"] // hp["n_head"]

    def matrix(out_dim, in_dim):
        return (rng.standard_normal((out_dim, in_dim)) * (1.5 / np.sqrt(in_dim))).astype(np.float32)

    def norm():
        return (1.0 + 0.2 * rng.standard_normal(width)).astype(np.float32)

    layers = [{"attn_norm": norm(), "q": matrix(hp["n_head"] * dh, width), "k": matrix(hp["n_head_kv"] * dh, width),
               "v": matrix(hp["n_head_kv"] * dh, width), "o": matrix(width, hp["n_head"] * dh), "ffn_norm": norm(),
               "gate": matrix(hp["n_ff"], width), "up": matrix(hp["n_ff"], width), "down": matrix(width, hp["n_ff"])}
              for _ in range(hp["n_layer"])]
    embed = (rng.standard_normal((n_vocab, width)) * 0.25).astype(np.float32)
    return {"embed": embed, "norm": norm(), "layers": layers}


def write_tiny_llama(path: str | Path, seed: int = 0) -> dict:
    """Write the tiny model to ``path``; return {"hparams", "tokens", "merges", "weights" (HF layout, as stored)}."""
    import gguf
    from gguf.quants import dequantize, quantize

    hp = HPARAMS
    tokens, merges = tiny_vocab()
    weights = random_hf_weights(seed, len(tokens))
    q8, q4 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_1

    def rounded(value, qtype):  # quantisation is per row of 32 inputs, so it commutes with the row permutation
        return dequantize(quantize(value, qtype), qtype).astype(np.float32)

    weights["embed"] = rounded(weights["embed"], q8)
    weights["layers"][0]["q"] = rounded(weights["layers"][0]["q"], q4)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-fixture")
    writer.add_block_count(hp["n_layer"])
    writer.add_context_length(hp["n_ctx"])
    writer.add_embedding_length(hp["n_embd"])
    writer.add_feed_forward_length(hp["n_ff"])
    writer.add_head_count(hp["n_head"])
    writer.add_head_count_kv(hp["n_head_kv"])
    writer.add_rope_dimension_count(hp["n_embd"] // hp["n_head"])
    writer.add_rope_freq_base(hp["rope_base"])
    writer.add_layer_norm_rms_eps(hp["rms_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)

    writer.add_tensor("token_embd.weight", quantize(weights["embed"], q8), raw_dtype=q8)
    for i, layer in enumerate(weights["layers"]):
        q = converter_permute(layer["q"], hp["n_head"])
        k = converter_permute(layer["k"], hp["n_head_kv"])
        writer.add_tensor(f"blk.{i}.attn_norm.weight", layer["attn_norm"])
        if i == 0:
            writer.add_tensor(f"blk.{i}.attn_q.weight", quantize(q, q4), raw_dtype=q4)
        else:
            writer.add_tensor(f"blk.{i}.attn_q.weight", q)
        writer.add_tensor(f"blk.{i}.attn_k.weight", k)
        writer.add_tensor(f"blk.{i}.attn_v.weight", layer["v"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", layer["o"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", layer["ffn_norm"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", layer["gate"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", layer["up"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", layer["down"])
    writer.add_tensor("output_norm.weight", weights["norm"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"hparams": dict(hp), "tokens": tokens, "merges": merges, "weights": weights}
