"""The generate stage with gpt-2-simple's reference backend (the fast one has its own tests)."""

import json

import pytest

from generator.textformat import END_TOKEN, START_TOKEN, parse_sample
from generator.errors import UserError
from generator.generate.stage import GenerateSettings, generate, plan_conditions

from conftest import assert_clean_error, run_cli


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_parse_sample_cuts_at_end_marker_and_strips_prefix():
    prefix = START_TOKEN + " [TV Show] [Comedies]"
    record = parse_sample(prefix + " Two exes open a bakery.<|endoftext|>\n<|startoftext|>junk", prefix)
    assert record == {"text": "Two exes open a bakery.", "terminated": True, "type": "TV Show", "genre": "Comedies"}
    unterminated = parse_sample(START_TOKEN + "A long road with no", START_TOKEN)
    assert unterminated["terminated"] is False and unterminated["text"] == "A long road with no"
    # Unconditioned prefix, model wrote its own control prefix.
    assert parse_sample(START_TOKEN + " [Movie] [Dramas] A man." + END_TOKEN, START_TOKEN)["genre"] == "Dramas"
    # A new start marker before any end marker: the sample stops there, unfinished, marker-free.
    restarted = parse_sample(START_TOKEN + " A man walks.<|startoftext|> [Movie] A dog" + END_TOKEN, START_TOKEN)
    assert restarted == {"text": "A man walks.", "terminated": False, "type": None, "genre": None}


def test_plan_conditions_splits_any_count():
    settings = GenerateSettings(samples=7, conditions=["[Movie]", "[TV Show] [Comedies]"])
    assert plan_conditions(settings) == [(START_TOKEN + " [Movie]", 4), (START_TOKEN + " [TV Show] [Comedies]", 3)]
    assert plan_conditions(GenerateSettings(samples=5)) == [(START_TOKEN, 5)]


def test_generates_any_number_of_samples_reproducibly(trained_run, tmp_path):
    config, _, root = trained_run
    settings = GenerateSettings(samples=7, batch_size=3, seed=5, length=40, backend="gpt2-simple")
    manifest = generate(root / config.train.run_name, tmp_path / "a.jsonl", settings)
    generate(root / config.train.run_name, tmp_path / "b.jsonl", settings)
    first, second = read(tmp_path / "a.jsonl"), read(tmp_path / "b.jsonl")
    assert len(first) == 7 and manifest["samples"] == 7
    assert first == second
    assert [r["index"] for r in first] == list(range(7))
    for record in first:
        assert START_TOKEN not in record["text"] and isinstance(record["terminated"], bool)
        assert END_TOKEN not in record["text"]
    assert (tmp_path / "a.manifest.json").is_file()


def test_conditioned_generation_carries_its_condition(trained_run, tmp_path):
    config, _, root = trained_run
    settings = GenerateSettings(samples=4, batch_size=4, length=30, conditions=["[TV Show] [Comedies]"],
                                backend="gpt2-simple")
    generate(root / config.train.run_name, tmp_path / "c.jsonl", settings)
    assert {(r["type"], r["genre"]) for r in read(tmp_path / "c.jsonl")} == {("TV Show", "Comedies")}


def test_missing_checkpoint_and_bad_settings(tmp_path):
    with pytest.raises(UserError, match="no trained checkpoint"):
        generate(tmp_path / "nope", tmp_path / "x.jsonl", GenerateSettings())
    with pytest.raises(UserError, match="condition"):
        GenerateSettings(conditions=["Movie"]).validate()
    assert_clean_error(run_cli("generate", "--checkpoint-dir", str(tmp_path), "--run-name", "nope",
                               "--samples", "2", "--out", str(tmp_path / "x.jsonl")), "no trained checkpoint")


@pytest.mark.parametrize("backend", ["gpt2-simple", "fast"])
def test_both_backends_parse_a_title_out_of_a_titled_run(trained_run, tmp_path, backend):
    import shutil

    from generator.checkpoints import GENERATION_INFO, read_generation_info
    from generator.textformat import has_title

    config, ingest_dir, root = trained_run
    run_dir = root / config.train.run_name
    assert " | " in (ingest_dir / "train.txt").read_text().splitlines()[0]  # the sample catalog trains titled
    assert read_generation_info(run_dir)["titles"] is True
    settings = GenerateSettings(samples=6, batch_size=3, seed=3, length=40, backend=backend)
    generate(run_dir, tmp_path / "titled.jsonl", settings)
    titled = read(tmp_path / "titled.jsonl")
    assert len(titled) == 6 and all(isinstance(r["title"], str) for r in titled)
    assert not any(has_title(r["title"]) or START_TOKEN in r["title"] for r in titled)  # cut at the first separator
    # The same checkpoint recorded as untitled: records without a title, the text unparted.
    untitled_run = tmp_path / "untitled" / config.train.run_name
    shutil.copytree(run_dir, untitled_run)
    info = json.loads((untitled_run / GENERATION_INFO).read_text())
    (untitled_run / GENERATION_INFO).write_text(json.dumps({**info, "titles": False}))
    generate(untitled_run, tmp_path / "untitled.jsonl", settings)
    untitled = read(tmp_path / "untitled.jsonl")
    assert all("title" not in r for r in untitled)
    for plain, parted in zip(untitled, titled):  # same draws: the untitled text holds the title before it
        assert parted["text"] in plain["text"] and plain["text"].startswith(parted["title"])
