"""docker-compose.yml, checked by structure (Docker cannot run here, so neither can `docker compose config`).

The file is parsed as YAML (anchors and merge keys resolved, as compose does) and its
`${VAR...}` references are interpolated with compose's rules, from docker/.env.example
with the secrets filled in. The DAG itself is loaded with the deployment's environment
to check that its GPU tasks land on the queue the GPU worker consumes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
SECRETS = {"AIRFLOW_FERNET_KEY": "fernet-key", "AIRFLOW_JWT_SECRET": "jwt-secret",
           "AIRFLOW_API_SECRET_KEY": "api-secret", "AIRFLOW_ADMIN_PASSWORD": "admin-password",
           "MINIO_ROOT_PASSWORD": "minio-password"}
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu"}
WORKERS = ("airflow-worker", "airflow-worker-gpu")


# --- compose's variable interpolation ---------------------------------------------------------

class MissingVariable(Exception):
    pass


_REFERENCE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|(\w+))")


def interpolate(value, env: dict):
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        present = name in env if operator in ("-", "?") else bool(env.get(name))
        if operator in (":-", "-"):
            return env[name] if present else interpolate(argument, env)
        if operator in (":?", "?") and not present:
            raise MissingVariable(f"{name}: {argument}")
        return env.get(name, "")

    return _REFERENCE.sub(replace, value)


def example_env() -> dict:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env() -> dict:
    return {**example_env(), **SECRETS}


@pytest.fixture(scope="module")
def services(raw, env) -> dict:
    return interpolate(raw, env)["services"]


def command(service: dict) -> list[str]:
    value = service.get("command", [])
    return shlex.split(value) if isinstance(value, str) else list(value)


def queues(service: dict) -> list[str]:
    args = command(service)
    return args[args.index("--queues") + 1].split(",")


def environment(service: dict) -> dict:
    value = service.get("environment", {})
    if isinstance(value, list):
        value = dict(item.partition("=")[::2] for item in value)
    return {key: str(item) for key, item in value.items()}


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source of each volume."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        result[target] = source
    return result


# --- the tests --------------------------------------------------------------------------------

def test_env_example_lists_every_variable_the_compose_file_reads(raw):
    names = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))  # $${X} is the container's own
    documented = set(example_env())
    assert names - documented == set(), "document these in docker/.env.example"
    assert set(SECRETS) <= documented


def test_it_has_the_official_topology(services):
    assert AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init"} <= set(services)
    assert command(services["airflow-apiserver"]) == ["api-server"]
    assert command(services["airflow-scheduler"]) == ["scheduler"]
    assert command(services["airflow-dag-processor"]) == ["dag-processor"]
    assert command(services["airflow-triggerer"]) == ["triggerer"]
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in WORKERS:
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "minio"):
        assert services[name]["healthcheck"]["test"], name


def test_workers_split_the_queues_and_only_the_gpu_worker_reserves_a_gpu(services):
    default, gpu = services["airflow-worker"], services["airflow-worker-gpu"]
    assert command(default)[:2] == command(gpu)[:2] == ["celery", "worker"]
    assert queues(default) == ["default"]
    assert queues(gpu) == [environment(gpu)["GALLERY_GPU_QUEUE"]] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] and (d.get("count") in (1, "all") or d.get(
        "device_ids")) for d in devices), devices
    assert "deploy" not in default, "the default worker needs no GPU"
    # One TensorFlow process per GPU; each worker's healthcheck pings its own Celery hostname.
    args = command(gpu)
    assert args[args.index("--concurrency") + 1] == "1"
    for service in (default, gpu):
        args = command(service)
        node = args[args.index("--celery-hostname") + 1].split("@")[0]
        assert f'"{node}@$' in " ".join(service["healthcheck"]["test"]), service["healthcheck"]


def test_images_come_from_the_project_dockerfile(services):
    targets = {}
    for name in AIRFLOW_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        targets[name] = build["target"]
    assert targets.pop("airflow-worker-gpu") == "gpu"
    assert set(targets.values()) == {"airflow"}
    assert services["airflow-worker-gpu"]["image"] != services["airflow-worker"]["image"]


def test_dockerfile_builds_airflow_and_a_tensorflow_gpu_stage():
    text = DOCKERFILE.read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {re.split(r"[\[=<>]", req)[0]: req for req in
            project["dependencies"] + project["optional-dependencies"]["airflow"]}
    airflow_version = pins["apache-airflow"].split("==")[1]
    tensorflow_version = pins["tensorflow"].split("==")[1]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    assert args["AIRFLOW_VERSION"] == airflow_version and args["PYTHON_VERSION"] == "3.11"
    assert args["TENSORFLOW_VERSION"] == tensorflow_version
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.M)
    assert stages == [("apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}", "airflow"), ("airflow", "gpu")]
    gpu_stage = text.split("AS gpu", 1)[1]
    assert '"tensorflow[and-cuda]==${TENSORFLOW_VERSION}"' in gpu_stage
    assert "pip install --no-cache-dir --no-deps -e ." in text
    # Everything the image copies exists and gets through the Dockerfile's ignore file.
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    for source in re.findall(r"^COPY --chown=\S+ (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
            assert f"!{path}" in ignore or f"!{path}/" in ignore, f"{path} is not let into the build context"


def test_every_component_shares_the_secrets_database_broker_and_api_server(services):
    envs = {name: environment(services[name]) for name in AIRFLOW_SERVICES}
    shared = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
              "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__DAGS_FOLDER")
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    env = envs["airflow-worker"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["AIRFLOW_FERNET_KEY"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["AIRFLOW_JWT_SECRET"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:") or "@redis:" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    api_port = services["airflow-apiserver"]["ports"][0].split(":")[-1]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://airflow-apiserver:{api_port}/execution/"


@pytest.mark.parametrize("secret", ["AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "MINIO_ROOT_PASSWORD"])
def test_compose_refuses_to_start_without_the_secrets(raw, env, secret):
    with pytest.raises(MissingVariable, match=secret):
        interpolate(raw, {**env, secret: ""})


def test_workers_publish_to_minio_by_endpoint_url(services):
    minio, init = services["minio"], services["minio-init"]
    assert "server" in command(minio) and "9000:9000" in minio["ports"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert init.get("restart") == "no"
    for name in WORKERS:
        env = environment(services[name])
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"] == SECRETS["MINIO_ROOT_PASSWORD"]
        bucket = re.fullmatch(r"s3://([^/]+)/\S+", env["GENERATOR_PUBLISH__TARGET"]).group(1)
        script = " ".join(command(init))
        assert f'mc mb --ignore-existing "local/${{GALLERY_BUCKET}}"' in script
        # Readers browse the published prefix anonymously; nothing else in the bucket is public.
        prefix = env["GENERATOR_PUBLISH__TARGET"].split("/", 3)[3]
        assert f'mc anonymous set download "local/${{GALLERY_BUCKET}}/{prefix}"' in script
        assert init["environment"]["GALLERY_BUCKET"] == bucket


def test_workers_share_the_workdir_checkpoints_and_models(raw, services):
    declared = set(raw["volumes"])
    expected = None
    for name in WORKERS:
        workdir = environment(services[name])["GENERATOR_PATHS__WORKDIR"]
        volumes = mounts(services[name])
        shared = {path: volumes[path] for path in (workdir, f"{workdir}/checkpoints", f"{workdir}/models")}
        assert shared[workdir] in declared, "the workdir is a named volume"
        expected = expected or shared
        assert shared == expected, "both workers mount the same workdir, checkpoints and models"
    for name in AIRFLOW_SERVICES:
        assert mounts(services[name]).get("/opt/airflow/logs") in declared, f"{name} shares the task logs"
    # airflow-init makes the host folders writable by the containers' user.
    assert "chown" in " ".join(command(services["airflow-init"]))


def test_visibility_timeout_outlasts_training_and_gpu_tasks_use_the_gpu_queue(services, tmp_path):
    """Load the DAG with the deployment's environment: its queues and timeouts must fit the workers."""
    worker_env = environment(services["airflow-worker-gpu"])
    probe = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=%r)
dag = bag.dags["nightly_gallery"]
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "tasks": {t.task_id: [t.queue, t.execution_timeout.total_seconds()] for t in dag.tasks}}))
""" % str(ROOT / "dags" / "nightly_gallery.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENERATOR_", "GALLERY_"))}
    env.update({k: v for k, v in worker_env.items() if k.startswith("GALLERY_")})
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")})
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    tasks = info["tasks"]
    gpu_queue, default_queue = queues(services["airflow-worker-gpu"]), queues(services["airflow-worker"])
    for task_id, (queue, _) in tasks.items():
        assert queue in (gpu_queue if task_id in ("train", "generate", "rounds") else default_queue), (task_id, queue)
    longest = max(timeout for _, timeout in tasks.values())
    assert int(worker_env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"]) > longest
