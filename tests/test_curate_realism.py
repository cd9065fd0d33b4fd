"""The realism rule: the night's candidates that read most like the catalog's own descriptions are kept."""

from __future__ import annotations

import json
import random

import pytest

from generator.curate import CurateSettings, curate
from generator.errors import UserError

from conftest import SAMPLE_CATALOG, catalog_entries


@pytest.fixture(scope="module")
def split_catalog():
    """(training entries, held-out descriptions) of the bundled catalog."""
    entries = catalog_entries(SAMPLE_CATALOG)
    return [e for e in entries if e.split == "train"], [e.description for e in entries if e.split == "val"]


def stock_phrases(descriptions: list[str], count: int, seed: int = 7) -> list[str]:
    """What a small model writes: the catalog's words around the few phrases it over-uses.

    (The tiny model's favourites, found by a classifier on a real night: "shy", "retired",
    "learn to", "the same night".)
    """
    rng = random.Random(seed)
    words = sorted({w for text in descriptions for w in text.rstrip(".!?").split()[1:] if w.isalpha() and w.islower()})
    openings = ["A shy", "A retired", "A shy young", "A troubled retired", "A lonely"]
    endings = ["must learn to", "learns to", "tries to"]
    return [f"{rng.choice(openings)} {' '.join(rng.sample(words, 3))} {rng.choice(endings)} "
            f"{' '.join(rng.sample(words, 3))} on the same night." for _ in range(count)]


def run(tmp_path, catalog, texts, **settings):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"text": t, "terminated": True}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "kept.jsonl"
    manifest = curate(samples, catalog, out, CurateSettings(**settings))
    read = lambda path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return manifest, read(out), read(tmp_path / "kept.rejected.jsonl")


def test_it_keeps_the_real_looking_half_and_says_why_it_dropped_the_rest(tmp_path, split_catalog):
    train, held_out = split_catalog
    # The held-out descriptions are not in the catalog curate sees (only the training split), so they
    # are new to it, like a good generated description.
    real_like, stock = held_out[:30], stock_phrases([e.description for e in train], 30)
    manifest, kept, rejected = run(tmp_path, train, real_like + stock, realism_keep_share=0.5, max_unknown_words=-1)
    assert manifest["rejected"]["realism"] == 30 and len(kept) == 30
    assert sum(record["text"] in real_like for record in kept) >= 27
    assert {r["reason"] for r in rejected} == {"realism"}
    assert all("P(real)" in r["detail"] and 0.0 <= r["realism"] <= 1.0 for r in rejected)
    summary = manifest["realism"]
    assert summary["candidates"] == 60 and summary["kept"] == 30 and summary["reference"] == 600
    assert min(r["realism"] for r in kept) >= summary["cut"] >= max(r["realism"] for r in rejected)


def test_it_is_repeatable(tmp_path, split_catalog):
    train, held_out = split_catalog
    texts = held_out[:20] + stock_phrases([e.description for e in train], 20)
    results = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        results.append(run(tmp_path / name, train, texts, realism_keep_share=0.6, max_unknown_words=-1))
    (_, kept_1, rejected_1), (_, kept_2, rejected_2) = results
    assert kept_1 == kept_2 and rejected_1 == rejected_2 and len(kept_1) == 24


def test_off_by_default_and_skipped_with_too_few_candidates(tmp_path, split_catalog):
    train, held_out = split_catalog
    manifest, kept, _ = run(tmp_path, train, held_out[:25], max_unknown_words=-1)
    assert manifest["realism"] == {"on": False} and len(kept) == 25
    manifest, kept, _ = run(tmp_path, train, held_out[:12], realism_keep_share=0.5, max_unknown_words=-1)
    assert "needs 20+ candidates" in manifest["realism"]["skipped"] and len(kept) == 12


@pytest.mark.parametrize("overrides", [{"realism_keep_share": 0.0}, {"realism_keep_share": 1.5},
                                       {"realism_reference": 5}])
def test_bad_settings_are_user_errors(overrides):
    with pytest.raises(UserError) as error:
        CurateSettings(**overrides).validate()
    assert "out of range" in str(error.value) and "realism" in str(error.value)
