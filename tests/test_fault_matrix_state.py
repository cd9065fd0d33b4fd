"""The fault matrix, state files: the live pointer, the run's TensorFlow ``checkpoint`` file, a diverged model.

State a person, a crash or a bad night can damage must never send a night outside its
roots, throw a night's training away in silence or leave the workdir broken. One published
night (``world``) is built once; each case damages one state file, runs one command as a
user would and checks its exit, its one ``error:`` line and that nothing it protects changed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLE_CATALOG, assert_clean_error, run_cli
from faults import tree_hash

NIGHT, NEXT = "2026-11-20", "2026-11-21"


def night_args(work: Path, public: Path, night: str, *extra: str) -> list[str]:
    return ["run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
            "--target", f"file://{public}", "--samples", "8", "--steps", "10", "--night", night, *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("state")
    work, public = base / "work", base / "public"
    result = run_cli(*night_args(work, public, NIGHT))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = work / "checkpoints"
    pointer = checkpoints / "nightly.live.json"
    release = checkpoints / json.loads(pointer.read_text())["release"]
    protected = [work / "site", public, checkpoints / "releases", pointer, work / "models", work / "archive"]
    return {"base": base, "work": work, "public": public, "pointer": pointer, "release": release,
            "protected": protected, "before": tree_hash(*protected)}


# --- the live pointer ------------------------------------------------------------------------------

def plant(world, where: Path) -> Path:
    """A complete copy of the live release somewhere a hostile pointer could name (it must stay unused)."""
    if not where.exists():
        shutil.copytree(world["release"], where)
    return where


POINTERS = {  # name -> (the pointer's new bytes, given the world; a word of the error)
    "outside-releases": (lambda w: {"release": "../../outside/evil", "step": 10}, "not a release"),
    "absolute-elsewhere": (lambda w: {"release": str(plant(w, w["base"] / "outside" / "evil")), "step": 10},
                           "not a release"),
    "another-run": (lambda w: {"release": "releases/other/step-0000010", "step": 10}, "not a release"),
    "not-a-step-folder": (lambda w: {"release": "releases/nightly/latest", "step": 10}, "not a release"),
    "missing-release": (lambda w: {"release": "releases/nightly/step-9999999", "step": 9999999}, "no checkpoint"),
    "truncated": (lambda w: w["pointer"].read_bytes()[:20], "not valid JSON"),
    "not-json": (lambda w: b"\xff{release", "not valid JSON"),
    "a-list": (lambda w: [], "JSON object"),
    "no-step": (lambda w: {"release": "releases/nightly/step-0000010"}, "step"),
    "release-a-number": (lambda w: {"release": 7, "step": 10}, "release"),
}


@pytest.mark.parametrize("name", sorted(POINTERS))
def test_a_damaged_live_pointer_stops_the_night_before_it_generates(world, name):
    work, pointer = world["work"], world["pointer"]
    plant(world, world["base"] / "outside" / "evil")  # "../../outside/evil" from checkpoints/
    plant(world, work / "checkpoints" / "releases" / "other" / "step-0000010")
    good = pointer.read_bytes()
    content, needle = POINTERS[name]
    value = content(world)
    pointer.write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())
    try:
        result = run_cli(*night_args(work, world["public"], NEXT))
    finally:
        pointer.write_bytes(good)
    assert result.returncode == 2, result.stderr[-2000:]
    assert_clean_error(result, "live pointer", needle, "fix:")
    assert not (work / "nights" / NEXT / "generate").exists() or not any((work / "nights" / NEXT / "generate").iterdir())
    shutil.rmtree(work / "nights" / NEXT, ignore_errors=True)
    shutil.rmtree(work / "checkpoints" / "releases" / "other")
    assert tree_hash(*world["protected"]) == world["before"]


# --- the run's TensorFlow checkpoint state file -------------------------------------------------------

STATE_FILES = {  # name -> the run's `checkpoint` file
    "nonexistent-absolute": 'model_checkpoint_path: "/nonexistent/model-99999"\n'
                            'all_model_checkpoint_paths: "/nonexistent/model-99999"\n',
    "another-runs-step": 'model_checkpoint_path: "../releases/nightly/step-0000099/model-99"\n',
    "not-a-model": 'model_checkpoint_path: "counter"\n',
    "missing-step": 'model_checkpoint_path: "model-99999"\n',
    "no-path-line": "garbage\n",
}


@pytest.mark.parametrize("name", sorted(STATE_FILES))
def test_a_run_state_file_pointing_elsewhere_is_an_error_not_fresh_weights(world, name):
    work = world["work"]
    run_dir = work / "checkpoints" / "nightly"
    state = run_dir / "checkpoint"
    good, manifest = state.read_bytes(), (work / "checkpoints" / "nightly.manifest.json").read_bytes()
    before = sorted(p.name for p in run_dir.iterdir())
    state.write_text(STATE_FILES[name])
    try:
        result = run_cli("train", "--profile", "test", "--ingest", str(work / "nights" / NIGHT / "ingest"),
                         "--checkpoint-dir", str(work / "checkpoints"), "--models-dir", str(work / "models"),
                         "--steps", "2")
        after = sorted(p.name for p in run_dir.iterdir())
    finally:
        state.write_bytes(good)
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert_clean_error(result, "not a checkpoint in", "fresh weights", 'fix: write \'model_checkpoint_path: "model-10"\'')
    assert "trained to step" not in result.stdout
    assert after == before, "nothing trained, nothing saved"
    assert (work / "checkpoints" / "nightly.manifest.json").read_bytes() == manifest
    assert tree_hash(*world["protected"]) == world["before"]


def test_a_moved_run_resumes_from_its_own_checkpoint_not_the_old_path(world):
    """TF writes absolute paths: after a move, the state file names the old place. The run's own checkpoint counts."""
    work = world["work"]
    run_dir = work / "checkpoints" / "nightly"
    (run_dir / "checkpoint").write_text('model_checkpoint_path: "/old/place/checkpoints/nightly/model-10"\n'
                                        'all_model_checkpoint_paths: "/old/place/checkpoints/nightly/model-10"\n')
    result = run_cli("train", "--profile", "test", "--ingest", str(work / "nights" / NIGHT / "ingest"),
                     "--checkpoint-dir", str(work / "checkpoints"), "--models-dir", str(work / "models"),
                     "--steps", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained to step 12 (+2)" in result.stdout, result.stdout
    assert '"model-12"' in (run_dir / "checkpoint").read_text() and "/old/place" not in (run_dir / "checkpoint").read_text()
    # From the trained weights, not fresh ones (TF, following the old path, would find nothing and start over).
    curve = json.loads((work / "checkpoints" / "nightly.manifest.json").read_text())["loss_curve"]
    tonight = [loss for step, loss in curve if step > 10]
    assert tonight and max(tonight) < curve[0][1] - 0.3, curve
    assert tree_hash(*world["protected"]) == world["before"]


# --- a diverged model --------------------------------------------------------------------------------

DIVERGE = {"GENERATOR_TRAIN__LEARNING_RATE": "1e30"}


def live_record(work: Path) -> dict | None:
    pointer = work / "checkpoints" / "nightly.live.json"
    return json.loads(pointer.read_text()) if pointer.is_file() else None


@pytest.mark.slow
def test_a_diverged_night_is_never_released_and_later_nights_recover(tmp_path):
    work, public = tmp_path / "work", tmp_path / "public"
    # A fresh workdir: nothing live to fall back on. The night ends, naming the fix; nothing is released.
    result = run_cli(*night_args(work, public, "2026-11-01"), env=DIVERGE)
    assert_clean_error(result, "training diverged", "fix: lower train.learning_rate")
    assert result.returncode == 2 and live_record(work) is None
    assert not (work / "checkpoints" / "releases").exists() and not (work / "checkpoints" / "nightly").exists()
    assert not public.exists()

    # A sane rate the next night recovers by itself, from the base model.
    result = run_cli(*night_args(work, public, "2026-11-02"))
    assert result.returncode == 0, result.stderr[-3000:]
    live = live_record(work)
    assert live and math.isfinite(live["val_loss"]) and live["step"] == 10

    # With a checkpoint live, a diverged night keeps it, says so with the fix, and resets the run to it.
    result = run_cli(*night_args(work, public, "2026-11-03", "--force-retrain"), env=DIVERGE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training diverged" in result.stdout and "lower train.learning_rate" in result.stdout, result.stdout
    report = json.loads((work / "nights" / "2026-11-03" / "report.json").read_text())
    assert report["train"]["diverged"] is True and report["train"]["promoted"] is False
    assert live_record(work) == live
    run_state = (work / "checkpoints" / "nightly" / "checkpoint").read_text()
    assert '"model-10"' in run_state, run_state

    # And the night after trains on from the live weights, not the diverged ones.
    result = run_cli(*night_args(work, public, "2026-11-04", "--force-retrain"))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((work / "checkpoints" / "nightly.manifest.json").read_text())
    assert manifest["start_step"] == 10 and math.isfinite(manifest["val_loss"]), manifest
