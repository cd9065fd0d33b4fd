"""A night's rounds know when to stop (generator.rounds), and every second of a night is accounted for."""

from __future__ import annotations

import json

import pytest

from generator.config import load_config
from generator.rounds import PROBE_SAMPLES, NightSoFar, optimistic_rate, plan_round, samples_bound
from generator.timings import read_timings, record_seconds, timed

from conftest import SAMPLE_CATALOG, run_cli


def night(**fields) -> NightSoFar:
    return NightSoFar(**{"target": 150, "samples": 384, "kept": 0, "max_samples": 5120, "batch_size": 16, **fields})


def test_nothing_kept_after_a_few_hundred_samples_stops_the_night():
    count, stop = plan_round(night(samples=384, kept=0))
    assert count == 0 and stop.startswith("target unreachable: nothing kept of 384 samples")
    assert "generate.max_samples 5120" in stop and "train.steps" in stop


def test_nothing_kept_from_a_small_first_round_probes_up_to_a_few_hundred_first():
    assert plan_round(night(samples=16, kept=0)) == (PROBE_SAMPLES - 16, None)
    assert plan_round(night(samples=16, kept=0, max_samples=100)) == (84, None)  # within the budget


def test_a_rate_whose_projection_overshoots_the_budget_stops_and_one_within_it_goes_on():
    count, stop = plan_round(night(samples=384, kept=3))  # 0.8 % kept: ~6,000 more samples for 147
    assert count == 0 and stop.startswith("target unreachable: 3 kept of 384 samples (0.8%)")
    count, stop = plan_round(night(samples=384, kept=19))  # 4.9 % kept: ~2,400 more, within 4,736 left
    assert stop is None and count == 384  # the shortfall at 4.9 % is larger: rounds at most double


def test_a_round_asks_for_the_shortfall_at_the_nights_rate_with_a_margin():
    count, stop = plan_round(night(samples=1000, kept=100))  # 10 %: 50 more need 500, plus 20 %
    assert stop is None and count == 600


def test_the_time_budget_stops_a_night_whose_projection_runs_over_it():
    slow = night(samples=384, kept=19, seconds=384 * 2.0, max_minutes=30.0, minutes=5.0)  # 2 s a sample
    count, stop = plan_round(slow)
    assert count == 0 and stop.startswith("target unreachable in time") and "generate.max_minutes 30.0" in stop
    assert plan_round(night(samples=384, kept=19, seconds=384 * 0.1, max_minutes=30.0))[1] is None


@pytest.mark.parametrize("so_far, reason", [
    (night(kept=150), "target reached: 150 kept of 150 wanted"),
    (night(target=0), "one round (generate.target_kept is 0)"),
    (night(samples=5120, kept=10), "sample budget spent: 5120 of generate.max_samples 5120, 10 kept"),
    (night(kept=40, minutes=31.0, max_minutes=30.0), "time budget spent: 31.0 of generate.max_minutes 30.0"),
    (night(samples=16, bounded="--samples 16"), "16 samples as asked (--samples 16"),
])
def test_why_a_night_stops(so_far, reason):
    count, stop = plan_round(so_far)
    assert count == 0 and stop.startswith(reason)


def test_the_optimistic_rate_is_the_rule_of_three_when_nothing_was_kept():
    assert optimistic_rate(0, 300) == pytest.approx(0.01)
    assert optimistic_rate(25, 100) == pytest.approx(0.38)


def test_samples_typed_on_the_command_line_bound_the_night_unless_a_target_is_given_too():
    flag = {"generate.samples": "flag --samples"}
    typed = load_config(profile="tiny", environ={}, overrides={"generate": {"samples": 16}}, override_origins=flag)
    assert samples_bound(typed) == "--samples 16"  # the profile's target_kept 150 does not count
    both = load_config(profile="tiny", environ={"GENERATOR_GENERATE__TARGET_KEPT": "20"},
                       overrides={"generate": {"samples": 16}}, override_origins=flag)
    assert samples_bound(both) == ""
    assert samples_bound(load_config(profile="tiny", environ={})) == ""
    from_env = load_config(profile="tiny", environ={"GENERATOR_GENERATE__SAMPLES": "16"})
    assert samples_bound(from_env) == ""  # only the command line's --samples is the night's whole size


def test_timings_of_nested_steps_count_once_and_any_step_can_add_one(tmp_path):
    with timed(tmp_path, "rounds"):
        with timed(tmp_path, "curate"):  # inside the rounds: counted there
            pass
    record_seconds(tmp_path, "reader", 1.5)
    record_seconds(tmp_path, "generate-shard-001", 2.0)
    record_seconds(tmp_path, "ingest", 0.5)
    assert list(read_timings(tmp_path)) == ["ingest", "generate-shard-001", "rounds", "reader"]
    assert read_timings(tmp_path)["reader"] == 1.5


@pytest.mark.slow
def test_a_night_that_cannot_reach_its_target_stops_early_and_says_why(tmp_path):
    """The test model keeps nothing: after a probe of a few hundred samples the night stops, well within budget."""
    work, public = tmp_path / "work", tmp_path / "public"
    env = {"GENERATOR_GENERATE__TARGET_KEPT": "100", "GENERATOR_GENERATE__MAX_SAMPLES": "5000"}
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "8", "--night", "2026-11-25", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    night_dir = work / "nights" / "2026-11-25"
    rounds = json.loads((night_dir / "generate" / "rounds.json").read_text())
    assert [r["samples"] for r in rounds["rounds"]] == [8, PROBE_SAMPLES - 8]
    assert rounds["stop"].startswith(f"target unreachable: nothing kept of {PROBE_SAMPLES} samples")
    assert "target unreachable" in result.stdout and "target unreachable" in result.stderr  # summary and log
    # The second round reused the first round's compiled sampler; a compiled loop was saved for the next process.
    assert rounds["rounds"][1]["startup"] == {"import_seconds": 0.0, "reused": True,
                                              "first_sample_seconds": rounds["rounds"][1]["startup"][
                                                  "first_sample_seconds"]}
    assert list((work / "xla-cache").glob("tensorflow-*/*.pb"))
    report = json.loads((night_dir / "report.json").read_text())
    assert report["generate"]["stop"] == rounds["stop"] and report["generate"]["samples"] == PROBE_SAMPLES
    steps = report["seconds"]["steps"]
    assert {"ingest", "train", "promote", "generate", "curate", "rounds", "render", "publish"} <= set(steps)
    assert report["seconds"]["total"] == pytest.approx(sum(steps.values()), abs=0.05)
    assert [r["samples"] for r in report["seconds"]["rounds"]] == [8, PROBE_SAMPLES - 8]
    assert set(report["seconds"]["rounds"][1]["seconds"]) == {"generate", "curate"}
