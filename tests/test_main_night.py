"""The main job's night on the bundled catalog with the default profile: what readers get.

`scripts/nightly.sh` runs this night through Airflow; here the same pipeline functions run it
through the CLI (`run`), so the test measures the published descriptions, not the orchestration.
"""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE_CATALOG, run_cli

NIGHT = "2026-12-01"


@pytest.mark.slow
def test_the_default_night_publishes_150_readable_typed_and_genred_descriptions(tmp_path):
    from generator.config import load_config
    from generator.curate.lexicon import Lexicon
    from generator.quality import catalog_records

    work, public = tmp_path / "work", tmp_path / "public"
    result = run_cli("run", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", public.as_uri(), "--night", NIGHT, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    night = work / "nights" / NIGHT
    kept = [json.loads(line) for line in (night / "curate" / "kept.jsonl").read_text().splitlines()]

    assert len(kept) >= 150
    assert all(record["type"] and record["genre"] for record in kept)
    # No word outside the English lexicon and the catalog's vocabulary, judged as the profile judges.
    curate = load_config(environ={}).curate
    lexicon = Lexicon(catalog_records(night / "ingest"), curate.unknown_words_min_zipf, curate.allow_new_names,
                      curate.allow_new_compounds)
    assert [(r["text"], lexicon.unknown(r["text"])) for r in kept if lexicon.unknown(r["text"])] == []

    report = json.loads((night / "report.json").read_text())
    panel = report["quality"]
    assert panel["invented_rate"]["after"] == 0.0
    assert panel["realism"]["accuracy"] is not None
    # Before this profile (issue 12), the same night published text at median perplexity 150 and
    # realism 0.81; the realism rule keeps the half of the candidates that reads most like the catalog.
    assert panel["fluency"]["published_median_perplexity"] < 150
    assert panel["curation"]["rejected_share"]["realism"] > 0
    assert report["generate"]["stop"].startswith("target reached")
    assert "realism" in result.stdout and "invented words 0%" in result.stdout
    # Every genre page of the gallery has descriptions.
    assert (public / "index.html").is_file()
