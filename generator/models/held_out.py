"""The promotion gate's measure for any run: its loss on held-out text, in its family's terms.

A GPT-2 run: the mean next-token cross-entropy over the text in ``n_ctx`` windows
(:func:`gpt2.loss.evaluate_loss`). A Llama run (``family.json``): the mean negative log-likelihood
per reply token of the lines rendered as chat exchanges (:func:`llama.train_loop.held_out_loss`).
Both the night's candidate and the live release are measured by the same function on the same text.
"""

from __future__ import annotations

from pathlib import Path

from .llama.run import is_llama_run


def evaluate_loss(run_dir: str | Path, text_path: str | Path, max_tokens: int = 50000, threads: int = 0) -> float | None:
    if is_llama_run(run_dir):
        from .llama.train_loop import held_out_loss

        return held_out_loss(run_dir, text_path, max_tokens, threads)
    from .gpt2.loss import evaluate_loss as gpt2_loss

    return gpt2_loss(run_dir, text_path, max_tokens, threads)
