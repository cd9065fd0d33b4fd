"""The command line as its ecosystem expects: help for every flag, results alone on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import io

import pytest

from conftest import SAMPLE_CATALOG, run_cli


def walk(parser: argparse.ArgumentParser, path: tuple = ()):
    """Every (subcommand path, option action) of the parser tree."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))
        elif action.option_strings:
            yield path, action


def test_every_flag_of_every_subcommand_has_help_and_setting_flags_show_their_default():
    from generator.cli import build_parser

    options = list(walk(build_parser()))
    commands = {path for path, _ in options}
    assert {("run",), ("train",), ("generate",), ("curate",), ("render",), ("publish",), ("ingest",)} <= commands
    for path, action in options:
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 10, (path, action.option_strings)
        if action.dest.startswith("setting:"):
            assert "default:" in action.help, (path, action.option_strings, action.help)
    # gpt-2-simple's own names stay accepted.
    generate = {flag for path, action in options if path == ("generate",) for flag in action.option_strings}
    train = {flag for path, action in options if path == ("train",) for flag in action.option_strings}
    assert {"--nsamples", "--run-name", "--checkpoint-dir"} <= generate
    assert {"--run-name", "--checkpoint-dir"} <= train


def test_train_progress_reads_gpt2_simple_loss_lines():
    from tqdm import tqdm

    from generator.train import _loss_reporter

    terminal = io.StringIO()
    bar = tqdm(total=20, file=terminal, disable=False)
    report = _loss_reporter(bar, 20, start_step=100)
    for line in ("Loading dataset...", "[102 | 1.50] loss=6.17 avg=6.17", "[110 | 4.59] loss=5.42 avg=5.77"):
        report(line)
    assert bar.n == 10
    assert bar.postfix == "loss=5.770"
    bar.close()


@pytest.mark.slow
def test_run_prints_only_its_result_on_stdout_and_library_chatter_stays_in_the_log(tmp_path):
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(tmp_path / "w"),
                     "--target", (tmp_path / "public").as_uri(), "--samples", "8", "--night", "2026-11-20")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["night", "site:", "published:"], result.stdout
    assert lines[0].startswith("night 2026-11-20: catalog ")
    for chatter in ("loss=", "Loading checkpoint", "For larger models", "Training...", "dataset has"):
        assert chatter not in result.stdout, chatter
    # TensorFlow's start-up notes and gpt-2-simple's prints are DEBUG records: not shown without -v.
    for chatter in ("oneDNN", "cuInit", "absl::InitializeLog", "Instructions for updating", "loss="):
        assert chatter not in result.stderr, chatter
    assert "generator.train: train step" in result.stderr  # the loss, as our own log line (no terminal here)
