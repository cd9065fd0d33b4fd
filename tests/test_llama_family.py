"""The Llama family (generator/models/llama): weights, tokenizer and forward pass against independent paths.

* a numpy reference written the other way round (Hugging Face layout: the converter's Q/K
  permutation never applied, rotate-half rotary positions, one loop per head, float64) on the tiny
  random model of tests/llama_fixture.py;
* llama.cpp itself (llama-cpp-python, optional: it compiles) on the tiny model and the real 135M;
* on the real model and the 2021 catalog (slow): the median NLL per token issue 21 measured.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np
import pytest

from generator.errors import UserError
from generator.models.llama import model_file
from generator.models.llama.gguf_weights import gguf_qk_rows, hf_qk_rows
from llama_fixture import HPARAMS, converter_permute, write_tiny_llama

TEXTS = ["A young pilot must save her family from a ruthless gang.",
         "Glassblowers keep 12 old crafts alive in 1975's Paris.",
         "Love.",
         "When a scientist discovers a portal to another world, he must decide whether to tell anyone at all."]
PREFIX = "Netflix description: "

try:
    import llama_cpp
except ImportError:  # optional: installing llama-cpp-python compiles llama.cpp
    llama_cpp = None
needs_llama_cpp = pytest.mark.skipif(llama_cpp is None, reason="llama-cpp-python is not installed (optional; it compiles llama.cpp)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama") / "tiny.gguf"
    info = write_tiny_llama(path)
    from generator.models.llama.score import LlamaScorer

    return path, info, LlamaScorer(path, batch_size=3)


# --- the independent reference ------------------------------------------------------------------------


def reference_logits(weights: dict, tokens: list[int]) -> np.ndarray:
    """Llama in Hugging Face's conventions, float64, one sequence, explicit loops over heads."""
    hp = HPARAMS
    dh, group = hp["n_embd"] // hp["n_head"], hp["n_head"] // hp["n_head_kv"]
    time = len(tokens)
    pos = np.arange(time)[:, None]
    inv_freq = hp["rope_base"] ** (-np.arange(0, dh, 2) / dh)
    angle = np.concatenate([pos * inv_freq, pos * inv_freq], axis=1)  # (time, dh): HF's cat(freqs, freqs)

    def rotate_half(x):
        return np.concatenate([-x[:, dh // 2:], x[:, :dh // 2]], axis=1)

    def norm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + hp["rms_eps"]) * w

    x = weights["embed"][tokens].astype(np.float64)
    for layer in weights["layers"]:
        h = norm(x, layer["attn_norm"])
        q, k, v = h @ layer["q"].T, h @ layer["k"].T, h @ layer["v"].T
        heads = []
        for head in range(hp["n_head"]):
            kv = head // group
            qh = q[:, head * dh:(head + 1) * dh]
            kh, vh = k[:, kv * dh:(kv + 1) * dh], v[:, kv * dh:(kv + 1) * dh]
            qh = qh * np.cos(angle) + rotate_half(qh) * np.sin(angle)
            kh = kh * np.cos(angle) + rotate_half(kh) * np.sin(angle)
            scores = qh @ kh.T / np.sqrt(dh)
            scores[np.triu_indices(time, 1)] = -np.inf
            p = np.exp(scores - scores.max(1, keepdims=True))
            heads.append((p / p.sum(1, keepdims=True)) @ vh)
        x = x + np.concatenate(heads, axis=1) @ layer["o"].T
        h = norm(x, layer["ffn_norm"])
        gate = h @ layer["gate"].T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ layer["up"].T)) @ layer["down"].T
    return norm(x, weights["norm"]) @ weights["embed"].T


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def reference_token_logprobs(logits: np.ndarray, ids: list[int], context: int) -> np.ndarray:
    return log_softmax(logits)[np.arange(context - 1, len(ids) - 1), ids[context:]]


# --- tiny model: weights, forward, batching -----------------------------------------------------------


def test_qk_permutation_round_trips():
    weight = np.arange(4 * 8 * 3, dtype=np.float32).reshape(32, 3)
    assert np.array_equal(hf_qk_rows(gguf_qk_rows(weight, 4), 4), weight)
    assert np.array_equal(gguf_qk_rows(weight, 4), converter_permute(weight, 4))
    assert not np.array_equal(gguf_qk_rows(weight, 4), weight)


