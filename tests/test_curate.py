"""Curate: every rule on crafted cases, rule order, outputs, determinism/idempotence, CLI, real catalog."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from generator.config import load_config
from generator.curate import (RULES, CopyIndex, CurateSettings, curate, jaccard, load_blocklist, normalised_words,
                              sample_id, shingles)
from generator.errors import UserError
from generator.ingest import IngestSettings, is_validation

from conftest import ROOT, assert_clean_error, catalog_entries, run_cli, shared_csv

HEADER = "show_id,type,title,listed_in,description\n"

CATALOG = [
    "After her father's fishing boat is seized for debt, a stubborn teenager keeps the family cannery running "
    "while hiding its books from a suspicious bank clerk.",
    "A retired stunt driver teams up with his estranged granddaughter to win a desert rally that nobody "
    "expects them to finish.",
    "When a mysterious comet lights up the sky over a small fishing village, three friends set out to find "
    "where it landed.",
]

NOVEL = [
    "A shy beekeeper enters a televised baking contest and discovers that her grandmother's honey cake recipe "
    "hides a family secret.",
    "Two rival food truck owners are forced to share a parking lot for one summer, and their feud slowly turns "
    "into something sweeter.",
    "An insomniac radio host starts receiving calls from a listener who seems to know what will happen tomorrow.",
    "Stranded on a glacier after a helicopter crash, a team of scientists must decide whom to trust as supplies "
    "run low.",
]


def validation_description() -> str:
    """A catalog description that ingest puts in the validation split (found by its hash)."""
    fraction = IngestSettings().validation_fraction
    for box in range(10_000):
        text = (f"An archivist finds a coded diary in box {box} of a Lisbon library and follows it to the "
                f"score of a lost opera.")
        if is_validation(text, fraction):
            return text
    raise AssertionError("no validation-split description found")


VAL_DESCRIPTION = validation_description()


def write_catalog(path: Path, descriptions=(*CATALOG, VAL_DESCRIPTION)) -> Path:
    rows = [f's{n},Movie,Title {n},Dramas,"{text}"' for n, text in enumerate(descriptions, start=1)]
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_samples(path: Path, samples) -> Path:
    records = [s if isinstance(s, dict) else {"text": s, "terminated": True} for s in samples]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def no_reader(**overrides) -> CurateSettings:
    """The rules without the reader (tests/test_curate_reader.py reads with stand-in models): these catalogs
    are too small to calibrate it, and the suite never loads the 135M model."""
    return CurateSettings(**{"reader": False, **overrides})


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclasses.dataclass
class Result:
    kept: list[dict]
    rejected: list[dict]
    manifest: dict

    @property
    def kept_texts(self) -> list[str]:
        return [r["text"] for r in self.kept]

    def reason(self, text: str) -> str | None:
        return next((r["reason"] for r in self.rejected if r["text"] == text), None)

    def detail(self, text: str) -> str | None:
        return next((r["detail"] for r in self.rejected if r["text"] == text), None)


@pytest.fixture
def catalog(tmp_path) -> Path:
    return write_catalog(tmp_path / "catalog.csv")


@pytest.fixture
def run(tmp_path, catalog):
    def run(samples, history=None, **overrides) -> Result:
        samples_path = write_samples(tmp_path / "samples.jsonl", samples)
        history_path = write_samples(tmp_path / "history.jsonl", history) if history is not None else None
        out = tmp_path / "kept.jsonl"
        manifest = curate(samples_path, catalog_entries(catalog), out, no_reader(**overrides),
                          history_path=history_path)
        return Result(read(out), read(tmp_path / "kept.rejected.jsonl"), manifest)

    return run


# --- outputs ----------------------------------------------------------------------------------

def test_keeps_novel_samples_with_their_fields_and_a_stable_id(run):
    samples = [{"text": text, "terminated": True, "type": "Movie", "genre": "Dramas", "index": i, "extra": [i]}
               for i, text in enumerate(NOVEL)]
    result = run(samples)
    assert result.kept == [{**s, "id": sample_id(s["text"])} for s in samples]
    assert result.rejected == []
    assert result.manifest["input"] == 4 and result.manifest["kept"] == 4 and result.manifest["kept_rate"] == 1.0


def test_id_is_sha256_of_nfc_text_with_collapsed_whitespace():
    composed = "A café owner in Lyon adopts a very loud parrot."
    decomposed = unicodedata.normalize("NFD", composed).replace(" in ", "  in ")
    assert sample_id(decomposed) == sample_id(composed) == hashlib.sha256(composed.encode()).hexdigest()[:12]
    assert sample_id(composed) != sample_id(composed.replace("Lyon", "Nice"))


def test_manifest_counts_every_reason_and_records_settings(run, tmp_path):
    result = run([NOVEL[0], {"text": NOVEL[1], "terminated": False}, "Too short to keep.", CATALOG[0]])
    manifest = result.manifest
    assert manifest["stage"] == "curate"
    assert list(manifest["rejected"]) == list(RULES)
    assert manifest["rejected"] == {**dict.fromkeys(RULES, 0), "unterminated": 1, "length": 1, "copy": 1}
    assert manifest["input"] == 4 and manifest["kept"] == 1 and manifest["kept_rate"] == 0.25
    assert manifest["settings"] == dataclasses.asdict(no_reader())
    assert json.loads((tmp_path / "kept.manifest.json").read_text()) == manifest
    assert all(r["reason"] in RULES and r["detail"] and r["id"] for r in result.rejected)


def test_empty_samples_file_gives_empty_outputs(run):
    result = run([])
    assert result.kept == [] and result.rejected == []
    assert result.manifest["input"] == 0 and result.manifest["kept_rate"] == 0.0


# --- unterminated and length ------------------------------------------------------------------

def test_unterminated_samples_are_rejected_and_a_missing_flag_counts_as_terminated(run):
    result = run([{"text": NOVEL[0], "terminated": False}, {"text": NOVEL[1]}])
    assert result.reason(NOVEL[0]) == "unterminated"
    assert result.kept_texts == [NOVEL[1]]


def test_length_limits_in_words_and_characters(run):
    short = "A detective solves a case."
    long = " ".join(["A detective in a rainy harbour town solves one more case."] * 8)
    result = run([short, long, NOVEL[0]])
    assert result.reason(short) == "length" and "5 words" in result.detail(short)
    assert result.reason(long) == "length"
    assert result.kept_texts == [NOVEL[0]]

    by_chars = run([NOVEL[2]], min_chars=200)
    assert by_chars.reason(NOVEL[2]) == "length" and "characters" in by_chars.detail(NOVEL[2])


# --- malformed --------------------------------------------------------------------------------

BASE = "A detective returns to her hometown to solve a cold case"


@pytest.mark.parametrize("text, detail", [
    (f"{BASE}<|endoftext|> and stays.", "marker"),
    (f"{BASE} and then <|endof", "marker"),
    (f"{BASE} startoftext|> again.", "marker"),
    (f"[TV Show] {BASE}.", "marker"),
    (f"{BASE} [Dramas] again.", "marker"),
    (f"{BASE} \ufffd.", "UTF-8"),
    (f"{BASE} at the cafÃ© by the sea.", "UTF-8"),
    (f"{BASE} \x07 quickly.", "U+0007"),
    (f"{BASE}\nquickly.", "U+000A"),
    (f"{BASE} \u200b quickly.", "U+200B"),
    (f'{BASE} called "The Lake.', "quotes"),
    (f"{BASE} (and a warm one.", "brackets"),
    (f"{BASE} and a warm one).", "brackets"),
    (f"{BASE}", "terminal punctuation"),
    (f"{BASE},", "terminal punctuation"),
])
def test_malformed_samples_are_rejected(run, text, detail):
    result = run([text])
    assert result.reason(text) == "malformed"
    assert detail.lower() in result.detail(text).lower()


@pytest.mark.parametrize("text", [
    f'{BASE} called "The Quiet Lake."',
    f"{BASE} (her third) in a year!",
    f"Is it too late? {BASE}?",
    f"{BASE} – with the café owner’s help…",
    f"Interior designer Benjamin “Mr. Christmas” Bradley helps {BASE[2:].lower()}.",
])
def test_well_formed_punctuation_and_unicode_pass(run, text):
    assert run([text]).kept_texts == [text]


def test_terminal_punctuation_requirement_is_configurable(run):
    assert run([BASE], require_terminal_punctuation=False).kept_texts == [BASE]


# --- degenerate -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, detail", [
    ("A young man walks into the the city and finds a job at a bakery near the river.", "doubled 'the'"),
    ("A young man walks into the city city city and finds a job at a bakery near the river.", "3 times"),
    ("A young man moves to the city and finds a job, and finds a job, and finds a job in the city.", "repeated"),
    ("The spy loves the spy who loves the spy who loves the spy, who loves the spy.", "repeated"),
])
def test_degenerate_samples_are_rejected(run, text, detail):
    result = run([text])
    assert result.reason(text) == "degenerate"
    assert detail in result.detail(text)


def test_low_distinct_word_ratio_alone_is_degenerate(run):
    text = "The spy loves the spy who loves the spy who loves the spy."
    result = run([text], repeat_ngram=0)
    assert result.reason(text) == "degenerate" and "distinct words" in result.detail(text)


@pytest.mark.parametrize("text", [
    "A brother-sister team of fake psychics gets more than they bargained for when a job turns very, very real.",
    "Beloved children's book character Llama Llama springs to life in this series about family and friendship.",
    "Two weddings marred by tragedy lead the brides to believe that that they've been cursed by a superstition.",
])
def test_legitimate_repetitions_pass(run, text):
    assert run([text]).kept_texts == [text]


# --- copy -------------------------------------------------------------------------------------

def test_verbatim_copy_of_a_catalog_description_is_rejected_and_names_the_title(run):
    result = run([CATALOG[1]])
    assert result.reason(CATALOG[1]) == "copy"
    assert "Title 2" in result.detail(CATALOG[1]) and "s2" in result.detail(CATALOG[1])


@pytest.mark.parametrize("variant", [
    CATALOG[0].upper(),
    CATALOG[0].replace(",", "").replace("'", "").replace(".", "!"),
    CATALOG[0].replace("father's", "fathers").replace("debt,", "debt;").replace("a stubborn", "A Stubborn"),
    CATALOG[0].replace("teenager", "téenager").replace("family", "FAMILY"),
])
def test_copies_differing_only_in_case_punctuation_or_accents_are_rejected(run, variant):
    assert run([variant]).reason(variant) == "copy"


def test_eight_shared_words_are_a_copy_and_seven_are_not(run):
    eight = "Years later, a stubborn teenager keeps the family cannery running while she plans her escape."
    seven = "Years later, a stubborn teenager keeps the family cannery alive by selling smoked fish to tourists."
    result = run([eight, seven])
    assert result.reason(eight) == "copy"
    assert "a stubborn teenager keeps the family cannery running" in result.detail(eight)
    assert result.kept_texts == [seven]
    assert run([seven], copy_ngram=7).reason(seven) == "copy"


def test_descriptions_shorter_than_the_copy_run_are_matched_whole(run):
    longer = CATALOG[1].replace(" to finish.", " to finish, least of all his rivals.")
    result = run([CATALOG[1], longer], copy_ngram=40)
    assert result.reason(CATALOG[1]) == "copy" and result.kept_texts == [longer]


def test_copies_of_training_and_validation_descriptions_are_both_rejected(run):
    fraction = IngestSettings().validation_fraction
    training = [text for text in CATALOG if not is_validation(text, fraction)]
    assert training and is_validation(VAL_DESCRIPTION, fraction)
    result = run([*training, VAL_DESCRIPTION])
    assert [r["reason"] for r in result.rejected] == ["copy"] * (len(training) + 1)
    assert result.kept == []


# --- near-duplicate ---------------------------------------------------------------------------

NEAR_NOVEL_0 = NOVEL[0].replace("baking", "cooking").replace("family secret", "dark secret")


def test_near_duplicate_of_an_earlier_sample_is_rejected_and_the_first_kept(run):
    k = CurateSettings().shingle_words
    assert jaccard(shingles(normalised_words(NOVEL[0]), k), shingles(normalised_words(NEAR_NOVEL_0), k)) >= 0.7
    result = run([NOVEL[0], NEAR_NOVEL_0, NOVEL[1]])
    assert result.kept_texts == [NOVEL[0], NOVEL[1]]
    assert result.reason(NEAR_NOVEL_0) == "near-duplicate"
    assert sample_id(NOVEL[0]) in result.detail(NEAR_NOVEL_0)


def test_exact_repeat_of_a_sample_is_a_near_duplicate(run):
    result = run([NOVEL[2], NOVEL[2].upper()])
    assert result.kept_texts == [NOVEL[2]] and result.reason(NOVEL[2].upper()) == "near-duplicate"


def test_samples_sharing_a_theme_but_not_the_wording_are_kept(run):
    other = ("A beekeeper with stage fright is talked into a baking show, where a rival contestant turns out to "
             "be her long-lost sister.")
    assert run([NOVEL[0], other]).kept_texts == [NOVEL[0], other]


def test_near_duplicate_threshold_is_configurable(run):
    assert run([NOVEL[0], NEAR_NOVEL_0], near_duplicate_threshold=0.95).kept_texts == [NOVEL[0], NEAR_NOVEL_0]


def test_descriptions_published_on_earlier_nights_count(run):
    history = [{"text": NOVEL[1].replace("one summer", "a summer"), "night": "2026-01-01"}, {"text": NOVEL[3]}]
    result = run([NOVEL[0], NOVEL[1], NOVEL[3]], history=history)
    assert result.kept_texts == [NOVEL[0]]
    assert result.reason(NOVEL[1]) == "near-duplicate" and "2026-01-01" in result.detail(NOVEL[1])
    assert result.reason(NOVEL[3]) == "near-duplicate"
    assert result.manifest["history"] == 2


def test_a_missing_history_file_means_a_first_night(tmp_path, catalog):
    samples = write_samples(tmp_path / "samples.jsonl", NOVEL)
    manifest = curate(samples, catalog_entries(catalog), tmp_path / "kept.jsonl", no_reader(),
                      history_path=tmp_path / "nope.jsonl")
    assert manifest["kept"] == len(NOVEL) and manifest["history"] == 0


# --- blocklist --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "A foul-mouthed chef keeps fucking up every dinner service until a food critic teaches him patience.",
    "A foul-mouthed chef keeps saying SHIT during every dinner service until a critic teaches him patience.",
])
def test_default_blocklist_blocks_strong_profanity(run, text):
    result = run([text])
    assert result.reason(text) == "blocklist"


@pytest.mark.parametrize("text", [
    "Engineer Dick Strawbridge and craftsman Will Hardie tour eight unique cabins built for a pop-up hotel.",
    "A struggling actress takes a job as a secretary for a prickly attorney to research a new role.",
    "A hellish family holiday turns into a road trip when the twins steal their grandfather's sex-ed tapes.",
])
def test_default_blocklist_spares_names_and_everyday_words(run, text):
    assert run([text]).kept_texts == [text]


def test_a_blocklist_file_replaces_the_default(run, tmp_path):
    blocklist = tmp_path / "words.txt"
    blocklist.write_text("# ours\nPineapple\nbank heist   # a phrase\nsmuggl*\n", encoding="utf-8")
    profane = "A foul-mouthed chef keeps fucking up every dinner service until a food critic teaches him patience."
    fruit = "A retired sailor opens a pineapple farm on a windy island and learns to trust his neighbours."
    phrase = "Three retirees plan a bank heist to pay for their grandson's surgery, then lose the getaway car."
    smuggler = "A shy ferry captain is mistaken for a notorious smuggler by both the police and a rival gang."
    result = run([profane, fruit, phrase, smuggler], blocklist_file=str(blocklist))
    assert result.kept_texts == [profane]
    assert {r["reason"] for r in result.rejected} == {"blocklist"}


def test_a_missing_blocklist_file_is_a_user_error(run, tmp_path):
    with pytest.raises(UserError, match="blocklist file not found"):
        run(NOVEL, blocklist_file=str(tmp_path / "missing.txt"))


def test_shipped_blocklist_has_words_and_prefixes():
    blocklist = load_blocklist()
    assert "fuck" in blocklist.prefixes and "shit" in blocklist.words and "hell" not in blocklist.words


# --- rule order -------------------------------------------------------------------------------

def test_the_first_failing_rule_in_the_documented_order_is_the_reason(run):
    samples = [
        {"text": CATALOG[0], "terminated": False},                    # unterminated + copy
        "Fucking short.",                                             # length + blocklist
        CATALOG[1].replace(".", "") + " <|endoftext|>",              # malformed + copy
        "A man walks into the the city and keeps fucking up his new job at the bakery near the river.",  # degenerate
        CATALOG[2].replace("friends", "fucking friends"),            # copy + blocklist
        NOVEL[0],
        NEAR_NOVEL_0.replace("televised", "fucking"),                # blocklist + near-duplicate
        NEAR_NOVEL_0,                                                 # near-duplicate
    ]
    result = run(samples)
    assert [r["reason"] for r in result.rejected] == [
        "unterminated", "length", "malformed", "degenerate", "copy", "blocklist", "near-duplicate"]
    assert result.kept_texts == [NOVEL[0]]
    assert RULES == ("unterminated", "length", "malformed", "degenerate", "unknown-words", "copy", "blocklist",
                     "near-duplicate", "reader", "reader-budget", "title-empty", "title-too-long", "title-malformed",
                     "title-degenerate", "title-first-words", "title-invented-word", "title-copy", "title-repeat",
                     "title-reader")


def test_a_rejected_sample_does_not_shadow_later_ones(run):
    blocked = NOVEL[0].replace("televised", "fucking")
    result = run([blocked, NOVEL[0]])
    assert result.reason(blocked) == "blocklist" and result.kept_texts == [NOVEL[0]]


# --- ranking ----------------------------------------------------------------------------------

def test_kept_samples_are_ranked_by_a_numeric_field_when_present(run):
    samples = [{"text": NOVEL[0], "logprob": -2.5}, {"text": NOVEL[1], "logprob": -1.0},
               {"text": NOVEL[2]}, {"text": NOVEL[3], "logprob": -1.0}]
    result = run(samples, rank_by="logprob")  # the default, reader_score, is tests/test_curate_reader.py's
    assert result.kept_texts == [NOVEL[1], NOVEL[3], NOVEL[0], NOVEL[2]]
    assert [r["rank"] for r in result.kept] == [1, 2, 3, 4]
    assert result.manifest["ranked_by"] == "logprob"


def test_input_order_without_a_ranking_field_or_with_ranking_off(run):
    result = run(NOVEL)
    assert result.kept_texts == NOVEL and "rank" not in result.kept[0] and result.manifest["ranked_by"] is None
    off = run([{"text": t, "logprob": -float(i)} for i, t in enumerate(reversed(NOVEL))], rank_by="")
    assert off.kept_texts == list(reversed(NOVEL)) and "rank" not in off.kept[0]


# --- determinism and idempotence --------------------------------------------------------------

POOL = [*NOVEL, *CATALOG, VAL_DESCRIPTION, NEAR_NOVEL_0, CATALOG[0].upper(), "Too short.", f"{BASE}",
        "A young man walks into the the city and finds a job at a bakery near the river.",
        NOVEL[1].replace("parking lot", "car park"), NOVEL[3].replace("helicopter", "plane")]
WORDS = "a the detective chef city river finds secret family old new storm island band rival night".split()

sample_strategy = st.one_of(
    st.sampled_from(POOL),
    st.lists(st.sampled_from(WORDS), min_size=6, max_size=30).map(lambda ws: " ".join(ws).capitalize() + "."),
).flatmap(lambda text: st.fixed_dictionaries(
    {"text": st.just(text), "terminated": st.booleans()},
    optional={"logprob": st.floats(-5, 0, allow_nan=False)}))


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(samples=st.lists(sample_strategy, max_size=20))
def test_curation_is_deterministic_and_idempotent(samples, catalog):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entries = catalog_entries(catalog)
        write_samples(tmp / "in.jsonl", samples)
        first = curate(tmp / "in.jsonl", entries, tmp / "a.jsonl", no_reader(rank_by="logprob"))
        second = curate(tmp / "in.jsonl", entries, tmp / "b.jsonl", no_reader(rank_by="logprob"))
        assert (tmp / "a.jsonl").read_bytes() == (tmp / "b.jsonl").read_bytes()
        assert (tmp / "a.rejected.jsonl").read_bytes() == (tmp / "b.rejected.jsonl").read_bytes()
        assert first["rejected"] == second["rejected"]

        again = curate(tmp / "a.jsonl", entries, tmp / "c.jsonl", no_reader(rank_by="logprob"))
        assert again["kept"] == first["kept"] and sum(again["rejected"].values()) == 0
        assert (tmp / "c.jsonl").read_bytes() == (tmp / "a.jsonl").read_bytes()
        ids = [r["id"] for r in read(tmp / "a.jsonl")]
        assert len(ids) == len(set(ids))


def test_same_outputs_across_processes_with_different_hash_seeds(tmp_path, catalog):
    samples = [*NOVEL, NEAR_NOVEL_0, *CATALOG, NOVEL[2].replace("radio", "podcast")] * 2
    write_samples(tmp_path / "in.jsonl", samples)
    code = ("import sys; from generator.curate import CurateSettings, curate; "
            "from generator.ingest import IngestSettings, load_catalog; "
            "curate(sys.argv[1], load_catalog(sys.argv[2], IngestSettings()), sys.argv[3], CurateSettings(reader=False))")
    for seed in ("1", "2"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.jsonl"), str(catalog),
                        str(tmp_path / f"out{seed}.jsonl")], check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONHASHSEED": seed})
    for suffix in (".jsonl", ".rejected.jsonl"):
        assert (tmp_path / f"out1{suffix}").read_bytes() == (tmp_path / f"out2{suffix}").read_bytes()


# --- settings ---------------------------------------------------------------------------------

def test_settings_come_from_config_and_environment():
    config = load_config(profile="test", environ={"GENERATOR_CURATE__COPY_NGRAM": "6",
                                                  "GENERATOR_CURATE__RANK_BY": ""})
    assert config.curate.copy_ngram == 6 and config.curate.rank_by == ""


@pytest.mark.parametrize("overrides", [
    {"min_words": 0}, {"min_words": 10, "max_words": 9}, {"near_duplicate_threshold": 0.0},
    {"near_duplicate_threshold": 1.5}, {"copy_ngram": 0}, {"min_distinct_ratio": 2.0}, {"num_perm": 4},
])
def test_bad_settings_are_user_errors(overrides):
    with pytest.raises(UserError):
        CurateSettings(**overrides).validate()


# --- CLI --------------------------------------------------------------------------------------

def test_cli_writes_kept_rejected_and_manifest(tmp_path, catalog):
    samples = write_samples(tmp_path / "in.jsonl", [NOVEL[0], CATALOG[0], NOVEL[1]])
    history = write_samples(tmp_path / "history.jsonl", [NOVEL[1]])
    result = run_cli("curate", "--profile", "test", "--samples", str(samples), "--catalog", str(catalog), "--out",
                     str(tmp_path / "out" / "kept.jsonl"), "--rejected", str(tmp_path / "rej.jsonl"),
                     "--history", str(history))
    assert result.returncode == 0, result.stderr
    assert "kept 1 of 3" in result.stdout
    assert [r["text"] for r in read(tmp_path / "out" / "kept.jsonl")] == [NOVEL[0]]
    assert [r["reason"] for r in read(tmp_path / "rej.jsonl")] == ["copy", "near-duplicate"]
    assert json.loads((tmp_path / "out" / "kept.manifest.json").read_text())["kept"] == 1


def test_cli_malformed_jsonl_is_a_clean_error(tmp_path, catalog):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": NOVEL[0]}) + "\n{not json\n", encoding="utf-8")
    result = run_cli("curate", "--samples", str(bad), "--catalog", str(catalog), "--out", str(tmp_path / "k.jsonl"))
    assert result.returncode == 2
    assert_clean_error(result, "bad.jsonl:2", "malformed")
    assert not (tmp_path / "k.jsonl").exists() and not (tmp_path / "k.rejected.jsonl").exists()


@pytest.mark.parametrize("missing", ["samples", "catalog"])
def test_cli_missing_input_is_a_clean_error(tmp_path, catalog, missing):
    samples = write_samples(tmp_path / "in.jsonl", NOVEL)
    paths = {"samples": samples, "catalog": catalog, missing: tmp_path / f"no-{missing}"}
    result = run_cli("curate", "--samples", str(paths["samples"]), "--catalog", str(paths["catalog"]),
                     "--out", str(tmp_path / "k.jsonl"))
    assert result.returncode == 2
    assert_clean_error(result, "not found", f"no-{missing}")
    assert not (tmp_path / "k.jsonl").exists()


# --- the real catalog (../shared/data) --------------------------------------------------------

def test_real_descriptions_pass_every_rule_except_copy(tmp_path):
    """>= 99 % of real Netflix descriptions are well-formed, non-degenerate, distinct, clean."""
    descriptions = [entry.description for entry in catalog_entries(shared_csv(2021))]
    samples = write_samples(tmp_path / "real.jsonl", descriptions)
    unrelated = write_catalog(tmp_path / "unrelated.csv", CATALOG)
    # unknown-words judges against the catalog's own vocabulary, which an unrelated catalog lacks
    # (98.4 % pass on English alone); tests/test_quality.py checks it with the real vocabulary.
    manifest = curate(samples, catalog_entries(unrelated), tmp_path / "kept.jsonl", no_reader(max_unknown_words=-1))
    assert manifest["rejected"]["copy"] == 0
    assert manifest["kept"] / manifest["input"] >= 0.99, manifest["rejected"]


def test_every_training_description_is_rejected_as_a_copy(tmp_path):
    catalog_path = shared_csv(2021)
    entries = catalog_entries(catalog_path)
    fraction = IngestSettings().validation_fraction
    training = [e.description for e in entries if not is_validation(e.description, fraction)]
    samples = write_samples(tmp_path / "train.jsonl", training)
    manifest = curate(samples, entries, tmp_path / "kept.jsonl", no_reader())
    assert manifest["kept"] == 0 and manifest["input"] == len(training)
    rejected = read(tmp_path / "kept.rejected.jsonl")
    # A description failing an earlier rule is reported as that; the copy rule catches it too.
    earlier = {"unterminated", "length", "malformed", "degenerate"}
    assert all(r["reason"] == "copy" or r["reason"] in earlier for r in rejected)
    assert manifest["rejected"]["copy"] >= 0.99 * len(training)
    index = CopyIndex(entries, CurateSettings().copy_ngram)
    assert all(index.find(normalised_words(r["text"])) for r in rejected if r["reason"] != "copy")


def test_real_held_out_descriptions_pass_the_default_nights_rules(tmp_path):
    """The default night's rules turn away real English only where it is not new text.

    The 2021 catalog's held-out descriptions are curated as if a model had written them, against the
    training descriptions alone (so their own words and names are not given away), with the default
    profile's settings. The reader is left out: its cut is calibrated on these very descriptions and
    turns away its ``reader_percentile`` of them by construction. Held-out descriptions that repeat a
    training one (the seasons of one show, an extended cut of a special: 8+ words in a row in common)
    are the catalog repeating itself, which the copy rule exists to refuse; at most 1 % are such.
    """
    from generator.curate.lexicon import Lexicon

    entries = catalog_entries(shared_csv(2021))
    training = [e for e in entries if e.split == "train"]
    held_out = [e.description for e in entries if e.split == "val"]
    profile = dataclasses.replace(load_config(environ={}).curate, reader=False)
    samples = write_samples(tmp_path / "held-out.jsonl", held_out)
    manifest = curate(samples, training, tmp_path / "kept.jsonl", profile)
    repeats = manifest["rejected"]["copy"]
    assert repeats <= 0.01 * len(held_out)
    new_text = len(held_out) - repeats
    assert manifest["kept"] / new_text >= 0.99, read(tmp_path / "kept.rejected.jsonl")
    # Invented words are still never published: a word in no English list and not the catalog's.
    lexicon = Lexicon([dataclasses.asdict(e) for e in training], profile.unknown_words_min_zipf,
                      profile.allow_new_names, profile.allow_new_compounds)
    invented = ["gradukome", "eartmogue", "plunotaria", "flarbish", "snorvelt"]
    spliced = [f"{text.rstrip('.')} and the {word}." for text, word in zip(held_out, invented * 20)]
    assert all(lexicon.unknown(text) for text in spliced)
    samples = write_samples(tmp_path / "spliced.jsonl", spliced)
    assert curate(samples, training, tmp_path / "spliced-kept.jsonl", profile)["kept"] == 0
