"""GPT-2's held-out loss: what the promotion gate compares (:func:`generator.checkpoints.gate`)."""

from __future__ import annotations

from pathlib import Path

from .weights import load_hparams


def evaluate_loss(run_dir: str | Path, text_path: str | Path, max_tokens: int = 50000, threads: int = 0) -> float | None:
    """Mean next-token cross-entropy of the run's latest checkpoint on a text file.

    The text is encoded with the run's own encoder and cut into ``n_ctx``-token
    windows; None when the file is empty.
    """
    import numpy as np

    from ...checkpoints import latest_checkpoint, run_encoder
    from ...tf_runtime import import_tf, new_session
    from gpt_2_simple.src import model as gpt2_model

    run_dir = Path(run_dir)
    text = Path(text_path).read_text(encoding="utf-8")
    if not text.strip():
        return None
    enc = run_encoder(run_dir)
    tokens = enc.encode(text)[:max_tokens]
    if len(tokens) < 2:
        return None
    tf = import_tf()
    sess = new_session(threads)
    try:
        hparams = load_hparams(run_dir)
        window = hparams.n_ctx
        context = tf.compat.v1.placeholder(tf.int32, [1, None])
        logits = gpt2_model.model(hparams=hparams, X=context)["logits"]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=context[:, 1:], logits=logits[:, :-1])
        saver = tf.compat.v1.train.Saver(var_list=[v for v in tf.compat.v1.trainable_variables() if "model" in v.name])
        saver.restore(sess, latest_checkpoint(run_dir))
        total, count = 0.0, 0
        for start in range(0, len(tokens) - 1, window - 1):
            chunk = tokens[start:start + window]
            if len(chunk) < 2:
                break
            values = sess.run(losses, feed_dict={context: [chunk]})
            total += float(np.sum(values))
            count += values.size
        return round(total / count, 5)
    finally:
        sess.close()
