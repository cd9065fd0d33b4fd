"""The fault matrix, whole nights: concurrent runs, SIGKILL, a full disk, dropped connections, secrets, min_kept.

Shares the published ``world`` of tests/test_fault_matrix.py; every case asserts the exit code, the
one-line error contract and that the published night is byte-identical afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_CATALOG, assert_clean_error, run_cli
from faults import http_server, resetting_proxy, small_disk, tree_hash
from s3server import make_bucket, s3_test_client
from test_fault_matrix import NIGHT, check, world  # noqa: F401  (the shared published night)


def run_args(world, night: str, *extra: str, catalog: str | None = None) -> list[str]:
    return ["run", "--profile", "test", "--catalog", catalog or str(SAMPLE_CATALOG), "--workdir", str(world["work"]),
            "--target", f"file://{world['public']}", "--samples", "4", "--night", night, *extra]


# --- the lock ----------------------------------------------------------------------------------------

def test_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path):
    from generator.errors import UserError
    from generator.lock import exclusive, lock_file, shared

    target = tmp_path / "site"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from generator.lock import exclusive\n"
        "with exclusive(sys.argv[2], 'site'):\n    print('held', flush=True); time.sleep(60)"), str(ROOT), str(target)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for take in (exclusive, shared):
            with pytest.raises(UserError) as caught:
                with take(target, "site"):
                    pass
            message = str(caught.value)
            assert f"site {target} is in use by pid {holder.pid} on host" in message
            assert "a lock whose process is dead is taken over" in message
        holder.send_signal(signal.SIGKILL)  # no clean release: the lock file stays, the flock goes
        holder.wait(timeout=10)
        assert lock_file(target).is_file()
        with exclusive(target, "site"):
            assert str(os.getpid()) in lock_file(target).read_text()
        assert not lock_file(target).exists(), "a clean release removes the lock file"
        with shared(target, "shards"), shared(target, "shards"):
            pass  # shared holders (the DAG's generate shards) do not exclude each other
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_two_runs_on_one_workdir_one_fails_fast_the_other_completes(world):
    night = "2026-11-27"
    first = subprocess.Popen([sys.executable, "-m", "generator", *run_args(world, night)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = world["work"] / ".lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    second = run_cli(*run_args(world, night))
    assert time.monotonic() - started < 15, "the second run must fail fast, not wait"
    assert_clean_error(second, f"workdir {world['work']} is in use by pid {first.pid}", "python -m generator run",
                       "fix: wait for it to finish")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert (world["work"] / "nights" / night / "report.json").is_file()
    assert not lock.exists()
    restore_world(world)


def restore_world(world) -> None:
    """Put the published night back (the winner of the race rendered and published its own night)."""
    import shutil

    for night_dir in (world["work"] / "archive").iterdir():
        if night_dir.name != NIGHT:
            shutil.rmtree(night_dir)
    for args in (("render", "--samples", str(world["kept"]), "--out", str(world["work"] / "site"), "--night", NIGHT,
                  "--archive", str(world["work"] / "archive")),
                 ("publish", "--site", str(world["work"] / "site"), "--target", f"file://{world['public']}")):
        assert run_cli(*args).returncode == 0
    world["before"] = tree_hash(*world["protected"])


# --- min_kept: an empty night never replaces a good gallery ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("min_kept", ["1", "50"])
def test_a_night_keeping_too_few_leaves_the_last_good_site(world, min_kept):
    result = run_cli(*run_args(world, "2026-11-28"), env={"GENERATOR_CURATE__MIN_KEPT": min_kept})
    check(world, result, 2, "fewer than curate.min_kept", "the last good site stays")
    assert (world["work"] / "nights" / "2026-11-28" / "curate" / "kept.manifest.json").is_file()


# --- SIGKILL mid-stage -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("after", [2.0, 6.0])
def test_sigkill_mid_night_loses_nothing_and_the_lock_is_taken_over(world, after):
    night = "2026-11-29"
    process = subprocess.Popen([sys.executable, "-m", "generator", *run_args(world, night, "--force-retrain")],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert tree_hash(*world["protected"][:2]) == {k: v for k, v in world["before"].items()
                                                  if k.startswith((str(world["protected"][0]), str(world["public"])))}
    # The dead process's lock file is no lock: the next command takes it over.
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(world["work"]),
                     "--target", f"file://{world['public']}", "--night", "not-a-night")
    assert_clean_error(result, "bad night")
    from generator.lock import exclusive, workdir_lock_file

    with exclusive(world["work"], "workdir", workdir_lock_file(world["work"])):
        pass
    # On an idle machine the run may finish training and promote before the kill: a good night's
    # checkpoint, not damage, as long as the live pointer names a complete release.
    from generator.checkpoints import read_live

    live = read_live(world["work"] / "checkpoints", "nightly").path
    assert (live / "hparams.json").is_file() and list(live.glob("model-*.index")), live
    world["before"] = tree_hash(*world["protected"])


# --- a full disk -------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("size", ["64k", "2m"])
def test_a_full_disk_mid_night_is_one_line_and_loses_nothing(world, tmp_path, size):
    with small_disk(tmp_path / "disk", size) as disk:
        work = disk / "work"
        result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                         "--target", f"file://{world['public']}", "--samples", "4", "--night", "2026-11-30")
    check(world, result, 2)


# --- secrets never leave -----------------------------------------------------------------------------

SIGNED = "?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=5ecr3751gnature&X-Amz-Security-Token=t0k3n"


def leaked(texts: list[str], paths: list[Path], secrets: list[str]) -> list[str]:
    found = [f"{s} in output" for s in secrets for t in texts if s in t]
    for root in paths:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            if path.is_file() and path.suffix not in (".csv",):
                data = path.read_bytes()
                found += [f"{s} in {path}" for s in secrets if s.encode() in data]
            found += [f"{s} in the name {path}" for s in secrets if s in str(path)]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["presigned", "userinfo", "local-path"])
def test_catalog_secrets_never_reach_the_night_the_site_or_the_terminal(tmp_path, kind):
    private = tmp_path / "private-dir-x7q"
    private.mkdir()
    (private / "catalog.csv").write_bytes(SAMPLE_CATALOG.read_bytes())
    work, public = tmp_path / "work", tmp_path / "public"
    args = ["--workdir", str(work), "--target", f"file://{public}", "--samples", "4", "--steps", "4",
            "--night", "2026-12-01"]
    if kind == "local-path":
        result, secrets = run_cli("run", "--profile", "test", "--catalog", str(private / "catalog.csv"), *args), \
            ["private-dir-x7q"]
    else:
        user = ("reader", "hunter2pass") if kind == "userinfo" else (None, None)
        with http_server(private, *user) as (url, seen):
            host = url.split("://", 1)[1]
            source = (f"http://reader:hunter2pass@{host}/catalog.csv" if kind == "userinfo"
                      else f"{url}/catalog.csv{SIGNED}")
            result = run_cli("run", "--profile", "test", "--catalog", source, *args)
        assert seen, "the catalog was fetched from the local server"
        secrets = ["hunter2pass", "reader:"] if kind == "userinfo" else ["5ecr3751gnature", "t0k3n", "AKIAEXAMPLE"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "catalog.csv" in (work / "nights" / "2026-12-01" / "report.json").read_text()
    assert leaked([result.stdout, result.stderr], [work, public], secrets) == []


# --- dropped connections (a resetting proxy in front of the S3 server) ---------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("after_bytes", [0, 200])
def test_connection_resets_from_s3_are_one_line(world, s3_server, tmp_path, after_bytes):
    bucket = make_bucket(s3_server)
    s3_test_client(s3_server).put_object(Bucket=bucket, Key="c.csv", Body=SAMPLE_CATALOG.read_bytes())
    with resetting_proxy(s3_server, after_bytes) as proxy:
        env = {"AWS_ENDPOINT_URL": proxy, "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}
        ingest = run_cli("ingest", "--catalog", f"s3://{bucket}/c.csv", "--out", str(tmp_path / "i"), env=env,
                         timeout=120)
        publish = run_cli("publish", "--site", str(world["work"] / "site"), "--target", f"s3://{bucket}/site",
                          env=env, timeout=120)
    check(world, ingest, 2, "could not read catalog")
    check(world, publish, 2)
    assert not (tmp_path / "i").exists()
