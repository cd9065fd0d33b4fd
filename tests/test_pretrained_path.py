"""The 124M profile's pretrained path, offline, on a bootstrapped model (bench/bench_124m_smoke.py's stages).

The bench runs GPT-2 124M's exact shape (minutes on a CPU); here the same
stages run a small shape placed in models/124M, so the path itself -- a padded
vocabulary, gpt-2-simple's layout, source "pretrained" without download, train,
the fast sampler -- is checked in seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest

from conftest import ROOT, SAMPLE_CATALOG


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_124m_smoke", ROOT / "bench" / "bench_124m_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_pretrained_profile_runs_on_a_bootstrapped_model_in_models_124m(tmp_path, monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(bench, "GPT2_124M", {**bench.GPT2_124M, "vocab_size": 8191, "n_embd": 32, "n_head": 2,
                                             "n_layer": 1})
    args = argparse.Namespace(catalog=SAMPLE_CATALOG, steps=2, samples=4, threads=1, val_tokens=512)
    base = bench.stage("base", tmp_path, args)
    assert base["hparams"]["n_vocab"] == 8192  # padded: the sample catalog's BPE has fewer tokens
    encoder = json.loads((tmp_path / "models" / "124M" / "encoder.json").read_text())
    assert len(encoder) == 8192 and sorted(encoder.values()) == list(range(8192))

    trained = bench.stage("train", tmp_path, args)
    assert trained["steps"] == 2 and trained["base"] == "pretrained"
    info = json.loads((tmp_path / "checkpoints" / "nightly" / "generation.json").read_text())
    padding = {token for text, token in encoder.items() if text.startswith("<|pad")}
    # Placeholders (when the catalog leaves the vocabulary short of its size) never occur, so are never sampled.
    assert not padding & set(info["seen_tokens"])

    generated = bench.stage("generate", tmp_path, args)
    assert generated["samples"] == 4 and generated["decode_steps"] >= 1
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(4))
    assert all(r["type"] and r["genre"] for r in records)  # catalog conditioning: every sample has both
