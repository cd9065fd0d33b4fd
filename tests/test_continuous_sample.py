"""The continuous-batching sampler (generator/generate/sampler.py) and catalog conditioning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.textformat import START_TOKEN
from generator.generate.stage import GenerateSettings, draw_conditions, generate, sample_prefixes

from test_fast_sample import random_logits, read, run_dir  # noqa: F401  (run_dir: the session checkpoint)


def filter_both_ways(logits, **rule):
    """(ours under XLA, gpt-2-simple's top_p_logits / top_k_logits) on the same logits."""
    from generator.generate.sampler import filter_logits
    from generator.tf_runtime import import_tf
    from gpt_2_simple.src import sample as gpt2_sample

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, logits.shape)
        ours = tf.function(lambda v: filter_logits(tf, v, top_k=rule.get("top_k", 0), top_p=rule.get("top_p", 0.0)),
                           jit_compile=True, autograph=False)(x)
        theirs = gpt2_sample.top_p_logits(x, p=rule["top_p"]) if "top_p" in rule else \
            gpt2_sample.top_k_logits(x, k=rule["top_k"])
        with tf.compat.v1.Session() as sess:
            return sess.run([ours, theirs], {x: logits})


@pytest.mark.parametrize("rule", [{"top_p": 0.5}, {"top_p": 0.9}, {"top_p": 0.95}, {"top_k": 1}, {"top_k": 40}])
def test_sort_free_filter_equals_gpt2_simple(rule):
    logits = random_logits(4097)
    logits[0, :10] = -1e10  # masked (unseen) tokens stay out
    ours, theirs = filter_both_ways(logits, **rule)
    kept = (theirs > -1e9).sum(axis=1)
    assert kept.min() <= 40 and (kept.max() > 1000 or "top_k" in rule)
    differ = np.argwhere(ours != theirs)
    assert len(differ) <= 2, differ
    for row, token in differ:  # only where the mass before the token is within float rounding of p
        probs = np.exp(logits[row].astype(np.float64) - logits[row].max())
        probs /= probs.sum()
        before = probs[logits[row] > logits[row, token]].sum()
        assert "top_p" in rule and abs(before - rule["top_p"]) < 1e-5, (row, token, before)


def test_inverse_cdf_is_searchsorted_over_the_running_sum():
    from generator.generate.sampler import inverse_cdf
    from generator.tf_runtime import import_tf

    tf = import_tf()
    logits = random_logits(4097, seed=3)
    logits[:, ::7] = -1e10  # filtered tokens carry no mass and are never drawn
    uniforms = np.random.default_rng(4).random(len(logits))
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, logits.shape)
        u = tf.compat.v1.placeholder(tf.float64, uniforms.shape)
        drawn = tf.function(lambda a, b: inverse_cdf(tf, a, b), jit_compile=True, autograph=False)(x, u)
        with tf.compat.v1.Session() as sess:
            ours = sess.run(drawn, {x: logits, u: uniforms})
    weights = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    expected = [min(np.searchsorted(row, value * row[-1], side="right"), 4096) for row, value in zip(cdf, uniforms)]
    assert (ours == np.array(expected)).mean() >= 31 / 32  # only a uniform within rounding of a CDF step may differ
    assert not np.any(ours % 7 == 0)


def test_conditions_are_drawn_per_index_from_the_catalog_mix():
    counts = {"[Movie] [Dramas]": 70, "[TV Show] [Comedies]": 25, "[Movie] [Horror Movies]": 5}
    drawn = draw_conditions(counts, seed=9, indices=range(4000))
    assert draw_conditions(counts, seed=9, indices=range(2000, 2010)) == drawn[2000:2010]  # batching-free
    assert draw_conditions(counts, seed=10, indices=range(100)) != drawn[:100]
    shares = {name: drawn.count(name) / len(drawn) for name in counts}
    for name, count in counts.items():
        assert abs(shares[name] - count / 100) < 0.03, shares


def fast_settings(**overrides):
    return GenerateSettings(**{"samples": 10, "batch_size": 4, "seed": 5, "length": 50, "backend": "fast",
                               "progress": False, **overrides})


@pytest.mark.slow
def test_samples_do_not_depend_on_batch_size_or_refills_with_catalog_conditions(run_dir, tmp_path):  # noqa: F811
    info = json.loads((run_dir / "generation.json").read_text())
    assert len(info["condition_counts"]) >= 2 and info["seen_tokens"]
    generate(run_dir, tmp_path / "a.jsonl", fast_settings(batch_size=4))
    manifest = generate(run_dir, tmp_path / "b.jsonl", fast_settings(batch_size=16))
    first, second = read(tmp_path / "a.jsonl"), read(tmp_path / "b.jsonl")
    assert [r["index"] for r in first] == list(range(10))
    # Each sample has both a type and a genre, drawn from the training mix by its index.
    prefixes = sample_prefixes(run_dir, fast_settings())
    assert len(set(prefixes)) >= 2 and manifest["conditions_used"] == len(set(prefixes))
    for record, prefix in zip(first, prefixes):
        assert prefix == f"{START_TOKEN} [{record['type']}] [{record['genre']}]"
    same = sum(a["text"] == b["text"] and a["genre"] == b["genre"] for a, b in zip(first, second))
    assert same >= 9, (first, second)  # as in test_fast_sample: only float rounding may move a draw


@pytest.mark.slow
def test_tokens_never_seen_in_training_are_never_sampled(run_dir):  # noqa: F811
    from generator.generate.sampler import ContinuousSampler
    from generator.generate.driver import sample_seed
    from generator.checkpoints import read_generation_info
    from generator.generate.driver import allowed_tokens

    n_vocab = json.loads((run_dir / "hparams.json").read_text())["n_vocab"]
    allowed = allowed_tokens(read_generation_info(run_dir)["seen_tokens"], n_vocab)
    assert 0 < allowed.sum() < n_vocab
    # At temperature 3 without truncation the untrained tail is likely; the mask still keeps it out.
    from gpt_2_simple.src import encoder as gpt2_encoder

    context = gpt2_encoder.get_encoder(str(run_dir)).encode(START_TOKEN)
    jobs = [(index, 0, sample_seed(1, index)) for index in range(24)]
    drawn = {}
    for mask in (None, allowed):
        sampler = ContinuousSampler(run_dir, [context], 30, batch_size=8, temperature=3.0, allowed=mask)
        try:
            drawn[mask is None] = {token for _, row in sampler.generate(jobs) for token in row.tokens}
        finally:
            sampler.close()
    assert drawn[True] - set(np.flatnonzero(allowed)), "without the mask some unseen token is drawn"
    assert drawn[False] <= set(np.flatnonzero(allowed))
