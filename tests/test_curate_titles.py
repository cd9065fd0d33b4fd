"""Titles: the training-text format, parsing a weak model's output, every title rule, real catalogs' titles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.curate import RULES, TITLE_RULES, CurateSettings, TitleReader, curate, title_key
from generator.ingest import IngestSettings, ingest, read_catalog
from generator.textformat import (END_TOKEN, START_TOKEN, TITLE_SEPARATOR, clean_title, generation_prefix,
                                  parse_sample, parse_training_line, split_control, split_title, training_line,
                                  titled_lines)

from conftest import SAMPLE_CATALOG, catalog_entries, shared_csv

PREFIX = generation_prefix("[Movie] [Dramas]")
DESCRIPTION = "A widowed ferry captain smuggles letters across a frozen strait for the town's exiled poet."
OTHER = "Two rival food truck owners are forced to share a parking lot for one summer, and their feud softens."


# --- the format -------------------------------------------------------------------------------

def test_training_line_puts_the_title_inside_the_body_after_the_control_prefix():
    line = training_line(DESCRIPTION, "Movie", "Dramas", title="The Salt Ledger")
    assert line == f"{START_TOKEN} [Movie] [Dramas] The Salt Ledger{TITLE_SEPARATOR}{DESCRIPTION}{END_TOKEN}\n"
    # The control prefix and the markers are what they always were: the body is everything after the prefix.
    kind, genre, body = parse_training_line(line.rstrip("\n"))
    assert (kind, genre, body) == ("Movie", "Dramas", f"The Salt Ledger | {DESCRIPTION}")
    assert split_title(body) == ("The Salt Ledger", DESCRIPTION)
    assert split_control(line[len(START_TOKEN):])[:2] == ("Movie", "Dramas")
    # Without a title (ingest.titles = false): exactly today's line.
    assert training_line(DESCRIPTION, "Movie", "Dramas") == f"{START_TOKEN} [Movie] [Dramas] {DESCRIPTION}{END_TOKEN}\n"
    assert training_line(DESCRIPTION, conditional=False, title="Ledger") == \
        f"{START_TOKEN}Ledger | {DESCRIPTION}{END_TOKEN}\n"


def test_titled_lines_needs_every_line_titled():
    titled = [training_line(DESCRIPTION, "Movie", "Dramas", title="The Salt Ledger").strip(),
              training_line(OTHER, "TV Show", "", title="Lot 9").strip()]
    assert titled_lines(titled)
    assert not titled_lines(titled + [training_line(OTHER, "Movie", "Dramas").strip()])
    assert not titled_lines([]) and not titled_lines(["not a training line"])


@pytest.mark.parametrize("raw, cleaned", [
    ("Black Holes | The Edge of All We Know", "Black Holes: The Edge of All We Know"),
    ("Hatchimals | Adventures in Hatchtopia", "Hatchimals: Adventures in Hatchtopia"),
    ("[REC]", "(REC)"),
    ("Tricky <|endoftext|> Title", "Tricky Title"),
    ("|Lone bar|", "Lone bar"),
    ("  Spaced   Out  ", "Spaced Out"),
])
def test_clean_title_keeps_the_separator_and_brackets_out_of_titles(raw, cleaned):
    assert clean_title(raw) == cleaned
    assert split_title(f"{clean_title(raw)} | {DESCRIPTION}") == (cleaned, DESCRIPTION)


# --- parsing samples, a weak model's too ------------------------------------------------------

def test_parse_sample_parts_title_and_description():
    record = parse_sample(f"{PREFIX} The Salt Ledger | {DESCRIPTION}{END_TOKEN}junk", PREFIX, titled=True)
    assert record == {"text": DESCRIPTION, "title": "The Salt Ledger", "terminated": True, "type": "Movie",
                      "genre": "Dramas"}
    # A model writing its own prefix after a bare start marker.
    own = parse_sample(f"{START_TOKEN} [TV Show] [Comedies] Lot 9 | {OTHER}{END_TOKEN}", START_TOKEN, titled=True)
    assert (own["type"], own["genre"], own["title"], own["text"]) == ("TV Show", "Comedies", "Lot 9", OTHER)
    # An untitled run's records are as they always were: no title field, a bar stays in the text.
    assert parse_sample(f"{PREFIX} The Salt Ledger | {DESCRIPTION}{END_TOKEN}", PREFIX) == {
        "text": f"The Salt Ledger | {DESCRIPTION}", "terminated": True, "type": "Movie", "genre": "Dramas"}


@pytest.mark.parametrize("continuation, title, text", [
    (f" {DESCRIPTION}", "", DESCRIPTION),                                  # no separator: no title
    (f" | {DESCRIPTION}", "", DESCRIPTION),                                # nothing before it
    (f"  |  {DESCRIPTION}", "", DESCRIPTION),
    (f" Lot 9 | Part Two | {DESCRIPTION}", "Lot 9", f"Part Two | {DESCRIPTION}"),  # twice: cut at the first
    (f" Lot 9|{DESCRIPTION}", "Lot 9", DESCRIPTION),                       # no spaces around it
    (f" Lot 9 |", "Lot 9", ""),                                            # nothing after it
])
def test_parse_sample_of_malformed_output(continuation, title, text):
    record = parse_sample(PREFIX + continuation + END_TOKEN, PREFIX, titled=True)
    assert (record["title"], record["text"], record["terminated"]) == (title, text, True)


@pytest.mark.parametrize("continuation, title", [
    (" [] [] The Secret | ", "The Secret"),     # empty tags where the model expected one more
    ("] The Pip | ", "The Pip"),               # a stray closing bracket right after the prefix
    (" [Dramas] [] Lot 9 | ", "Lot 9"),         # a repeated tag, then an empty one
    (" The [] Pip | ", "The [] Pip"),          # inside the title it stays, for title-malformed
])
def test_tag_noise_after_the_prefix_is_prefix_not_title(continuation, title):
    record = parse_sample(PREFIX + continuation + DESCRIPTION + END_TOKEN, PREFIX, titled=True)
    assert (record["genre"], record["title"], record["text"]) == ("Dramas", title, DESCRIPTION)
    assert split_control("[] A man.") == (None, None, "[] A man.")  # noise only after a tag


def test_marker_bars_are_not_separators():
    # An unterminated sample ending in half a marker: its bars belong to the marker.
    record = parse_sample(f"{PREFIX} Lot 9 | A man walks <|endof", PREFIX, titled=True)
    assert (record["title"], record["text"], record["terminated"]) == ("Lot 9", "A man walks <|endof", False)
    record = parse_sample(f"{PREFIX} A man walks.{START_TOKEN} [Movie] Lot | B", PREFIX, titled=True)
    assert (record["title"], record["text"], record["terminated"]) == ("", "A man walks.", False)


# --- the rules --------------------------------------------------------------------------------

CATALOG_CSV = ("show_id,type,title,listed_in,description\n"
               's1,Movie,The Salt Ledger,Dramas,"After her father\'s fishing boat is seized for debt, a stubborn '
               'teenager keeps the family cannery running while hiding its books."\n'
               's2,TV Show,Quiet Hours at Wren Street,Dramas,"A night-shift pharmacist in a shrinking Ohio town '
               'starts leaving anonymous notes for her customers."\n'
               's3,Movie,Zorvath Rising,Dramas,"A comet lights up the sky over a small fishing village."\n')


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG_CSV, encoding="utf-8")
    return catalog_entries(path)


def curate_titles(tmp_path, catalog, samples, history=None, title_reader=None, **settings):
    samples_path = tmp_path / "samples.jsonl"
    samples_path.write_text("".join(json.dumps({"terminated": True, **s}) + "\n" for s in samples), encoding="utf-8")
    history_path = None
    if history is not None:
        history_path = tmp_path / "history.jsonl"
        history_path.write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
    out = tmp_path / "kept.jsonl"
    manifest = curate(samples_path, catalog, out, CurateSettings(**{"reader": False, **settings}), history_path=history_path,
                      title_reader=title_reader)
    read = lambda path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return manifest, read(out), {r["title"]: (r["reason"], r["detail"]) for r in read(tmp_path / "kept.rejected.jsonl")}


NOVEL = [
    "A shy beekeeper enters a televised baking contest and discovers that her grandmother's cake hides a secret.",
    "An insomniac radio host starts receiving calls from a listener who seems to know what will happen tomorrow.",
    "Stranded on a glacier after a helicopter crash, a team of scientists must decide whom to trust.",
    "A retired stunt driver teams up with his estranged granddaughter to win a desert rally nobody expects.",
    "In a city of canals, a young locksmith is hired to open a door that has been shut for a century.",
    "Twin sisters who run rival bakeries on the same street must cater their mother's surprise wedding.",
    "A disgraced chess prodigy coaches a team of prison inmates for a national tournament.",
    "When her village floods, a teenage ferry pilot becomes the only link between two feuding families.",
    "A burned-out detective returns to her hometown to find the carnival that vanished when she was nine.",
    "An elderly gardener befriends the runaway boy hiding in his greenhouse, and neither tells the truth.",
    "A wedding singer loses her voice the week before the biggest job of her career.",
    "Three strangers share a taxi through a snowstorm and discover they are chasing the same stolen painting.",
    "A marine biologist and her estranged father sail north to find the whale that saved his life.",
]


@pytest.mark.parametrize("title, reason", [
    ("", "title-empty"),
    ("!?", "title-empty"),
    ("One Two Three Four Five Six Seven Eight Nine Ten Eleven", "title-too-long"),
    ("An Extraordinarily Long Title Beyond Reason, Sixty Characters Out", "title-too-long"),
    ("Honey <|endof", "title-malformed"),
    ("[Movie] Honey", "title-malformed"),
    ('The "Honey Cake', "title-malformed"),
    ("The The Honey Cake", "title-degenerate"),
    ("Honey Honey Honey", "title-degenerate"),
    ("A Shy Beekeeper", "title-first-words"),
    ("a shy beekeeper enters", "title-first-words"),
    ("The Gradukome Cake", "title-invented-word"),
    ("The Salt Ledger", "title-copy"),
    ("the salt-ledger!", "title-copy"),
    ("QUIET HOURS AT WREN STREET", "title-copy"),
])
def test_each_title_rule_rejects_the_sample_with_its_reason(tmp_path, catalog, title, reason):
    manifest, kept, rejected = curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": title}])
    assert kept == [] and rejected[title][0] == reason and rejected[title][1]
    assert manifest["rejected"][reason] == 1 and reason in TITLE_RULES and reason in RULES


def test_good_titles_are_kept_names_from_the_catalog_or_the_description_too(tmp_path, catalog):
    samples = [{"text": NOVEL[0], "title": "Honey and Ash"},
               {"text": NOVEL[1], "title": "Zorvath Calling"},  # a catalog title's word
               {"text": NOVEL[2].replace("a team", "Plunotaria's team"), "title": "Plunotaria"},  # the description's name
               {"text": NOVEL[3], "title": "The Salt Ledger Returns"}]  # not a copy: more than a catalog title
    manifest, kept, rejected = curate_titles(tmp_path, catalog, samples)
    assert [r["title"] for r in kept] == [s["title"] for s in samples] and rejected == {}
    assert manifest["titles"]["titled_samples"] == 4 and manifest["titles"]["kept_titled"] == 4


def test_an_invented_name_in_a_title_is_judged_though_capitalised(tmp_path, catalog):
    _, kept, rejected = curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": "Plunotaria"}])
    assert rejected["Plunotaria"][0] == "title-invented-word" and "Plunotaria" in rejected["Plunotaria"][1]
    # Off with the description's own rule (max_unknown_words -1).
    _, kept, _ = curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": "Plunotaria"}], max_unknown_words=-1)
    assert [r["title"] for r in kept] == ["Plunotaria"]


def test_a_title_kept_tonight_or_published_earlier_is_not_repeated(tmp_path, catalog):
    history = [{"text": NOVEL[5], "title": "Lantern Season", "night": "2026-11-30"}, {"text": NOVEL[6]}]
    samples = [{"text": NOVEL[0], "title": "Honey and Ash"}, {"text": NOVEL[1], "title": "honey & ash"},
               {"text": NOVEL[2], "title": "Lantern Season."}]
    _, kept, rejected = curate_titles(tmp_path, catalog, samples, history=history)
    assert [r["title"] for r in kept] == ["Honey and Ash"]
    assert rejected["honey & ash"] == ("title-repeat", f"the title of kept sample {kept[0]['id']}")
    assert rejected["Lantern Season."] == ("title-repeat", "the title of a description published on 2026-11-30")


def test_a_rejected_title_frees_neither_its_description_nor_its_title(tmp_path, catalog):
    # The description of a sample rejected for its title is not kept, so the same text with a good title is.
    samples = [{"text": NOVEL[0], "title": "The Salt Ledger"}, {"text": NOVEL[0], "title": "Honey and Ash"}]
    _, kept, rejected = curate_titles(tmp_path, catalog, samples)
    assert [r["title"] for r in kept] == ["Honey and Ash"] and rejected["The Salt Ledger"][0] == "title-copy"


def test_a_second_separator_in_the_description_is_malformed(tmp_path, catalog):
    _, kept, rejected = curate_titles(tmp_path, catalog, [{"text": "Part Two | " + NOVEL[0], "title": "Honey"}])
    assert rejected["Honey"][0] == "title-malformed" and "separator" in rejected["Honey"][1]


def test_untitled_samples_skip_the_title_rules(tmp_path, catalog):
    manifest, kept, _ = curate_titles(tmp_path, catalog, [{"text": NOVEL[0]}, {"text": NOVEL[1], "title": None}])
    assert len(kept) == 2 and manifest["titles"]["titled_samples"] == 0
    assert all(manifest["rejected"][rule] == 0 for rule in TITLE_RULES)


def test_title_limits_are_settings(tmp_path, catalog):
    _, kept, rejected = curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": "Honey and Ash"}],
                                      title_max_words=2)
    assert kept == [] and rejected["Honey and Ash"] == ("title-too-long", "3 words (at most 2)")


def test_title_key_ignores_case_accents_and_punctuation():
    assert title_key("Amélie's: Café!") == title_key("AMELIES CAFE") == "amelies cafe"
    assert title_key("Fast & Furious") == title_key("fast and furious")
    assert title_key("The Salt Ledger") != title_key("The Salt Ledgers")


# --- the reader's seam ------------------------------------------------------------------------

def test_title_reader_hook_rejects_titles_under_its_cut(tmp_path, catalog):
    calls = []

    def fake_scorer(titles: list[str]) -> list[float]:
        calls.append(list(titles))
        return [-1.0 if "Ash" in title else 2.0 for title in titles]

    samples = [{"text": NOVEL[0], "title": "Honey and Ash"}, {"text": NOVEL[1], "title": "Night Calls"},
               {"text": NOVEL[2], "title": "The Salt Ledger"}, {"text": NOVEL[3]}]
    reader = TitleReader(fake_scorer, min_score=0.5, name="fake")
    manifest, kept, rejected = curate_titles(tmp_path, catalog, samples, title_reader=reader)
    # One call, with the titles that passed every other rule, in input order.
    assert calls == [["Honey and Ash", "Night Calls"]]
    assert [r.get("title") for r in kept] == ["Night Calls", None]
    assert rejected["Honey and Ash"] == ("title-reader", "fake score -1.000 under 0.5")
    assert manifest["rejected"]["title-reader"] == 1 and manifest["rejected"]["title-copy"] == 1
    assert manifest["titles"]["reader"] == {"on": True, "reader": "fake", "min_score": 0.5, "judged": 2, "dropped": 1}
    # Default: off, and nothing scores.
    manifest, kept, _ = curate_titles(tmp_path, catalog, samples)
    assert manifest["titles"]["reader"] == {"on": False} and len(kept) == 3


def test_title_reader_must_score_every_title(tmp_path, catalog):
    reader = TitleReader(lambda titles: [1.0], min_score=0.0)
    with pytest.raises(ValueError, match="1 scores for 2 titles"):
        curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": "Honey"}, {"text": NOVEL[1], "title": "Calls"}],
                      title_reader=reader)


# --- real catalogs ----------------------------------------------------------------------------

def test_bundled_catalog_titles_are_rejected_as_copies(tmp_path):
    ingest(str(SAMPLE_CATALOG), tmp_path / "ingest", IngestSettings())
    catalog = read_catalog(tmp_path / "ingest")
    titles = [entry.title for entry in catalog][:len(NOVEL)]
    samples = [{"text": text, "title": title.upper()} for text, title in zip(NOVEL, titles)]
    _, kept, rejected = curate_titles(tmp_path, catalog, samples, max_unknown_words=-1)
    assert kept == [] and {reason for reason, _ in rejected.values()} == {"title-copy"}


@pytest.mark.parametrize("year", [2020, 2021])
def test_real_netflix_titles_are_rejected_as_copies_training_and_held_out_alike(tmp_path, year):
    ingest(str(shared_csv(year)), tmp_path / "ingest", IngestSettings())
    catalog = read_catalog(tmp_path / "ingest")
    train = [e.title for e in catalog if e.split == "train" and e.title]
    held_out = [e.title for e in catalog if e.split == "val" and e.title]
    assert held_out, "the default validation fraction holds some titles out"
    # Case and punctuation changed, as a model might write them.
    chosen = train[::997][:6] + held_out[::53][:6]
    samples = [{"text": text, "title": title.lower().replace(":", " -") + "!"} for text, title in zip(NOVEL, chosen)]
    manifest, kept, rejected = curate_titles(tmp_path, catalog, samples, max_unknown_words=-1)
    assert kept == [] and [reason for reason, _ in rejected.values()] == ["title-copy"] * len(samples)
    assert manifest["rejected"]["title-copy"] == len(samples)


@pytest.mark.parametrize("year", [2020, 2021])
def test_title_catalogs_keep_a_bundled_catalog_night_from_copying_real_titles(tmp_path, catalog, year):
    import csv

    with shared_csv(year).open(encoding="utf-8-sig") as handle:
        real = [row.get("title") or row.get(" title") for row in csv.DictReader(handle)][::1500]
    samples = [{"text": text, "title": title.upper()} for text, title in zip(NOVEL, real)]
    manifest, kept, rejected = curate_titles(tmp_path, catalog, samples, max_unknown_words=-1,
                                             title_catalogs=[str(shared_csv(year))])
    assert kept == [] and {reason for reason, _ in rejected.values()} == {"title-copy"}
    assert all(f"of netflix_titles_{year}.csv" in detail for _, detail in rejected.values())
    assert manifest["titles"]["known_titles"] > 7000
    assert manifest["settings"]["title_catalogs"] == [f"netflix_titles_{year}.csv"]  # its public label only
    # Without the setting, the small catalog alone does not know them.
    _, kept, _ = curate_titles(tmp_path, catalog, samples, max_unknown_words=-1)
    assert len(kept) == len(samples)


def test_a_title_catalog_needs_a_title_column(tmp_path, catalog):
    from generator.errors import UserError

    (tmp_path / "plain.csv").write_text("description\nA man walks.\n", encoding="utf-8")
    with pytest.raises(UserError, match="no 'title' column"):
        curate_titles(tmp_path, catalog, [{"text": NOVEL[0], "title": "Honey"}],
                      title_catalogs=[str(tmp_path / "plain.csv")])
