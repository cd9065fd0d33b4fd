"""The generate stage and its sampler: what every model family shares.

* ``stage``: the stage itself -- :class:`GenerateSettings`, :func:`generate`
  (a run folder or release -> samples JSONL + manifest), the control-prefix mix, the
  ``gpt2-simple`` reference backend and the CLI.
* ``driver``: the fast backend's driver -- each sample's random stream, samples
  written in index order, the resumable ``<out>.partial`` file, the progress bar.
* ``sampler``: the live sampler -- continuous batching over row slots with a
  masked KV cache, filtering (temperature, top-k, top-p) and inverse-CDF draws,
  compiled by XLA.
* ``rows``: a sampled row and the end-marker automaton, shared by every sampler.
* ``reference_loop``: the superseded per-batch early-stopping loop on
  gpt-2-simple's own graph, kept apart from the live path to verify against
  ``gpt2.generate`` token for token and as the benchmark's baseline.

The family-specific parts (a family's forward pass, weights, tokenizer) live in
:mod:`generator.models`.
"""

from .stage import GenerateSettings, add_cli, generate

__all__ = ["GenerateSettings", "add_cli", "generate"]
