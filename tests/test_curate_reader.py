"""The reader rule (generator/curate/reader.py): SLOR, the calibrated cut, its budget, its cache, the panel.

Most tests read with ``CatalogReader``, a stand-in with LlamaScorer's interface whose "language
model" is plain arithmetic (below), so SLOR and the cut are checked against numbers worked out
here; one test reads with the tiny random Llama GGUF of tests/llama_fixture.py through the real
TensorFlow path, and one checks it with TensorFlow's eager execution off, as in a night where
gpt-2-simple was imported first. No test loads the 135M model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from generator.curate import CurateSettings, curate
from generator.curate.reader import (SHARED_BASE_NOTE, UNIGRAM_FLOOR, Reader, auc, held_out_descriptions,
                                     percentile, reading, shares_base, unigram_logprob)
from generator.curate.words import normalised_words
from generator.errors import UserError

from conftest import ROOT, SAMPLE_CATALOG, catalog_entries

ENTRIES = catalog_entries(SAMPLE_CATALOG)
HELD_OUT = [e.description for e in ENTRIES if e.split == "val"]
COMMON = "A young woman moves to the city to find her missing brother and a new life."
RARE = "A young woman moves to the city to find her missing brother among the glassblowers."
INVENTED = "A young woman moves to the city to find her missing brother among the gradukome."


class CatalogReader:
    """A stand-in language model: it knows the wordfreq frequency of each word and the catalog's word pairs.

    A listed word is one token with ln p = ln(frequency) + 2 after a word pair the catalog uses (1.0 after
    any other): context makes a known word likelier than its unigram frequency. An unlisted word is three
    tokens at ln 1e-4 each: a made-up word is spelt from unlikely pieces. So a text's SLOR is the mean
    context bonus, whatever its words' frequencies, minus what its invented words cost.
    """

    digest = "catalog-reader-0"
    label = "catalog reader"

    def __init__(self, descriptions=tuple(e.description for e in ENTRIES), seconds_per_text: float = 0.0):
        self.pairs = {pair for text in descriptions for pair in zip(normalised_words(text), normalised_words(text)[1:])}
        self.seconds_per_text = seconds_per_text
        self.read: list[str] = []

    def token_logprobs(self, texts, prefix="Netflix description: "):
        import wordfreq

        out = []
        for text in texts:
            self.read.append(text)
            time.sleep(self.seconds_per_text)
            values, previous = [], None
            for word in wordfreq.tokenize(text, "en"):
                frequency = wordfreq.word_frequency(word, "en")
                if frequency:
                    bonus = 2.0 if (previous, "".join(normalised_words(word))) in self.pairs else 1.0
                    values.append(math.log(frequency) + bonus)
                else:
                    values += [math.log(1e-4)] * 3
                previous = "".join(normalised_words(word))
            out.append(np.array(values, np.float32))
        return out


def settings(**overrides) -> CurateSettings:
    return CurateSettings(**{"max_unknown_words": -1, **overrides})


def run_curate(tmp_path: Path, texts, scorer=None, name="kept", catalog=ENTRIES, **overrides):
    samples = tmp_path / f"{name}-in.jsonl"
    samples.write_text("".join(json.dumps(t if isinstance(t, dict) else {"text": t}) + "\n" for t in texts))
    config = settings(**overrides)
    reader = Reader(config, tmp_path / "cache", scorer=scorer or CatalogReader())
    manifest = curate(samples, catalog, tmp_path / f"{name}.jsonl", config, reader=reader)
    kept = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (tmp_path / f"{name}.rejected.jsonl").read_text().splitlines()]
    return manifest, kept, rejected, reader


def shuffled(text: str, seed: int) -> str:
    import random

    words = text.rstrip(".").split()
    random.Random(seed).shuffle(words)
    return " ".join(words).capitalize() + "."


# --- the score -------------------------------------------------------------------------------------------

def test_slor_forgives_a_rare_real_word_but_not_an_invented_one():
    scorer = CatalogReader(descriptions=[COMMON, RARE])
    common, rare, invented = (reading(t, float(lp.sum()), len(lp)) for t, lp in
                              zip([COMMON, RARE, INVENTED], scorer.token_logprobs([COMMON, RARE, INVENTED])))
    # Per token, the model finds the rare real word about as unlikely as the invented one...
    assert rare.nll > common.nll + 0.5 and abs(rare.nll - invented.nll) < 0.2
    # ...and SLOR pays the rare word back: both real texts read alike; the invented word costs what its
    # pieces cost beyond the floor of an unlisted word.
    assert rare.score == pytest.approx(common.score, abs=0.2)
    assert invented.score < rare.score - 0.5
    # The unigram term: wordfreq's frequencies, an unlisted word at the floor.
    import wordfreq

    assert unigram_logprob("the gradukome") == pytest.approx(math.log(wordfreq.word_frequency("the", "en"))
                                                             + math.log(UNIGRAM_FLOOR))
    assert reading("x", -3.0, 0).score == -math.inf  # a text with no token of its own reads as nothing


def test_percentile_auc_and_shared_base():
    assert percentile([1, 2, 3, 4, 5], 10) == pytest.approx(np.percentile([1, 2, 3, 4, 5], 10))
    assert percentile([3.0], 50) == 3.0
    assert auc([5, 6, 7], [1, 2, 3]) == 1.0 and auc([1, 2], [5, 6]) == 0.0
    assert auc([1, 2, 3], [1, 2, 3]) == 0.5 and auc([], [1]) is None
    assert shares_base("abc", "abc") and not shares_base("abc", "abd") and not shares_base(None, None)


# --- the calibrated cut, rejected records, the manifest ------------------------------------------------

def test_the_cut_is_the_held_out_percentile_and_every_rejection_carries_score_and_cut(tmp_path):
    good = HELD_OUT[:6]  # real descriptions, new to the catalog curated against (so not copies)
    bad = [shuffled(t, seed) for seed, t in enumerate(HELD_OUT[6:12])] + [INVENTED]
    catalog = [e for e in ENTRIES if e.description not in good]
    scorer = CatalogReader()
    manifest, kept, rejected, _ = run_curate(tmp_path, [*bad, *good], scorer, catalog=catalog)

    held_out = held_out_descriptions(catalog, CurateSettings().reader_held_out)
    scores = [reading(t, float(lp.sum()), len(lp)).score for t, lp in zip(held_out, scorer.token_logprobs(held_out))]
    cut = percentile(scores, 10)
    summary = manifest["reader"]
    assert summary["cut"] == pytest.approx(cut, abs=1e-4) and summary["held_out"] == len(held_out) >= 20
    assert summary["held_out_median"] == pytest.approx(percentile(scores, 50), abs=1e-4)
    by_reader = [r for r in rejected if r["reason"] == "reader"]
    assert summary["percentile"] == 10 and summary["candidates"] == len(kept) + len(by_reader)

    assert kept and all(r["reader_score"] >= cut and "reader_cut" not in r for r in kept)
    assert by_reader and all(r["reader_score"] < r["reader_cut"] == round(cut, 4) for r in by_reader)
    assert all("reader_nll" in r and "percentile of" in r["detail"] for r in by_reader)
    assert INVENTED in {r["text"] for r in by_reader}
    assert manifest["rejected"]["reader"] == len(by_reader) and manifest["kept"] == len(kept)
    # Real text passes at the rate the percentile says; text with its words shuffled mostly does not.
    assert sum(t in {r["text"] for r in kept} for t in good) >= 5
    assert sum(t in {r["text"] for r in by_reader} for t in bad) >= 4  # (a shuffle may double "the": degenerate)


def test_percentile_zero_cuts_at_the_worst_real_description(tmp_path):
    manifest, kept, rejected, _ = run_curate(tmp_path, [INVENTED, COMMON], reader_percentile=0.0)
    assert manifest["reader"]["cut"] == pytest.approx(min(
        reading(t, float(lp.sum()), len(lp)).score for t, lp in
        zip(held_out_descriptions(ENTRIES, 400), CatalogReader().token_logprobs(held_out_descriptions(ENTRIES, 400)))),
        abs=1e-4)
    assert all(r["reader_score"] >= manifest["reader"]["cut"] for r in kept)
    assert {r["text"] for r in kept} | {r["text"] for r in rejected} == {INVENTED, COMMON}


def test_a_catalog_without_enough_held_out_text_is_a_user_error(tmp_path):
    few = [e for e in ENTRIES if e.split == "train"][:50] + [e for e in ENTRIES if e.split == "val"][:5]
    with pytest.raises(UserError, match="held-out") as error:
        run_curate(tmp_path, [COMMON], catalog=few)
    assert "curate.reader = false" in error.value.fix


def test_a_missing_model_file_names_fetch_model(tmp_path):
    config = settings(reader_model=str(tmp_path / "nowhere.gguf"))
    with pytest.raises(UserError, match="missing") as error:
        Reader(config, tmp_path / "cache")
    assert "python -m generator fetch-model" in error.value.fix


def test_nothing_is_read_when_nothing_passes_the_cheap_rules(tmp_path):
    scorer = CatalogReader()
    manifest, kept, _, _ = run_curate(tmp_path, ["Too short."], scorer)
    assert scorer.read == [] and kept == [] and manifest["reader"] == {"on": True, "candidates": 0}


def test_reader_off_reads_nothing_and_adds_no_fields(tmp_path):
    samples = tmp_path / "in.jsonl"
    samples.write_text(json.dumps({"text": COMMON, "reader_score": 9.0, "rank": 1}) + "\n")
    manifest = curate(samples, ENTRIES, tmp_path / "k.jsonl", settings(reader=False))
    kept = json.loads((tmp_path / "k.jsonl").read_text())
    assert manifest["reader"] == {"on": False} and "reader_score" not in kept and "rank" not in kept


# --- near-duplicates are not read; the budget; the cache ------------------------------------------------

def test_a_near_duplicate_of_a_kept_description_is_not_read(tmp_path):
    again = COMMON.replace("new life", "new job")
    scorer = CatalogReader()
    run_curate(tmp_path, [COMMON], scorer, name="first")
    scorer.read.clear()
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"text": COMMON, "night": "2026-01-01"}) + "\n")
    samples = tmp_path / "in.jsonl"
    samples.write_text(json.dumps({"text": again}) + "\n")
    config = settings()
    manifest = curate(samples, ENTRIES, tmp_path / "k.jsonl", config, history_path=history,
                      reader=Reader(config, tmp_path / "cache", scorer=scorer))
    assert manifest["rejected"]["near-duplicate"] == 1 and again not in scorer.read


def test_candidates_past_the_budget_are_rejected_unread_and_a_rerun_reads_them(tmp_path):
    candidates = HELD_OUT[:12]
    catalog = [e for e in ENTRIES if e.description not in candidates]
    scorer = CatalogReader(seconds_per_text=0.02)
    Reader(settings(), tmp_path / "cache", scorer=scorer).read(held_out_descriptions(catalog, 400))  # calibrated
    scorer.read.clear()
    overrides = dict(reader_seconds=0.05, reader_batch_size=1, catalog=catalog)
    manifest, kept, rejected, _ = run_curate(tmp_path, candidates, scorer, **overrides)
    # One chunk of reading (4 texts of 0.02 s at batch size 1) spends the 0.05 s; the rest wait.
    assert len(scorer.read) == 4 and manifest["reader"]["read"] == 4
    unread = [r for r in rejected if r["reason"] == "reader-budget"]
    assert len(unread) == 8 == manifest["reader"]["unread"] == manifest["rejected"]["reader-budget"]
    assert all("reader_score" not in r and "reader_cut" in r and "reader_seconds" in r["detail"] for r in unread)
    assert not {r["text"] for r in unread} & {r["text"] for r in kept}  # never published unread
    for _ in range(2):  # each re-run reads the next chunk: what was read is cached
        manifest, kept, rejected, _ = run_curate(tmp_path, candidates, scorer, **overrides)
    assert manifest["rejected"]["reader-budget"] == 0 and len(scorer.read) == 12 == len(set(scorer.read))


def test_a_rerun_reads_nothing_again_and_writes_the_same_files(tmp_path):
    texts = [COMMON, RARE, INVENTED, *HELD_OUT[:5]]
    catalog = [e for e in ENTRIES if e.description not in texts]
    scorer = CatalogReader()
    first = run_curate(tmp_path, texts, scorer, name="a", catalog=catalog)
    kept_bytes = (tmp_path / "a.jsonl").read_bytes()
    scorer.read.clear()
    second = run_curate(tmp_path, texts, scorer, name="a", catalog=catalog)
    assert scorer.read == [] and second[0]["reader"]["read"] == 0 and second[0]["reader"]["cached"] == len(texts)
    assert (tmp_path / "a.jsonl").read_bytes() == kept_bytes and first[0]["rejected"] == second[0]["rejected"]
    cache = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert cache["model_digest"] == CatalogReader.digest and cache["prefix"] == "Netflix description: "
    # Curating the kept file again keeps all of it, unchanged.
    again = tmp_path / "again.jsonl"
    config = settings()
    curate(tmp_path / "a.jsonl", catalog, again, config, reader=Reader(config, tmp_path / "cache", scorer=scorer))
    assert again.read_bytes() == kept_bytes and scorer.read == []


def test_the_cache_is_keyed_by_model_digest_and_prefix(tmp_path):
    scorer = CatalogReader()
    Reader(settings(), tmp_path, scorer=scorer).read([COMMON])
    Reader(settings(reader_prefix="Description: "), tmp_path, scorer=scorer).read([COMMON])
    other = CatalogReader()
    other.digest = "another-model"
    Reader(settings(), tmp_path, scorer=other).read([COMMON])
    Reader(settings(), tmp_path, scorer=scorer).read([COMMON])
    assert scorer.read == [COMMON, COMMON] and other.read == [COMMON] and len(list(tmp_path.glob("*.json"))) == 3
    (next(tmp_path.glob("catalog-reader-0-*.json"))).write_text("{broken")  # unreadable: read again, not trusted
    Reader(settings(), tmp_path, scorer=scorer).read([COMMON])
    assert len(scorer.read) == 3


# --- the order the gallery shows -----------------------------------------------------------------------

def test_kept_descriptions_are_ranked_by_the_reader_and_render_leads_with_the_best(tmp_path):
    from generator.render import RenderSettings, render

    texts = HELD_OUT[:10]
    manifest, kept, _, _ = run_curate(tmp_path, [{"text": t, "logprob": -float(i)} for i, t in enumerate(texts)],
                                      catalog=[e for e in ENTRIES if e.description not in texts], reader_percentile=0.0)
    assert manifest["ranked_by"] == "reader_score"
    scores = [r["reader_score"] for r in kept]
    assert scores == sorted(scores, reverse=True) and [r["rank"] for r in kept] == list(range(1, len(kept) + 1))
    render(tmp_path / "kept.jsonl", tmp_path / "site", RenderSettings(home_picks=3), night="2026-01-02")
    home = (tmp_path / "site" / "index.html").read_text()
    from markupsafe import escape

    positions = [home.find(str(escape(r["text"]))) for r in kept[:3]]
    assert -1 not in positions and positions == sorted(positions)
    assert str(escape(kept[-1]["text"])) not in home  # not among the three picks


# --- the panel -------------------------------------------------------------------------------------------

def test_the_panel_reads_published_against_real_text(tmp_path):
    from generator.quality import reader_figures

    reader = Reader(settings(), tmp_path, scorer=CatalogReader())
    real = HELD_OUT[:40]
    published = [shuffled(t, i) for i, t in enumerate(HELD_OUT[40:60])]
    figures = reader_figures(reader, published, real, candidates=[1.0, 2.0, 3.0])
    score = {t: r.score for t, r in reader.read(published + real).items()}
    bar = percentile([score[t] for t in real], 10)
    assert figures["published_median"] == round(float(np.median([score[t] for t in published])), 2)
    assert figures["real_median"] == round(float(np.median([score[t] for t in real])), 2)
    assert figures["published_within_real_90"] == round(sum(score[t] >= bar for t in published) / 20, 4)
    assert figures["auc"] == pytest.approx(auc([score[t] for t in real], [score[t] for t in published]), abs=1e-4)
    assert figures["auc"] > 0.8 and figures["candidates_median"] == 2.0
    assert figures["shares_base"] is False and figures["note"] is None
    assert reader_figures(reader, real[:20], real[20:], [])["auc"] < 0.75  # real against real: near 0.5
    shared = reader_figures(reader, published, real, [], generator_base_digest=CatalogReader.digest)
    assert shared["shares_base"] is True and shared["note"] == SHARED_BASE_NOTE
    assert reader_figures(None, published, real, []) == {"on": False}
    scorer = CatalogReader()
    assert reader_figures(Reader(settings(), tmp_path / "empty", scorer=scorer), [], real, []) == {
        "on": True, "published": 0, "candidates": 0} and scorer.read == []


def test_the_nights_panel_reads_through_the_cache_curate_filled(tmp_path):
    from generator.ingest import IngestSettings, ingest, read_catalog
    from generator.quality import quality_panel

    ingest_dir = tmp_path / "ingest"
    ingest(str(SAMPLE_CATALOG), ingest_dir, IngestSettings())
    texts = [COMMON, INVENTED, *HELD_OUT[:4]]
    samples = tmp_path / "in.jsonl"
    samples.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    scorer = CatalogReader()
    config = settings()
    catalog = [e for e in read_catalog(ingest_dir) if e.description not in texts]
    curate(samples, catalog, tmp_path / "kept.jsonl", config, reader=Reader(config, tmp_path / "cache", scorer=scorer))
    scorer.read.clear()
    panel = quality_panel(samples, ingest_dir, tmp_path / "kept.jsonl", reader=Reader(config, tmp_path / "cache",
                                                                                       scorer=scorer))
    assert scorer.read == []  # tonight's candidates and the held-out text are all cached
    figures = panel["reader"]
    assert figures["on"] and figures["real"] == len(held_out_descriptions(read_catalog(ingest_dir), 400))
    assert figures["published"] == panel["published"] and figures["candidates"] == len(texts)
    assert None not in (figures["published_median"], figures["real_median"], figures["auc"])


def test_the_model_card_shows_the_readers_figures_note_and_trend():
    from generator.render.model_card import model_card, quality_rows, reader_trend
    from generator.render.site_model import Night

    panel = {"reader": {"on": True, "published_median": 1.5, "real_median": 2.25, "candidates_median": 1.1,
                        "published_within_real_90": 0.4, "auc": 0.83, "note": SHARED_BASE_NOTE}}
    rows = dict(quality_rows(panel))
    assert rows["Reader: SLOR, published (median)"] == "1.50" and rows["Reader: published within real text's 90 %"] == "40%"
    assert rows["Reader: AUC, real vs published (0.5 = indistinguishable)"] == "0.83"
    card = model_card({"quality": panel, "curate": {"reader": {"model": "SmolLM2.gguf", "cut": 1.31, "held_out": 80}}},
                      Night("2026-01-03", [], {}))
    assert card["quality_note"] == SHARED_BASE_NOTE
    curate_rows = dict(card["curate"])
    assert curate_rows["Reader"] == "SmolLM2.gguf" and curate_rows["Real held-out descriptions it was set on"] == "80"
    assert "1.31" in curate_rows["Reader's cut (SLOR)"]
    nights = [Night(f"2026-01-0{d}", [], {"quality": {"reader": {"auc": a}}}) for d, a in ((1, 0.9), (2, 0.8))]
    assert 'id="reader-trend-title"' in str(reader_trend(nights))


# --- the real TensorFlow path, on the tiny random Llama ------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from llama_fixture import write_tiny_llama

    path = tmp_path_factory.mktemp("reader-llama") / "tiny.gguf"
    write_tiny_llama(path)
    return path


def test_curate_reads_with_a_gguf_model_and_caches_its_scores(tmp_path, tiny_gguf):
    from generator.models.llama.score import LlamaScorer

    config = settings(reader_model=str(tiny_gguf), reader_percentile=50.0)
    samples = tmp_path / "in.jsonl"
    texts = HELD_OUT[:6] + [INVENTED]
    catalog = [e for e in ENTRIES if e.description not in texts]
    samples.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    manifest = curate(samples, catalog, tmp_path / "out" / "kept.jsonl", config)
    assert manifest["reader"]["model"] == "tiny.gguf" and manifest["reader"]["read"] == len(texts)
    assert list((tmp_path / "out" / "reader-cache").glob("*.json"))  # beside the outputs without a workdir
    # The scores are SLOR of the model's own token log-probabilities.
    direct = LlamaScorer(tiny_gguf, batch_size=4, matmul_dtype=config.reader_matmul_dtype)
    exact = LlamaScorer(tiny_gguf, batch_size=4)  # float32: bfloat16 matmuls move a text's NLL in the third decimal
    for mine, theirs in zip(direct.token_logprobs(texts), exact.token_logprobs(texts)):
        assert float(mine.mean()) == pytest.approx(float(theirs.mean()), abs=0.03)
    records = [json.loads(line) for name in ("kept.jsonl", "kept.rejected.jsonl")
               for line in (tmp_path / "out" / name).read_text().splitlines()]
    for record in records:
        logprobs = direct.token_logprobs([record["text"]])[0]
        assert record["reader_score"] == pytest.approx(reading(record["text"], float(logprobs.sum()),
                                                               len(logprobs)).score, abs=2e-3)
        assert record["reader_nll"] == pytest.approx(-float(logprobs.mean()), abs=2e-3)
    again = curate(samples, catalog, tmp_path / "out" / "kept.jsonl", config)
    assert again["reader"]["read"] == 0 and again["kept"] == manifest["kept"]


def test_the_reader_reads_alike_with_eager_execution_off(tmp_path, tiny_gguf):
    """gpt-2-simple turns eager execution off for its whole process; the reader then runs in a graph of its own."""
    texts = HELD_OUT[:3]
    code = (
        "import json, sys\n"
        "from generator.tf_runtime import import_tf\n"
        "tf = import_tf(); tf.compat.v1.disable_eager_execution()\n"
        "from generator.curate import CurateSettings\n"
        "from generator.curate.reader import Reader\n"
        "reader = Reader(CurateSettings(reader_model=sys.argv[1]), sys.argv[2])\n"
        "found = reader.read(json.loads(sys.argv[3]))\n"
        "print(json.dumps({'eager': tf.executing_eagerly(), 'scores': [found[t].score for t in json.loads(sys.argv[3])]}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tiny_gguf), str(tmp_path / "off"), json.dumps(texts)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["eager"] is False
    here = Reader(settings(reader_model=str(tiny_gguf)), tmp_path / "on").read(texts)
    assert result["scores"] == pytest.approx([here[t].score for t in texts], abs=1e-3)


def test_the_cache_keeps_the_most_recently_used_scores(tmp_path, monkeypatch):
    from generator.curate import reader as reader_module

    monkeypatch.setattr(reader_module, "MAX_CACHED", 3)
    scorer = CatalogReader()
    texts = HELD_OUT[:4]
    Reader(settings(), tmp_path, scorer=scorer).read(texts[:3])
    Reader(settings(), tmp_path, scorer=scorer).read([texts[0], texts[3]])  # texts[0] used again, texts[3] new
    scorer.read.clear()
    Reader(settings(), tmp_path, scorer=scorer).read(texts)
    assert scorer.read == [texts[1]]  # the least recently used one was dropped


def test_the_night_reads_titles_against_held_out_titles_and_rejects_one_that_reads_badly(tmp_path):
    """With the reader on, curate judges the kept titles by SLOR against the catalog's held-out titles."""
    from generator.curate.reader import title_reader

    held_titles = sorted({e.title for e in ENTRIES if e.split == "val"})
    reader = Reader(settings(), tmp_path / "cache", scorer=CatalogReader())
    judge = title_reader(reader, ENTRIES, settings(), tmp_path / "cache")
    assert judge is not None and f"{len(held_titles)} held-out titles" in judge.name
    good, bad = judge.score(["The Silent Harbour", "Gradukome Vlesh Tromp"])
    assert good >= judge.min_score > bad
    samples = tmp_path / "titled.jsonl"
    samples.write_text("".join(json.dumps({"text": text, "title": title, "terminated": True}) + "\n"
                               for text, title in [(COMMON, "The Silent Harbour"), (RARE, "Gradukome Vlesh Tromp")]))
    # Percentile 0 (at least the worst real text): the descriptions pass, so the titles decide.
    manifest = curate(samples, ENTRIES, tmp_path / "kept.jsonl", settings(reader_percentile=0), reader=reader)
    assert manifest["titles"]["reader"].get("dropped") == 1, manifest
    rejected = [json.loads(line) for line in (tmp_path / "kept.rejected.jsonl").read_text().splitlines()]
    assert [(r["title"], r["reason"]) for r in rejected] == [("Gradukome Vlesh Tromp", "title-reader")]


def test_a_llama_generator_on_the_readers_file_shares_its_base_and_the_title_cache_keeps_the_scorers_type(
        tmp_path, tiny_gguf):
    from generator.config import load_config
    from generator.curate.reader import TITLE_PREFIX, model_digest
    from generator.quality import generator_base_digest

    config = load_config(profile="smollm2", environ={}, overrides={"model": {"gguf_path": str(tiny_gguf)}})
    assert shares_base(model_digest(tiny_gguf), generator_base_digest(config))
    missing = load_config(profile="smollm2", environ={}, overrides={"model": {"gguf_path": str(tmp_path / "no.gguf")}})
    assert generator_base_digest(missing) is None

    class Bfloat16Scorer(CatalogReader):
        matmul_dtype = "bfloat16"

    shared = Reader(settings(), tmp_path, scorer=Bfloat16Scorer(), prefix=TITLE_PREFIX)
    exact = Reader(settings(), tmp_path, scorer=CatalogReader(), prefix=TITLE_PREFIX)
    assert shared.cache.path != exact.cache.path
