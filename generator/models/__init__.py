"""Model families: what is specific to one architecture (its forward pass, weights, tokenizer).

``gpt2``: GPT-2 over gpt-2-simple's checkpoint variables. What every family
shares -- the generate stage, the sampler's slots and rounds, the training-text
format -- lives in :mod:`generator.generate` and :mod:`generator.textformat`.
"""
