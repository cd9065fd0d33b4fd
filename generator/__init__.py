"""Nightly Netflix-style description generator: ingest, train, generate, curate, render, publish."""

__version__ = "0.1.0"