def test_forward_matches_the_numpy_reference(tiny):
    path, info, scorer = tiny
    ours = scorer.token_logprobs(TEXTS, PREFIX)  # one batch of 3 padded rows and one of 1
    for text, got in zip(TEXTS, ours):
        ids, context = scorer.split([text], PREFIX)[0]
        want = reference_token_logprobs(reference_logits(info["weights"], ids), ids, context)
        assert got.shape == want.shape and len(got) == len(ids) - context
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)


def test_batching_and_padding_do_not_change_scores(tiny):
    _, _, scorer = tiny
    together = scorer.token_logprobs(TEXTS, PREFIX)
    for text, got in zip(TEXTS, together):
        alone = scorer.token_logprobs([text], PREFIX)[0]
        np.testing.assert_allclose(got, alone, atol=1e-5)


def test_left_padding_matches_right_padding(tiny):
    """Positions count real tokens only, so a left-padded row (as a decoder batch has) reads the same."""
    import subprocess
    import sys

    import tensorflow as tf

    from generator.models.llama import forward

    if not tf.executing_eagerly():  # gpt-2-simple, imported by an earlier test, turned eager off: a fresh interpreter
        node = "tests/test_llama_family.py::test_left_padding_matches_right_padding"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:]
        return
    _, _, scorer = tiny
    ids = scorer.encode(TEXTS[0])
    right = np.array([ids + [0, 0, 0]], np.int32), np.array([[1] * len(ids) + [0] * 3], np.int32)
    left = np.array([[0, 0, 0] + ids], np.int32), np.array([[0] * 3 + [1] * len(ids)], np.int32)
    a = forward.logits(scorer.weights, scorer.hparams, *right).numpy()[0, :len(ids)]
    b = forward.logits(scorer.weights, scorer.hparams, *left).numpy()[0, 3:]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_text_tokens_follow_the_prefix(tiny):
    _, _, scorer = tiny
    (ids, context), = scorer.split(["A young pilot."], PREFIX)
    assert ids == scorer.encode(PREFIX + "A young pilot.")
    assert scorer.tokenizer.decode(ids[context:]).strip() == "A young pilot."
    assert scorer.token_logprobs([""], PREFIX)[0].shape == (0,)
    assert all((lp < 0).all() for lp in scorer.token_logprobs(TEXTS, PREFIX))


def test_tokenizer_round_trips_and_keeps_control_tokens_whole(tiny):
    _, info, scorer = tiny
    for text in TEXTS + ["  two  spaces\n\nnew lines, café, 日本語 😀", "<|im_start|>user"]:
        assert scorer.tokenizer.decode(scorer.encode(text)) == text
    assert scorer.encode("<|im_start|>user")[0] == info["tokens"].index("<|im_start|>")
    assert scorer.encode("1975") == [scorer.tokenizer.token_to_id(d) for d in "1975"]  # smollm: digits apart
    assert scorer.tokenizer.bos_ids == []  # the file says add_bos_token = False


def test_digest_and_missing_model_file(tiny, tmp_path, monkeypatch):
    path, _, scorer = tiny
    assert scorer.digest == model_file.file_sha256(path) and len(scorer.digest) == 64
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(UserError, match="fetch-model"):
        model_file.require_model()


# --- llama.cpp, when llama-cpp-python is installed ---------------------------------------------------


def llama_cpp_logprobs(llm, ids: list[int], context: int) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return log_softmax(np.array(llm.scores[:len(ids)], np.float64))[np.arange(context - 1, len(ids) - 1), ids[context:]]


def open_llama_cpp(path):
    # Batches of at most 16 tokens: llama-cpp-python 0.3.16's CPU path for a batch of 32 or more tokens
    # goes wrong on the tiny model's width-32 tensors (log-probabilities off by up to 4.5 nats from
    # the first token, where 16-token batches agree within 0.06); the real model agrees at any batch.
    return llama_cpp.Llama(str(path), n_ctx=256, n_batch=16, n_ubatch=16, logits_all=True, n_threads=2,
                           verbose=False)


