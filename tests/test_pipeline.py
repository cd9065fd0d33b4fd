"""The whole night through the CLI, as a user runs it, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.night import night_seed

from conftest import SAMPLE_CATALOG, assert_clean_error, catalog_entries, run_cli

NIGHT = "2026-11-20"


def site_snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One full `run` with the test profile to a file:// target."""
    base = tmp_path_factory.mktemp("night")
    work, public = base / "work", base / "public"
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "24", "--steps", "20", "--seed", "3",
                     "--night", NIGHT)
    assert result.returncode == 0, result.stderr[-4000:]
    return base, work, public, result


@pytest.mark.slow
def test_run_publishes_a_browsable_site(published):
    base, work, public, result = published
    assert f"site: {work / 'site' / 'index.html'}" in result.stdout
    assert f"published: file://{public}/index.html" in result.stdout
    assert (public / "index.html").is_file()
    report = json.loads((work / "nights" / NIGHT / "report.json").read_text())
    assert report["catalog"]["kept"] == 1686
    assert report["train"]["steps"] == 20 and report["train"]["val_loss"] > 0
    assert report["generate"]["samples"] == 24
    assert report["curate"]["input"] == 24
    assert report["publish"]["uploaded"] > 0
    for stage_output in ("ingest", "generate/samples.jsonl", "curate/kept.jsonl"):
        output = work / "nights" / NIGHT / stage_output
        assert output.with_name(output.stem + ".manifest.json").is_file(), stage_output


@pytest.mark.slow
def test_second_run_on_unchanged_catalog_skips_training(published):
    base, work, public, _ = published
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "24", "--seed", "3", "--night", "2026-11-21")
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((work / "nights" / "2026-11-21" / "report.json").read_text())
    assert report["train"]["skipped"] is True
    assert report["model"]["live_step"] == 20
    # The same model, a new night: new descriptions, not last night's again (curation would reject those).
    texts = {night: [json.loads(line)["text"] for line in (work / "nights" / night / "generate" / "samples.jsonl")
                     .read_text(encoding="utf-8").splitlines()] for night in (NIGHT, "2026-11-21")}
    assert len(texts[NIGHT]) == len(texts["2026-11-21"]) == 24 and texts[NIGHT] != texts["2026-11-21"]
    assert report["generate"]["seed"] == night_seed(3, "2026-11-21") < 2**32


@pytest.mark.parametrize("case", ["missing", "no_description", "empty", "encoding", "profile", "target"])
def test_bad_input_fails_cleanly_and_leaves_the_published_site(published, tmp_path, case):
    base, work, public, _ = published
    before = site_snapshot(public)
    catalog, target, extra = str(SAMPLE_CATALOG), f"file://{public}", []
    needles = {
        "missing": ("catalog not found",), "no_description": ("no 'description' column",),
        "empty": ("empty",), "encoding": ("not UTF-8",), "profile": ("unknown profile",),
        "target": ("target",),
    }[case]
    if case == "missing":
        catalog = str(tmp_path / "nope.csv")
    elif case == "no_description":
        (tmp_path / "c.csv").write_text("show_id,title\ns1,Foo\n")
        catalog = str(tmp_path / "c.csv")
    elif case == "empty":
        (tmp_path / "c.csv").write_text("")
        catalog = str(tmp_path / "c.csv")
    elif case == "encoding":
        (tmp_path / "c.csv").write_bytes("description\nCafé au lait à Paris, où tout commence ici.\n".encode("latin-1"))
        catalog = str(tmp_path / "c.csv")
    elif case == "profile":
        extra = ["--profile", "enormous"]
    elif case == "target":
        target = "ftp://example.invalid/site"
    result = run_cli("run", *(extra or ["--profile", "test"]), "--catalog", catalog, "--workdir", str(work),
                     "--target", target, "--samples", "4", "--night", "2026-11-22")
    assert_clean_error(result, *needles)
    assert site_snapshot(public) == before


def test_malformed_samples_line_is_a_clean_error(tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"text": "A fine description of a thing that happens."}\n{not json}\n')
    result = run_cli("curate", "--samples", str(samples), "--catalog", str(SAMPLE_CATALOG),
                     "--out", str(tmp_path / "kept.jsonl"))
    assert_clean_error(result, "s.jsonl:2", "malformed")
    result = run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "site"))
    assert_clean_error(result, "s.jsonl:2")


def test_stage_by_stage_cli_matches_the_contract(trained_run, tmp_path):
    config, ingest_dir, root = trained_run
    samples, kept, site = tmp_path / "samples.jsonl", tmp_path / "kept.jsonl", tmp_path / "site"
    steps = [
        ("generate", "--profile", "test", "--checkpoint-dir", str(root), "--run-name", config.train.run_name,
         "--samples", "5", "--batch-size", "2", "--length", "40", "--temperature", "0.9", "--top-k", "40",
         "--top-p", "0.95", "--seed", "1", "--out", str(samples)),
        ("curate", "--samples", str(samples), "--catalog", str(SAMPLE_CATALOG), "--out", str(kept)),
        ("render", "--samples", str(kept), "--out", str(site)),
        ("publish", "--site", str(site), "--target", f"file://{tmp_path / 'public'}", "--dry-run"),
    ]
    for args in steps:
        result = run_cli(*args)
        assert result.returncode == 0, (args[0], result.stderr[-3000:])
    assert len(samples.read_text().splitlines()) == 5
    assert (site / "index.html").is_file()
    assert not (tmp_path / "public").exists()  # a dry run touches nothing


