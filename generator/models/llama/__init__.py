"""Llama family: a GGUF file read with ``gguf`` into a TensorFlow forward pass (``forward``), its tokenizer, and the readers scorer (``score``)."""
