"""Shared fixtures: the sample catalog, a `test`-profile config in a temp workdir, a trained run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3server import make_bucket, s3_server, s3_test_client  # noqa: F401  (s3_server: a session fixture, moto on loopback)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CATALOG = ROOT / "sample_data" / "catalog.csv"
# Beside the repo; GALLERY_SHARED_DATA names the folder from a git worktree elsewhere (/work/wt/<name>).
SHARED_DATA = Path(os.environ.get("GALLERY_SHARED_DATA") or ROOT.parent / "shared" / "data")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def catalog_entries(csv_path) -> list:
    """A catalog CSV's entries as the ingest stage would parse them with its default settings."""
    from generator.ingest import IngestSettings, load_catalog

    return load_catalog(str(csv_path), IngestSettings())


def shared_csv(year: int) -> Path:
    path = SHARED_DATA / f"netflix_titles_{year}.csv"
    if not path.is_file():
        pytest.skip(f"real catalog snapshot {path} is absent (../shared/data is provided beside the repo in CI)")
    return path


@pytest.fixture
def sample_catalog() -> Path:
    assert SAMPLE_CATALOG.is_file(), "sample_data/catalog.csv ships with the project"
    return SAMPLE_CATALOG


@pytest.fixture
def make_config(tmp_path):
    """load_config(profile='test') rooted in a temp workdir (extra section overrides allowed)."""
    from generator.config import load_config

    def make(workdir: Path | None = None, **overrides):
        sections = {"paths": {"workdir": str(workdir or tmp_path / "work")}, **overrides}
        return load_config(profile="test", overrides=sections, environ={})

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One `test`-profile checkpoint, trained once per session on the sample catalog.

    Returns (config, ingest_dir, checkpoint_root); tests must not modify it.
    """
    from generator.config import load_config
    from generator.ingest import ingest
    from generator.train import train

    work = tmp_path_factory.mktemp("trained")
    config = load_config(profile="test", overrides={"paths": {"workdir": str(work)}}, environ={})
    ingest_dir = work / "ingest"
    ingest(str(SAMPLE_CATALOG), ingest_dir, config.ingest)
    train(ingest_dir, config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    return config, ingest_dir, config.paths.checkpoint_root


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m generator ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "generator", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: non-zero exit, one `error:` line naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in error_lines[0].lower(), error_lines[0]


@pytest.fixture
def bucket(s3_server):
    """A fresh bucket on the moto server."""
    return make_bucket(s3_server)


@pytest.fixture
def s3(s3_server):
    """A boto3 client of the moto server, for checking what landed."""
    return s3_test_client(s3_server)