def test_unknown_words_rule_rejects_invented_words(tmp_path):
    from generator.curate import CurateSettings, curate

    catalog = tmp_path / "c.csv"
    catalog.write_text("description\n"
                       "A shy baker in a small seaside town enters a national contest and finds an unlikely friend.\n"
                       "Two rival chefs must share one kitchen when a storm traps the whole town inside for a week.\n")
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        '{"text": "A shy baker in a seaside town must share one kitchen and finds an unlikely rival."}\n'
        '{"text": "A shy procumpukar in a small town must share one tagos with a rival baker."}\n')
    manifest = curate(samples, catalog_entries(catalog), tmp_path / "k.jsonl", CurateSettings(max_unknown_words=1, reader=False))
    assert manifest["kept"] == 1 and manifest["rejected"]["unknown-words"] == 1
    rejected = [json.loads(line) for line in (tmp_path / "k.rejected.jsonl").read_text().splitlines()]
    assert "procumpukar" in rejected[0]["detail"]
    # On by default with no invented word allowed; -1 turns it off.
    assert curate(samples, catalog_entries(catalog), tmp_path / "k2.jsonl",
                  CurateSettings(reader=False))["rejected"]["unknown-words"] == 1
    off = curate(samples, catalog_entries(catalog), tmp_path / "k3.jsonl",
                 CurateSettings(max_unknown_words=-1, reader=False))
    assert off["rejected"]["unknown-words"] == 0


@pytest.mark.slow
def test_a_night_on_a_configured_description_column(tmp_path):
    """ingest.description_column reaches every stage: curate judges against what ingest declared."""
    import csv
    import os

    rows = list(csv.DictReader(SAMPLE_CATALOG.open(encoding="utf-8")))[:200]
    catalog = tmp_path / "synopses.csv"
    with catalog.open("w", encoding="utf-8", newline="") as handle:
        fields = ["synopsis" if name == "description" else name for name in rows[0]]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({("synopsis" if k == "description" else k): v for k, v in row.items()} for row in rows)
    work, public = tmp_path / "work", tmp_path / "public"
    env = {**os.environ, "GENERATOR_INGEST__DESCRIPTION_COLUMN": "synopsis"}
    result = run_cli("run", "--profile", "test", "--catalog", str(catalog), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "8", "--night", "2026-11-23", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((work / "nights" / "2026-11-23" / "report.json").read_text())
    assert report["catalog"]["kept"] == 200 and report["curate"]["input"] == 8
    assert (public / "index.html").is_file()


@pytest.mark.slow
def test_a_night_generates_in_rounds_until_its_budget_and_reports_why(tmp_path):
    """A target no tiny model reaches: rounds stop at the sample budget, and the report says so."""
    import os

    work, public = tmp_path / "work", tmp_path / "public"
    env = {**os.environ, "GENERATOR_GENERATE__TARGET_KEPT": "1000", "GENERATOR_GENERATE__MAX_SAMPLES": "20"}
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "8", "--night", "2026-11-24", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    night = work / "nights" / "2026-11-24"
    rounds = json.loads((night / "generate" / "rounds.json").read_text())
    assert rounds["samples"] == 20 and [r["samples"] for r in rounds["rounds"]][0] == 8
    assert len(rounds["rounds"]) >= 2 and rounds["stop"].startswith("sample budget spent")
    samples = (night / "generate" / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in samples] == list(range(20))
    report = json.loads((night / "report.json").read_text())
    assert report["generate"]["samples"] == 20 and report["generate"]["rounds"] == len(rounds["rounds"])
    assert report["curate"]["input"] == 20
    assert "sample budget spent" in result.stdout
    panel = report["quality"]
    assert panel["samples"] == 20 and set(panel) >= {"invented_rate", "distinct_2", "novelty", "reader", "realism"}
    assert "Quality" in (work / "site" / "about" / "index.html").read_text()


def test_history_carries_earlier_nights_titles_for_title_repeat(make_config, tmp_path):
    """curate's history file holds each earlier night's kept texts with their titles (none for untitled nights)."""
    from generator.artifacts import read_jsonl
    from generator.pipeline import _write_history

    config = make_config()
    archive = config.paths.archive_root
    for night, records in {"2026-11-18": [{"text": "An untitled night's text."}],
                           "2026-11-19": [{"text": "A titled night's text.", "title": "Lantern Season"}],
                           NIGHT: [{"text": "Tonight's own, archived by a re-run.", "title": "Not History"}]}.items():
        (archive / night).mkdir(parents=True)
        (archive / night / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert _write_history(config, NIGHT, tmp_path / "history.jsonl") == 2
    assert list(read_jsonl(tmp_path / "history.jsonl")) == [
        {"text": "An untitled night's text.", "night": "2026-11-18"},
        {"text": "A titled night's text.", "night": "2026-11-19", "title": "Lantern Season"}]
