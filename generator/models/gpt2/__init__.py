"""GPT-2 over gpt-2-simple's layout: what is this family's and no other's.

  forward   the per-row decoding step over the checkpoint's variables (the live sampler's network)
  weights   a base model's files: shape (hparams), byte-level BPE tokenizer, fresh or downloaded weights
  loss      held-out next-token loss of a run (the promotion gate's measure)

Training itself is gpt-2-simple's ``finetune`` (:mod:`generator.train`).
"""
