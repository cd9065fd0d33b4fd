"""Lexicon (unknown-words) and the quality panel (its reader figures: tests/test_curate_reader.py)."""

from __future__ import annotations

import json
import random

import pytest

from generator.curate import CurateSettings, curate
from generator.ingest import IngestSettings, ingest, read_catalog
from generator.curate.lexicon import Lexicon
from generator.quality import SharedRuns, catalog_records, classifier_two_sample_test, distinct_2, quality_panel

from conftest import SAMPLE_CATALOG, catalog_entries, shared_csv


@pytest.fixture(scope="module")
def sample_records(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ingest")
    ingest(str(SAMPLE_CATALOG), out, IngestSettings())
    return catalog_records(out)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


# --- lexicon ----------------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["lighthouse", "keeper", "glassblowers", "cathedral", "rehearsals", "roadside"])
def test_real_english_words_are_known(word):
    assert Lexicon().unknown(f"A {word} waits by the sea.") == []


@pytest.mark.parametrize("word", ["gradukome", "eartmogue", "venver", "brumbreia"])
def test_invented_words_are_unknown(word):
    assert Lexicon().unknown(f"A young {word} waits by the sea.") == [word]


def test_catalog_words_names_possessives_hyphens_and_digits():
    lexicon = Lexicon([{"title": "The Zorvath Files", "description": "Kwiatkowska hunts a ghost in Qelmora."}])
    assert lexicon.unknown("Zorvath's sister meets kwiatkowska in QELMORA.") == []   # catalog words, any case
    assert lexicon.unknown("A 1980s glass-blowing X-19 crew hires O'Brien.") == []    # digits, parts, pieces
    assert lexicon.unknown("A glass-gradukome crew.") == ["gradukome"]                # each part is judged
    assert lexicon.unknown("Brumbreia is far. In town, Brumbreia waits.") == ["Brumbreia"]  # initial: judged
    assert Lexicon(allow_new_names=False).unknown("In town, Brumbreia waits.") == ["Brumbreia"]
    assert lexicon.unknown("Dr. Brumbreia waits.") == []                              # a title, not a sentence end


def test_numbers_are_judged_as_numbers():
    lexicon = Lexicon()
    assert lexicon.unknown("In the 1980s a 9-year-old MP3 fan, 21st in line at 7pm, films in 4K and 360º.") == []
    assert lexicon.unknown("The crew of Inspiration4 lands.") == []
    assert lexicon.unknown("The crew of Gradukome4 lands.") == ["Gradukome4"]
    assert lexicon.unknown("In 1555555555555 a pilot flies.") == ["1555555555555"]
    assert lexicon.unknown("In 1950ains with a band.") == ["1950ains"]
    assert lexicon.unknown("Three Buz0s and a bnk48 fan meet MI6.") == ["Buz0s", "bnk48"]
    assert lexicon.unknown("A 12-year-old's 19755555-mile trip.") == ["19755555-mile"]
    catalog = Lexicon([{"title": "4bia", "description": "Heroes of 3Below drive 4x4 trucks."}])
    assert catalog.unknown("The 4bia crew's 3Below-style 4x4.") == []              # written as the catalog writes
    assert catalog.unknown("The 4bian crew.") == ["4bian"]


def test_coined_compounds_pass_unless_the_profile_wants_the_catalogs_own():
    records = [{"title": "Drift", "description": "A coming-of-age tale of a drug-addled drummer."}]
    text = "A mother-alike drummer's Coming-of-Age story, drug-addled, self-made, cult-up, 9-year-old."
    assert Lexicon(records).unknown(text) == []
    assert Lexicon(records, allow_new_compounds=False).unknown(text) == ["mother-alike", "self-made", "cult-up"]


def test_unknown_words_rule_rejects_with_the_words_in_the_detail(tmp_path):
    catalog = tmp_path / "c.csv"
    catalog.write_text("title,description\nSea Tales,A lighthouse keeper in a small town finds an old map.\n")
    samples = write_jsonl(tmp_path / "s.jsonl", [
        {"text": "A cathedral choir holds rehearsals at a roadside inn run by glassblowers."},
        {"text": "A gradukome keeper finds an eartmogue near the lighthouse."}])
    manifest = curate(samples, catalog_entries(catalog), tmp_path / "k.jsonl", CurateSettings(reader=False))
    assert manifest["kept"] == 1 and manifest["rejected"]["unknown-words"] == 1
    rejected = json.loads((tmp_path / "k.rejected.jsonl").read_text())
    assert rejected["reason"] == "unknown-words" and "gradukome, eartmogue" in rejected["detail"]


def test_held_out_real_descriptions_pass_unknown_words(tmp_path):
    """>= 99 % of the 2021 catalog's held-out descriptions, judged against the training records only."""
    ingest(str(shared_csv(2021)), tmp_path, IngestSettings())
    records = catalog_records(tmp_path)
    lexicon = Lexicon([r for r in records if r["split"] == "train"])
    held_out = [r["description"] for r in records if r["split"] == "val"]
    passed = sum(not lexicon.unknown(d) for d in held_out) / len(held_out)
    assert passed >= 0.99, passed


# --- panel ------------------------------------------------------------------------------------

def test_distinct_2_and_shared_runs():
    assert distinct_2(["a b a b", "c d"]) == pytest.approx(3 / 4)
    runs = SharedRuns(["the old man and the sea", "a cat"])
    assert runs.longest("An old man and the sea wait.") == 5
    assert runs.longest("The cat sat.") == 1 and runs.longest("Zz yy.") == 0


def test_two_sample_test_needs_ten_of_each():
    result = classifier_two_sample_test(["a"] * 9, ["b"] * 50)
    assert result["accuracy"] is None and "10+" in result["reason"]


def test_panel_real_vs_real_is_indistinguishable_and_shuffled_is_not(tmp_path, sample_records):
    records = [{**r, "split": "val" if i % 3 == 0 else "train"} for i, r in enumerate(sample_records)]
    ingest_dir = tmp_path / "ingest"
    ingest_dir.mkdir()
    write_jsonl(ingest_dir / "catalog.jsonl", records)
    rng = random.Random(0)
    train = [r["description"] for r in records if r["split"] == "train"][:100]
    real = quality_panel(write_jsonl(tmp_path / "real.jsonl", [{"text": t} for t in train]), ingest_dir)
    mixed = quality_panel(write_jsonl(tmp_path / "shuf.jsonl", [{"text": shuffled(t, rng)} for t in train]),
                          ingest_dir)
    assert real["realism"]["accuracy"] < 0.62
    assert mixed["realism"]["accuracy"] > real["realism"]["accuracy"] + 0.1
    assert real["reader"] == {"on": False}  # no reader given
    assert real["invented_rate"]["before"] == 0.0 and real["novelty"]["longest_shared_run_median"] >= 20
    assert mixed["novelty"]["longest_shared_run_max"] < 8


def test_panel_reads_curate_manifest_for_rule_rates(tmp_path, sample_records):
    ingest_dir = tmp_path / "ingest"
    ingest(str(SAMPLE_CATALOG), ingest_dir, IngestSettings())
    samples = write_jsonl(tmp_path / "s.jsonl", [{"text": "A gradukome keeper finds a map near the old pier."},
                                                 {"text": "A retired chef opens a tiny bakery by the harbour."}])
    curate(samples, read_catalog(ingest_dir), tmp_path / "kept.jsonl", CurateSettings(reader=False))
    panel = quality_panel(samples, ingest_dir, tmp_path / "kept.jsonl")
    assert panel["invented_rate"] == {"before": 0.5, "after": 0.0}
    assert panel["curation"]["kept_rate"] == 0.5 and panel["curation"]["rejected_share"]["unknown-words"] == 0.5
    assert panel["realism"]["accuracy"] is None and panel["published"] == 1


def test_panel_counts_titles_distinct_share_copies_and_invented_words(tmp_path):
    from generator.report import quality_line
    from generator.render.model_card import quality_rows

    ingest_dir = tmp_path / "ingest"
    ingest(str(SAMPLE_CATALOG), ingest_dir, IngestSettings())
    catalog = read_catalog(ingest_dir)
    texts = ["A retired chef opens a tiny bakery by the harbour and feeds the whole town.",
             "A night nurse on a rural island starts writing letters to a lighthouse keeper.",
             "Two rival florists share one shop for a summer and slowly become friends.",
             "An old tailor teaches his stubborn grandson to sew before the wedding season.",
             "A shy radio host takes calls from a listener who knows what will happen tomorrow."]
    titles = [catalog[0].title.upper(), "The Gradukome Shop", "Petal Wars", "Petal  wars!", "Night Calls"]
    samples = write_jsonl(tmp_path / "s.jsonl", [{"text": t, "title": h} for t, h in zip(texts, titles)])
    curate(samples, catalog, tmp_path / "kept.jsonl", CurateSettings(reader=False))
    panel = quality_panel(samples, ingest_dir, tmp_path / "kept.jsonl")
    assert panel["titles"]["titled"] == panel["published"] == 2  # "Petal Wars", "Night Calls"
    assert panel["titles"]["distinct_share"] == 1.0
    assert panel["titles"]["copies_rejected"] == 1 and panel["titles"]["invented_rejected"] == 1
    assert panel["titles"]["rejected"]["title-repeat"] == 1
    # Before curation the repeat shows in the distinct share: 4 distinct of 5.
    assert quality_panel(samples, ingest_dir)["titles"]["distinct_share"] == 0.8
    rows = dict(quality_rows(panel))
    assert rows["Titles: distinct share (case and punctuation ignored)"] == "100.0%"
    assert rows["Titles copying a catalog title, rejected"] == "1" and rows["Titles with an invented word, rejected"] == "1"
    assert "titles 100% distinct (rejected: 1 copying a catalog title, 1 with an invented word)" in quality_line(panel)
    # An untitled batch has no titles figures.
    untitled = write_jsonl(tmp_path / "u.jsonl", [{"text": t} for t in texts])
    assert quality_panel(untitled, ingest_dir)["titles"] is None
