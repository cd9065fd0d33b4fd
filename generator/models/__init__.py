"""Model families: what is specific to one architecture (its forward pass, weights, tokenizer, loss).

``gpt2``: GPT-2 over gpt-2-simple's checkpoint variables (forward, weights, loss). A
second family sits beside it as its own package. What every family shares -- the
generate stage, the sampler's slots and rounds, the training-text format, the base
model's settings, staging and manifest -- lives in :mod:`generator.generate`,
:mod:`generator.textformat` and :mod:`generator.base_model`.
"""
