"""The early-stopping sampler (generator/generate/reference_loop.py) against gpt-2-simple's own generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from generator.textformat import END_TOKEN, START_TOKEN, parse_sample
from generator.generate.driver import partial_paths, resume_fingerprint
from generator.generate.reference_loop import FastSampler
from generator.generate.rows import end_marker_table
from generator.generate.stage import GenerateSettings, generate

from conftest import SAMPLE_CATALOG

TRAIN_STEPS = 200  # the `test` profile's 20 steps never learn to write the end marker


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A `test`-profile checkpoint trained once, long enough to end most descriptions."""
    from generator.config import load_config
    from generator.ingest import ingest
    from generator.train import train

    assert SAMPLE_CATALOG.is_file(), "sample_data/catalog.csv ships with the project"
    work = tmp_path_factory.mktemp("fast")
    config = load_config(profile="test", environ={}, overrides={
        "paths": {"workdir": str(work)}, "train": {"steps": TRAIN_STEPS}})
    ingest(str(SAMPLE_CATALOG), work / "ingest", config.ingest)
    train(work / "ingest", config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    return config.paths.checkpoint_root / config.train.run_name


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the end-marker automaton ------------------------------------------------------------------

PIECES = ["<|", "endoftext", "|>", ".<|", "|>\n", "<", "|", "end", "oftext", "e", "ndoftext|", ">", "a", " the",
          END_TOKEN, "x<|endo", "ftext|>y", "<<|", "||>", "<|endoftext", "|"]


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(PIECES))), max_size=30))
def test_end_marker_automaton_fires_exactly_where_the_text_contains_the_marker(tokens):
    table = end_marker_table(PIECES, END_TOKEN)
    state, text = 0, ""
    for token in tokens:
        state = table[state, token]
        text += PIECES[token]
        assert (state == len(END_TOKEN)) == (END_TOKEN in text), (text, state)


# --- token-for-token equality with gpt2.generate ------------------------------------------------


def gpt2_simple_generate(run_dir, prefix, rows, length, seed, **sampling):
    """gpt-2-simple's own generate in a fresh session; also returns its sampler's (graph, op) seeds."""
    from generator.tf_runtime import import_gpt2, new_session

    gpt2 = import_gpt2()
    sess = new_session()
    try:
        gpt2.load_gpt2(sess, run_name=run_dir.name, checkpoint_dir=str(run_dir.parent))
        texts = gpt2.generate(sess, run_name=run_dir.name, checkpoint_dir=str(run_dir.parent), return_as_list=True,
                              nsamples=rows, batch_size=rows, length=length, prefix=prefix, seed=seed,
                              include_prefix=True, **sampling)
        # The while loop's body is a graph function: its Multinomial op carries the seeds.
        (node,) = [node for function in sess.graph.as_graph_def().library.function
                   for node in function.node_def if node.op == "Multinomial"]
        return texts, (node.attr["seed"].i, node.attr["seed2"].i)
    finally:
        sess.close()


@pytest.mark.slow
@pytest.mark.parametrize("prefix, sampling", [
    (START_TOKEN, {"temperature": 0.8, "top_p": 0.9}),
    (START_TOKEN + "[Movie] [Dramas] ", {"temperature": 1.0, "top_k": 40}),
])
def test_reproduces_gpt2_simple_generate_cut_at_the_end_marker(run_dir, prefix, sampling):
    rows, length = 12, 100
    texts, seeds = gpt2_simple_generate(run_dir, prefix, rows, length, seed=11, **sampling)
    sampler = FastSampler(run_dir, gpt2_seeds=seeds, **sampling)
    try:
        context = sampler.encoder.encode(prefix)
        samples, steps = sampler.sample(context, length, seeds=list(range(rows)))
        ours = [parse_sample(sampler.decode(context, row), prefix) for row in samples]
    finally:
        sampler.close()
    assert ours == [parse_sample(text, prefix) for text in texts]
    terminated = [len(row.tokens) for row in samples if row.terminated]
    assert len(terminated) >= 3, "the checkpoint should end some samples"
    assert min(terminated) < length  # those rows stopped early (gpt-2-simple decoded all `length` tokens)
    assert steps == max(len(row.tokens) for row in samples)