@needs_llama_cpp
def test_tiny_model_agrees_with_llama_cpp(tiny):
    path, _, scorer = tiny
    llm = open_llama_cpp(path)
    for text, ours in zip(TEXTS, scorer.token_logprobs(TEXTS, PREFIX)):
        ids, context = scorer.split([text], PREFIX)[0]
        assert ids == llm.tokenize((PREFIX + text).encode(), add_bos=False, special=True)
        # llama.cpp multiplies quantised weights (Q8_0 embedding/output, Q4_1 attn_q) with Q8 activations
        theirs = llama_cpp_logprobs(llm, ids, context)
        np.testing.assert_allclose(ours, theirs, atol=0.15)
        assert abs(ours.mean() - theirs.mean()) < 0.02


@pytest.fixture(scope="module")
def real_model():
    path = model_file.model_path()
    if not path.is_file():
        pytest.skip(f"the reader's model file is absent ({path}; fetch it with {model_file.FETCH_COMMAND})")
    from generator.models.llama.score import LlamaScorer

    return LlamaScorer(path, threads=2)


def test_real_model_file_is_the_pinned_one(real_model):
    assert real_model.digest == model_file.SHA256
    hp = real_model.hparams
    assert (hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff, hp.n_vocab) == \
        (30, 576, 9, 3, 64, 1536, 49152)


@needs_llama_cpp
def test_real_model_agrees_with_llama_cpp(real_model):
    """Measured on these texts: single tokens within 0.25, a text's mean NLL within 0.11 (a 2-token
    text), all tokens' mean within 0.01. llama.cpp multiplies the Q4_1 weights with Q8-quantised
    activations; we use float32 activations on the same dequantised weights."""
    llm = open_llama_cpp(real_model.path)
    texts = TEXTS + ["2021. 日本語, café: isn't it?", "pilot ruthless a young family from her gang must save."]
    ours_all, theirs_all = [], []
    for text, ours in zip(texts, real_model.token_logprobs(texts, PREFIX)):
        ids, context = real_model.split([text], PREFIX)[0]
        assert ids == llm.tokenize((PREFIX + text).encode(), add_bos=False, special=True)
        theirs = llama_cpp_logprobs(llm, ids, context)
        np.testing.assert_allclose(ours, theirs, atol=0.4)
        assert abs(ours.mean() - theirs.mean()) < 0.2, (text, ours.mean(), theirs.mean())
        ours_all.append(ours)
        theirs_all.append(theirs)
    assert abs(np.concatenate(ours_all).mean() - np.concatenate(theirs_all).mean()) < 0.03


# --- the real model on real text (slow) ---------------------------------------------------------------


def median_nll(scorer, texts: list[str]) -> float:
    return float(np.median([-lp.mean() for lp in scorer.token_logprobs(texts, PREFIX)]))


def real_and_shuffled(csv_path, count: int = 200) -> tuple[list[str], list[str]]:
    import random

    from conftest import catalog_entries

    descriptions = sorted({entry.description for entry in catalog_entries(csv_path)})
    real = random.Random(2021).sample(descriptions, count)
    rng = random.Random(8)
    shuffled = []
    for text in real:
        words = text.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    return real, shuffled


@pytest.mark.slow
def test_real_descriptions_read_as_english_and_shuffled_ones_do_not(real_model):
    """Issue 21's table (llama.cpp): median NLL per token 4.53 on 200 real 2021 descriptions, 8.17 shuffled.

    Measured here on this seeded sample: 4.33 and 7.91 (the issue's sample and prefix split are not
    recorded; on the same texts we agree with llama.cpp to 0.004 per token on average)."""
    from conftest import shared_csv

    real, shuffled = real_and_shuffled(shared_csv(2021))
    real_nll, shuffled_nll = median_nll(real_model, real), median_nll(real_model, shuffled)
    assert abs(real_nll - 4.53) < 0.3, real_nll
    assert abs(shuffled_nll - 8.17) < 0.5 and shuffled_nll > real_nll + 3, (real_nll, shuffled_nll)
