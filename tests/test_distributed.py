"""The distributed deployment, for real, without Docker.

The same topology as docker-compose.yml, as processes on this machine: Airflow's
scheduler, dag-processor and api-server, and two Celery workers (one on the
default queue, one on the GPU queue), against PostgreSQL and Redis. The test
triggers ``nightly_gallery`` with the ``test`` profile, waits for the run to
succeed, and reads the metadata DB to check that train/generate ran on the GPU
worker and every other task on the default one.

Each worker reports its own hostname through Airflow's ``[core]
hostname_callable`` (in compose every container has its own hostname; here both
share the machine's). Every process's output and the task logs are kept in
test-artifacts/distributed/ for diagnosis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "distributed"
SAMPLE_CATALOG = ROOT / "sample_data" / "catalog.csv"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DATABASE = "airflow_test"
REDIS_DB = 5
GPU_QUEUE = "gpu"
GPU_TASKS = {"train", "generate", "rounds"}  # rounds generates more samples: TensorFlow too
DEFAULT_WORKER, GPU_WORKER = "default-worker", "gpu-worker"
SAMPLES, SHARD_SAMPLES = 16, 8
BUDGET = 600  # seconds for everything after the services are up: migrate, start, parse, run


# --- PostgreSQL and Redis ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def services():
    """PostgreSQL and Redis on this machine, started (or installed) by scripts/start_services.sh."""
    try:
        result = subprocess.run([str(ROOT / "scripts" / "start_services.sh")], capture_output=True, text=True,
                                timeout=1500)
        problem = result.stderr.strip() if result.returncode else ""
    except subprocess.TimeoutExpired:
        problem = "scripts/start_services.sh timed out"
    if problem:
        reason = f"DISTRIBUTED TEST NOT RUN: PostgreSQL/Redis cannot be had on this machine: {problem}"
        print(f"\n{'!' * 100}\n{reason}\n{'!' * 100}", file=sys.stderr)
        pytest.skip(reason)


def reset_database() -> None:
    import psycopg2

    admin = psycopg2.connect(dbname="postgres", connect_timeout=10, **PG)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    admin.close()


def flush_redis() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=10).flushdb()


def query(sql: str, *args) -> list[tuple]:
    """The test reads the metadata DB (tasks may not; the test is not a task)."""
    import psycopg2

    connection = psycopg2.connect(dbname=DATABASE, connect_timeout=10, **PG)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()
    finally:
        connection.close()


# --- the cluster ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def airflow_env(home: Path, workdir: Path, api_port: int) -> dict:
    from cryptography.fernet import Fernet

    sql = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{DATABASE}"
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENERATOR_", "GALLERY_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Workers import `generator` from this checkout, not from wherever it is installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql.replace("+psycopg2", ""),
        # A training longer than this would be delivered to a second worker.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "25200",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Every component must share the Fernet key and the JWT secret.
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # Only the run the test triggers: no scheduled run of the latest interval on unpause.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "GALLERY_GPU_QUEUE": GPU_QUEUE,
        "GALLERY_SHARD_SAMPLES": str(SHARD_SAMPLES),  # 16 samples: two mapped generate tasks
        # The night's artifacts, checkpoints and models: one directory every worker shares.
        "GENERATOR_PATHS__WORKDIR": str(workdir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
    }


def worker_env(env: dict, name: str, identity_dir: Path) -> dict:
    """A worker that reports ``name`` as the hostname of the tasks it runs, with its own log-server port."""
    return {**env, "GALLERY_WORKER_NAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "gallery_worker_identity.hostname",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(identity_dir), env.get("PYTHONPATH")]))}


class Cluster:
    """Airflow components as process groups, each logging to test-artifacts/distributed/<name>.log."""

    def __init__(self, logs: Path, budget: float):
        self.logs = logs
        self.deadline = time.monotonic() + budget
        self.processes: dict[str, subprocess.Popen] = {}

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def start(self, name: str, args: list[str], env: dict) -> None:
        log = open(self.logs / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen([AIRFLOW, *args], env=env, cwd=self.logs, stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
        log.close()

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"Airflow components exited early: {dead} (logs in {self.logs})"

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left (Celery's forked children included)."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def airflow(env: dict, *args: str, timeout: int = 240) -> str:
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_until(what: str, check, timeout: float, cluster: Cluster, every: float = 2.0):
    timeout = min(timeout, cluster.remaining())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (logs in {ARTIFACTS})")


def api_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def dag_parsed() -> bool:
    errors = query("SELECT filename, stacktrace FROM import_error")
    assert not errors, f"the DAG folder has import errors: {errors}"
    return bool(query("SELECT 1 FROM dag WHERE dag_id = 'nightly_gallery' AND is_stale = false"))


def task_instances(run_id: str) -> list[tuple]:
    return query("SELECT task_id, map_index, state, queue, hostname FROM task_instance "
                 "WHERE dag_id = 'nightly_gallery' AND run_id = %s ORDER BY task_id, map_index", run_id)


def run_state(run_id: str) -> str | None:
    rows = query("SELECT state FROM dag_run WHERE dag_id = 'nightly_gallery' AND run_id = %s", run_id)
    state = rows[0][0] if rows else None
    return state if state in ("success", "failed") else None


# --- the test ---------------------------------------------------------------------------------

def test_nightly_dag_runs_on_celery_workers_with_a_gpu_queue(services, tmp_path):
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reset_database()
    flush_redis()

    home, workdir, site, identity = (tmp_path / name for name in ("airflow_home", "gallery", "site", "identity"))
    for folder in (home, workdir, identity):
        folder.mkdir()
    (identity / "gallery_worker_identity.py").write_text(textwrap.dedent('''\
        import os

        def hostname():
            return os.environ["GALLERY_WORKER_NAME"]
        '''))
    api_port = free_port()
    env = airflow_env(home, workdir, api_port)
    cluster = Cluster(ARTIFACTS, BUDGET)
    try:
        (ARTIFACTS / "db-migrate.log").write_text(airflow(env, "db", "migrate", timeout=240))
        cluster.start("api-server", ["api-server", "--port", str(api_port), "--workers", "1"], env)
        cluster.start("scheduler", ["scheduler"], env)
        cluster.start("dag-processor", ["dag-processor"], env)
        cluster.start("worker-default", ["celery", "worker", "--queues", "default", "--concurrency", "2",
                                         "--celery-hostname", f"{DEFAULT_WORKER}@%h"],
                      worker_env(env, DEFAULT_WORKER, identity))
        cluster.start("worker-gpu", ["celery", "worker", "--queues", GPU_QUEUE, "--concurrency", "1",
                                     "--celery-hostname", f"{GPU_WORKER}@%h"],
                      worker_env(env, GPU_WORKER, identity))

        wait_until("the api-server", lambda: api_healthy(api_port), 120, cluster)
        wait_until("the DAG to be parsed", dag_parsed, 120, cluster)
        airflow(env, "dags", "unpause", "nightly_gallery")
        run_id = "distributed_test"
        conf = {"catalog": str(SAMPLE_CATALOG), "profile": "test", "samples": SAMPLES, "target": site.as_uri()}
        airflow(env, "dags", "trigger", "nightly_gallery", "--run-id", run_id, "--conf", json.dumps(conf))

        try:
            state = wait_until("the DAG run to finish", lambda: run_state(run_id), BUDGET, cluster, every=3)
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; task instances: {task_instances(run_id)}") from None
        tasks = task_instances(run_id)
        (ARTIFACTS / "task_instances.json").write_text(json.dumps(tasks, indent=1))
        failed = [t for t in tasks if t[2] not in ("success", "skipped")]
        assert state == "success", f"run {state}; unsuccessful tasks: {failed} (logs in {ARTIFACTS})"

        ran = [t for t in tasks if t[2] == "success"]
        assert {t[0] for t in ran} >= {"ingest", "check_catalog", "train", "promote", "plan_shards", "generate",
                                       "merge_shards", "curate", "render", "publish", "report"}
        assert sorted(t[1] for t in ran if t[0] == "generate") == [0, 1], "generation was sharded in two"
        for task_id, map_index, _, queue, hostname in ran:
            expected = (GPU_QUEUE, GPU_WORKER) if task_id in GPU_TASKS else ("default", DEFAULT_WORKER)
            assert (queue, hostname) == expected, f"{task_id}[{map_index}] ran on queue {queue!r}, host {hostname!r}"
        assert (site / "index.html").is_file(), "the night published the gallery to the run's file:// target"
    finally:
        cluster.stop()
        if (home / "logs").is_dir():
            shutil.copytree(home / "logs", ARTIFACTS / "task-logs", dirs_exist_ok=True)