# --- the production sampler: same distribution, own random streams -----------------------------


def nucleus_both_ways(logits, p):
    """(ours, gpt-2-simple's top_p_logits) on the same logits."""
    from generator.generate.reference_loop import nucleus_logits
    from generator.tf_runtime import import_tf
    from gpt_2_simple.src import sample as gpt2_sample

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, logits.shape[1]])
        with tf.compat.v1.Session() as sess:
            return sess.run([nucleus_logits(tf, x, p), gpt2_sample.top_p_logits(x, p=p)], {x: logits})


def random_logits(vocab, seed=0):
    """Rows from peaked (a handful of tokens kept) to flat (most of the vocabulary kept)."""
    scales = np.repeat([0.3, 1.0, 2.0, 3.0, 5.0, 8.0, 15.0, 40.0], 4)[:, None]
    return (np.random.default_rng(seed).standard_normal((len(scales), vocab)) * scales).astype(np.float32)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.95])
def test_nucleus_filter_equals_gpt2_simple_top_p(p):
    ours, theirs = nucleus_both_ways(random_logits(4097), p)
    kept = (theirs > -1e9).sum(axis=1)
    assert kept.min() <= 3 and kept.max() > 1000
    np.testing.assert_array_equal(ours, theirs)


def test_nucleus_filter_on_a_gpt2_vocabulary_differs_only_within_rounding():
    """With tens of thousands of kept tokens, float32 cumulative sums in two orders may disagree on the last one."""
    logits = random_logits(50257)
    ours, theirs = nucleus_both_ways(logits, 0.9)

    def softmax(x):
        e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ours_kept, theirs_kept = (ours > -1e9).sum(axis=1), (theirs > -1e9).sum(axis=1)
    assert (ours_kept == theirs_kept).mean() > 0.8 and np.abs(ours_kept - theirs_kept).max() <= 2
    assert (0.5 * np.abs(softmax(ours) - softmax(theirs)).sum(axis=1)).max() < 5e-5


def reference_probabilities(run_dir, context, temperature, top_p):
    """gpt-2-simple's next-token distribution: its model, its top_p_logits, softmax."""
    from generator.tf_runtime import import_tf
    from gpt_2_simple.src import model as gpt2_model
    from gpt_2_simple.src import sample as gpt2_sample

    tf = import_tf()
    hparams = gpt2_model.default_hparams()
    hparams.override_from_dict(json.loads((run_dir / "hparams.json").read_text()))
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [1, None])
        logits = gpt2_model.model(hparams=hparams, X=x)["logits"][:, -1, :] / temperature
        probs = tf.nn.softmax(gpt2_sample.top_p_logits(logits, p=top_p))
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, tf.train.latest_checkpoint(str(run_dir)))
            return sess.run(probs, {x: [context]})[0].astype(np.float64)


@pytest.mark.slow
def test_each_draw_is_the_inverse_cdf_of_gpt2_simple_distribution(run_dir):
    """Our random numbers differ from gpt-2-simple's, the distribution they are mapped through does not."""
    rows = 1500
    sampler = FastSampler(run_dir, temperature=0.9, top_p=0.95)
    try:
        context = sampler.encoder.encode(START_TOKEN + "[Movie] ")
        seeds = [[3, index] for index in range(rows)]
        samples, _ = sampler.sample(context, 1, seeds)
    finally:
        sampler.close()
    probs = reference_probabilities(run_dir, context, 0.9, 0.95)
    cdf = np.cumsum(probs)
    uniforms = np.array([np.random.default_rng(seed).random(1)[0] for seed in seeds])
    expected = np.minimum(np.searchsorted(cdf, uniforms * cdf[-1], side="right"), len(probs) - 1)
    drawn = np.array([row.tokens[0] for row in samples])
    assert (probs > 0).sum() > 5  # a real choice, not a forced token
    # Only a uniform within float rounding of a CDF step may land differently.
    assert (drawn == expected).mean() > 0.995


