"""Our per-row decoding step (generator/models/gpt2/forward.py) against gpt-2-simple's model.model."""

from __future__ import annotations

import json

import numpy as np
import pytest


def reference_logits(run_dir, sequences):
    """gpt-2-simple's logits for each (equal-length) sequence, in one forward pass."""
    from generator.tf_runtime import import_tf
    from gpt_2_simple.src import model as gpt2_model

    tf = import_tf()
    hparams = gpt2_model.default_hparams()
    hparams.override_from_dict(json.loads((run_dir / "hparams.json").read_text()))
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [None, None])
        logits = gpt2_model.model(hparams=hparams, X=x)["logits"]
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, tf.train.latest_checkpoint(str(run_dir)))
            return sess.run(logits, {x: sequences})


@pytest.mark.parametrize("windowed", [0, 4])  # 4: attention spans 4, 8, 16 of the cache as rows advance
def test_decode_step_with_per_row_positions_matches_gpt2_simple_logits(trained_run, windowed):
    """Row 0 decodes A from step 0; row 1 decodes junk, then restarts at position 0 with B (a refill).

    Each logit must equal gpt-2-simple's for the same prefix: the junk keys left in
    row 1's cache beyond its position are masked out, and rows do not see each other.
    """
    from generator.models.gpt2.forward import Shape, cache_shape, decode_step, model_variables, restore
    from generator.tf_runtime import import_tf

    tf = import_tf()
    config, ingest_dir, root = trained_run
    run_dir = root / config.train.run_name
    shape = Shape.from_hparams(json.loads((run_dir / "hparams.json").read_text()))
    rng = np.random.default_rng(0)
    length, junk = 12, 3
    a, b, c = (rng.integers(0, shape.n_vocab, length).tolist() for _ in range(3))
    expected = reference_logits(run_dir, [a, b])

    # (row 0 token, position), (row 1 token, position) per step
    schedule = [((a[t], t) if t < length else (a[-1], length), (c[t], t) if t < junk else (b[t - junk], t - junk))
                for t in range(length + junk)]
    graph = tf.Graph()
    with graph.as_default():
        weights = model_variables(tf, shape)
        tokens = tf.compat.v1.placeholder(tf.int32, [2])
        positions = tf.compat.v1.placeholder(tf.int32, [2])
        cache_in = [tf.compat.v1.placeholder(tf.float32, cache_shape(shape, 2, 16)) for _ in range(2 * shape.n_layer)]
        logits, cache_out = decode_step(tf, weights, shape, tokens, positions, cache_in, windowed=windowed)
        with tf.compat.v1.Session() as sess:
            restore(tf, sess, weights, tf.train.latest_checkpoint(str(run_dir)))
            cache = [np.zeros(cache_shape(shape, 2, 16), np.float32) for _ in cache_in]
            ours = {0: [], 1: []}
            for step in schedule:
                out, cache = sess.run([logits, cache_out], {tokens: [step[0][0], step[1][0]],
                                                            positions: [step[0][1], step[1][1]],
                                                            **dict(zip(cache_in, cache))})
                for row in (0, 1):
                    ours[row].append(out[row])
    row0 = np.array(ours[0][:length])
    row1 = np.array(ours[1][junk:])
    scale = np.abs(expected).max()
    assert scale > 0.1
    np.testing.assert_allclose(row0, expected[0], atol=1e-4 * scale, rtol=0)
    np.testing.assert_allclose(row1, expected[1], atol=1e-4 * scale, rtol=0)
    assert np.abs(np.array(ours[1][:junk]) - expected[1][:junk]).max() > 1e-2  # the junk really differed
