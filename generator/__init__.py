"""Nightly Netflix-style description generator: ingest, train, generate, curate, render, publish."""

__version__ = "0.1.0"

# Special markers of the training-text contract (see README "Data contract").
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
