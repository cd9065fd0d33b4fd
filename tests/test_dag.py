"""The nightly DAG: integrity, and real runs with `airflow dags test` on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_CATALOG

DAG_FILE = ROOT / "dags" / "nightly_gallery.py"


def airflow_env(home: Path, workdir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "GENERATOR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GENERATOR_PATHS__WORKDIR": str(workdir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        # The task runner imports `generator` from this checkout, not from wherever it is installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    })
    return env


def test_dag_parses_fast_without_heavy_imports(tmp_path):
    probe = f"""
import sys, time, json
import airflow.sdk  # airflow itself is loaded before the clock starts: we time the DAG file
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder={str(DAG_FILE)!r})
elapsed = time.perf_counter() - started
dag = bag.dags["nightly_gallery"]
print(json.dumps({{
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "seconds": elapsed,
    "heavy": [m for m in ("tensorflow", "gpt_2_simple", "tokenizers", "datasketch", "generator") if m in sys.modules],
    "tasks": {{t.task_id: {{"queue": t.queue, "retries": t.retries, "timeout": t.execution_timeout.total_seconds()
               if t.execution_timeout else None, "backoff": t.retry_exponential_backoff, "doc": bool(t.doc_md)}}
               for t in dag.tasks}},
    "catchup": dag.catchup, "max_active_runs": dag.max_active_runs, "schedule": str(getattr(dag.timetable, "_expression", dag.timetable)),
    "params": sorted(dag.params.keys()), "doc": bool(dag.doc_md), "tags": sorted(dag.tags),
    "outlets": [str(o.uri) for t in dag.tasks if t.task_id == "publish" for o in t.outlets],
}}))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=airflow_env(tmp_path / "home", tmp_path / "work"), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["seconds"] < 1.0, info["seconds"]
    assert info["heavy"] == []
    tasks = info["tasks"]
    assert set(tasks) >= {"check_config", "ingest", "check_catalog", "train", "promote", "generate", "merge_shards", "curate",
                          "render", "publish", "report"}
    for task_id, task in tasks.items():
        assert task["retries"] >= 1 and task["timeout"] and task["backoff"] > 1 and task["doc"], task_id
        assert task["queue"] == ("gpu" if task_id in ("train", "generate", "rounds") else "default"), task_id
    assert info["catchup"] is False and info["max_active_runs"] == 1 and info["doc"] and info["tags"]
    assert set(info["params"]) >= {"catalog", "profile", "base_model", "steps", "samples", "temperature", "top_k",
                                   "top_p", "force_retrain", "target", "dry_run"}
    assert info["outlets"]


def dags_test(env: dict, night: str, conf: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["airflow", "dags", "test", "nightly_gallery", night, "-c", json.dumps(conf)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_nightly_runs_publish_skip_unchanged_and_keep_live_on_regression(tmp_path, s3_server):
    """Three real nights through Airflow: train+publish to S3, unchanged catalog, regressed retrain."""
    import boto3

    endpoint = s3_server
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="nightly-gallery")
    home, work = tmp_path / "home", tmp_path / "work"
    # One try per task: a failure should fail the test now, not after minutes of retry back-off.
    # A 30-step model may keep nothing: that night still publishes (curate.min_kept is tested elsewhere),
    # in one round (the rounds are tested in test_pipeline).
    # No reader: the suite never loads the 135M model (the curate task still runs in its fresh interpreter).
    env = airflow_env(home, work, GENERATOR_PROFILE="tiny", AWS_ENDPOINT_URL=endpoint, GALLERY_RETRIES="0",
                      GENERATOR_CURATE__MIN_KEPT="0", GENERATOR_GENERATE__TARGET_KEPT="0",
                      GENERATOR_CURATE__READER="false")
    migrate = subprocess.run(["airflow", "db", "migrate"], capture_output=True, text=True, env=env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    conf = {"catalog": str(SAMPLE_CATALOG), "target": "s3://nightly-gallery/site", "steps": 30, "samples": 24}

    def night(date: str, extra_conf=None, extra_env=None) -> dict:
        result = dags_test({**env, **(extra_env or {})}, date, {**conf, **(extra_conf or {})})
        output = result.stdout + result.stderr
        (tmp_path / f"{date}.log").write_text(output)
        assert result.returncode == 0, output[-4000:]
        report = work / "nights" / date / "report.json"
        assert report.is_file(), output[-4000:]
        return json.loads(report.read_text())

    first = night("2026-11-20")
    assert first["train"]["skipped"] is False and first["train"]["promoted"] is True
    assert first["publish"]["uploaded"] > 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="nightly-gallery", Prefix="site/")["Contents"]}
    assert "site/index.html" in keys
    head = s3.head_object(Bucket="nightly-gallery", Key="site/index.html")
    assert head["ContentType"].startswith("text/html")
    live_before = json.loads((work / "checkpoints" / "nightly.live.json").read_text())
    # The publish task's Asset event tells a downstream DAG what the night published, and where.
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        events = [json.loads(extra) for (extra,) in db.execute("SELECT extra FROM asset_event ORDER BY id")]
    assert events and events[-1]["night"] == "2026-11-20", events
    assert events[-1]["target"] == "s3://nightly-gallery/site"
    assert events[-1]["site_url"] == "s3://nightly-gallery/site/index.html"
    assert events[-1]["uploaded"] == first["publish"]["uploaded"] and events[-1]["kept"] == first["curate"]["kept"]

    # Unchanged catalog, and a sharded night: 24 samples in shards of at most 10 -> 3 mapped generate tasks.
    second = night("2026-11-21", extra_env={"GALLERY_SHARD_SAMPLES": "10"})
    assert second["train"]["skipped"] is True and "unchanged" in second["train"]["reason"]
    assert second["generate"]["samples"] == 24
    # merge_shards declared the night's generation: its figures reach the report and the model card.
    assert second["generate"]["shards"] == 3
    assert second["generate"]["terminated"] is not None and second["generate"]["seconds"] is not None
    assert second["generate"]["temperature"] is not None and second["generate"]["backend"] == "fast"
    about = (work / "site" / "about" / "index.html").read_text()
    assert "Generation" in about and "Samples generated" in about and "Finished (end token)" in about

    # A retrain whose checkpoint is much worse (a learning rate that blows the weights up) stays off the live pointer.
    third = night("2026-11-22", {"force_retrain": True}, {"GENERATOR_TRAIN__LEARNING_RATE": "3.0"})
    assert third["train"]["skipped"] is False and third["train"]["promoted"] is False
    assert "regressed" in third["train"]["reason"]
    assert json.loads((work / "checkpoints" / "nightly.live.json").read_text()) == live_before
    assert third["generate"]["samples"] == 24
