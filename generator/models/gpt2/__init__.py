"""GPT-2: the per-row decoding step over gpt-2-simple's checkpoint variables (``forward``)."""
