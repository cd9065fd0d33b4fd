"""The Airflow adapter of the nightly DAG: a run's params -> the night's config, and steps in a fresh interpreter.

Kept beside the DAG (and out of ``generator/``, which knows nothing of Airflow).
The DAG file imports this module at parse time, so it imports nothing but the
standard library at module level.

Why a hand-made fresh-interpreter runner rather than ``@task.external_python``:
both keep TensorFlow (and CUDA, which does not survive the task runner's fork) out
of the forked worker. ``external_python`` serialises the task function's source and
re-runs it with its arguments pickled, so the task body must be self-contained and
the target interpreter needs a matching Airflow for context and XCom; here one
step runs by name from the installed ``generator`` package, with JSON in and out
and its output streaming into the task log as it happens.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# DAG param -> the setting it overrides. An empty or null param means "the configured value".
PARAM_SETTINGS = {
    "steps": "train.steps",
    "samples": "generate.samples",
    "temperature": "generate.temperature",
    "top_k": "generate.top_k",
    "top_p": "generate.top_p",
    "seed": "generate.seed",
    "conditions": "generate.conditions",
    "backend": "generate.backend",
    "base_model": "model.name",
    "target": "publish.target",
    "dry_run": "publish.dry_run",
}


# The trigger form's own copies of rules the settings hold (the DAG cannot import `generator` at parse
# time); tests/test_dag_ops.py fails when a Param and the setting it maps to disagree.
BACKENDS = ("gpt2-simple", "fast")  # generate.backend's choices
# model.name: one folder name (generator.settings.NAME_PATTERN; not imported at parse time, a test keeps them equal)
PLAIN_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CONDITION = r"^(\s*\[[^\[\]]{0,59}[^\[\]\s][^\[\]]{0,59}\])+\s*$"  # generate.conditions' items

USER_ERROR_EXIT = 2  # the runner's exit code for a generator.errors.UserError, as the CLI's


def fail_without_retry(message: str) -> Exception:
    """The exception that ends a task at once: retrying cannot fix what the operator must set."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(f"{message} [not retried: a configuration or input error]")


def fail_fast(body):
    """Task-body decorator: a UserError fails the task without retries; anything else keeps the back-off.

    Network trouble, an S3 5xx or a killed worker raise other exceptions and are
    retried with the DAG's exponential back-off; a UserError (a bad target, a
    missing catalog, an unknown profile) names its fix and would fail the same
    way on every try.
    """
    @functools.wraps(body)
    def run(*args, **kwargs):
        from generator.errors import UserError

        try:
            return body(*args, **kwargs)
        except UserError as exc:
            raise fail_without_retry(str(exc)) from exc

    return run


def config_for_run(params: dict):
    """The effective config of a DAG run: defaults < profile < GENERATOR_* env < the run's params.

    Params go through the same loader as every other layer: same conversion, same
    validation, and their origin is named in errors ("the run's param 'steps'").
    """
    from generator.config import load_config

    overrides: dict = {}
    origins: dict = {}
    for param, key in PARAM_SETTINGS.items():
        value = params.get(param)
        if value is None or value == "" or value == []:
            continue
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = value
        origins[key] = f"the run's param {param!r}"
    return load_config(profile=params.get("profile") or None, overrides=overrides, override_origins=origins)


def run_step(name: str, params: dict, night: str, **kwargs) -> dict:
    """Run one step of :mod:`generator.pipeline` in this interpreter."""
    from generator import pipeline

    steps = {"train": lambda config: pipeline.step_train(config, night),
             "generate": lambda config: pipeline.step_generate(config, night, kwargs.get("shard", 0),
                                                               kwargs.get("shards", 1)),
             "curate": lambda config: pipeline.step_curate(config, night, kwargs.get("samples_path")),
             "rounds": lambda config: pipeline.step_rounds(config, night)}
    return steps[name](config_for_run(params))


def run_step_in_fresh_interpreter(name: str, params: dict, night: str, **kwargs) -> dict:
    """Run a TensorFlow step in a new Python process; its output goes to the task log as is."""
    # The catalog (maybe a presigned URL) is not the TensorFlow steps' business, and argv is public (ps).
    params = {key: value for key, value in params.items() if key != "catalog"}
    with tempfile.TemporaryDirectory(prefix=f"step-{name}-") as scratch:
        result_file = Path(scratch) / "result.json"
        request = json.dumps({"name": name, "params": params, "night": night, "kwargs": kwargs})
        process = subprocess.run([sys.executable, __file__, request, str(result_file)])
        if process.returncode == USER_ERROR_EXIT and result_file.is_file():
            raise fail_without_retry(json.loads(result_file.read_text())["user_error"])
        if process.returncode != 0:
            raise RuntimeError(f"step {name} failed with exit code {process.returncode} (its output is above)")
        return json.loads(result_file.read_text())


def _main(argv: list[str]) -> int:
    import logging

    from generator.artifacts import atomic_write_json
    from generator.errors import UserError

    # Stdout: the task runner files a child's stdout as INFO in the task log (its stderr as errors).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    request, result_file = json.loads(argv[0]), argv[1]
    try:
        result = run_step(request["name"], request["params"], request["night"], **request["kwargs"])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        atomic_write_json(result_file, {"user_error": str(exc)})
        return USER_ERROR_EXIT
    atomic_write_json(result_file, result)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