@pytest.mark.slow
def test_every_row_ends_at_its_marker_or_at_the_cap(run_dir):
    sampler = FastSampler(run_dir, temperature=1.0)
    try:
        context = sampler.encoder.encode(START_TOKEN)
        samples, steps = sampler.sample(context, 40, seeds=[[5, index] for index in range(24)])
        for row in samples:
            text = sampler.encoder.decode(row.tokens)
            if row.terminated:  # the marker is completed by the row's last token, not earlier
                assert END_TOKEN in text and END_TOKEN not in sampler.encoder.decode(row.tokens[:-1])
            else:
                assert END_TOKEN not in text and len(row.tokens) == 40
            assert row.logprob is not None and row.logprob < 0
    finally:
        sampler.close()
    assert {row.terminated for row in samples} == {True, False}
    assert steps == 40


# --- the generate stage's fast backend -----------------------------------------------------------


def fast_settings(**overrides):
    return GenerateSettings(**{"samples": 7, "batch_size": 3, "seed": 5, "length": 60, "backend": "fast",
                               "progress": False, **overrides})


@pytest.mark.slow
def test_fast_backend_writes_any_number_of_samples_reproducibly(run_dir, tmp_path):
    manifest = generate(run_dir, tmp_path / "a.jsonl", fast_settings())
    generate(run_dir, tmp_path / "b.jsonl", fast_settings())
    first = read(tmp_path / "a.jsonl")
    assert first == read(tmp_path / "b.jsonl")
    assert [record["index"] for record in first] == list(range(7))  # batches of 3, 3 and a partial 1
    assert manifest["samples"] == 7 and manifest["batches"] == 3 and manifest["resumed_from"] == 0
    for record in first:
        assert isinstance(record["terminated"], bool) and isinstance(record["logprob"], float)
        assert START_TOKEN not in record["text"] and END_TOKEN not in record["text"]
    assert manifest["terminated"] >= 1
    assert manifest["decode_steps"] <= 3 * 60
    assert not any(path.exists() for path in partial_paths(tmp_path / "a.jsonl"))


@pytest.mark.slow
def test_samples_do_not_depend_on_batch_size_or_compaction(run_dir, tmp_path):
    generate(run_dir, tmp_path / "a.jsonl", fast_settings(batch_size=7))
    generate(run_dir, tmp_path / "b.jsonl", fast_settings(batch_size=2, compact=False))
    first, second = read(tmp_path / "a.jsonl"), read(tmp_path / "b.jsonl")
    # Each sample has its own random stream; only float rounding in differently shaped
    # matrix products could ever move a draw across a CDF step.
    same = sum(a["text"] == b["text"] for a, b in zip(first, second))
    assert same >= 6, (first, second)


@pytest.mark.slow
def test_resume_continues_an_interrupted_run_from_its_last_whole_batch(run_dir, tmp_path):
    settings = fast_settings(samples=8)
    generate(run_dir, tmp_path / "full.jsonl", settings)
    expected = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)

    out = tmp_path / "out.jsonl"
    partial, meta = partial_paths(out)

    def interrupted_run(fingerprint_settings):
        # Batches are lines 0-2, 3-5, 6-7. Five complete lines (line 0 marked) and a torn sixth:
        # only the first batch is whole.
        marked = {**json.loads(expected[0]), "text": "kept from the interrupted run"}
        partial.write_text(json.dumps(marked) + "\n" + "".join(expected[1:5]) + expected[5][:12])
        meta.write_text(json.dumps(resume_fingerprint(run_dir, fingerprint_settings, 60), sort_keys=True))

    interrupted_run(settings)
    manifest = generate(run_dir, out, settings)
    lines = out.read_text().splitlines(keepends=True)
    # Lines 0-2 were kept (the marker survives), the rest regenerated identically.
    assert manifest["resumed_from"] == 3 and manifest["batches"] == 2
    assert json.loads(lines[0])["text"] == "kept from the interrupted run"
    assert lines[1:] == expected[1:]
    assert not partial.exists() and not meta.exists()

    # A partial file from other settings is not resumed.
    interrupted_run(fast_settings(samples=8, seed=6))
    manifest = generate(run_dir, out, settings)
    assert manifest["resumed_from"] == 0 and out.read_text().splitlines(keepends=True) == expected
