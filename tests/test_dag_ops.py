"""The operator's side of the nightly DAG: the trigger form's params, fail-fast user errors, notifications.

The params are validated as the trigger form does (``ParamsDict.validate``), with
their defaults and with each configured profile. A user error is shown to end a
real ``airflow dags test`` night in its first task, on the first try, while the
task has retries left, and to mail the operator through the SMTP provider's
notifier to a real SMTP server on loopback (aiosmtpd).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT
from s3server import free_port
from test_dag import DAG_FILE, airflow_env, dags_test

PROFILES = sorted(tomllib.loads((ROOT / "generator" / "defaults.toml").read_text())["profiles"])


def probe_dag(env: dict, code: str) -> dict:
    """Load the DAG in a fresh interpreter with ``env``, run ``code`` (which sets ``out``), return ``out``."""
    script = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAG_FILE)!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags["nightly_gallery"]
out = {{}}
{code}
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_trigger_form_params_validate_as_they_open_and_with_each_profile(tmp_path):
    env = airflow_env(tmp_path / "home", tmp_path / "work")
    info = probe_dag(env, """
import copy
from airflow.sdk.exceptions import ParamValidationError
params = dag.params
out["defaults"] = params.validate()
out["schema"] = {name: {"title": params.get_param(name).schema.get("title"),
                        "description": params.get_param(name).description,
                        "type": params.get_param(name).schema.get("type"),
                        "enum": params.get_param(name).schema.get("enum")} for name in params}
out["profiles"] = {}
for profile in out["schema"]["profile"]["enum"]:
    chosen = copy.deepcopy(params)
    chosen["profile"] = profile
    out["profiles"][str(profile)] = chosen.validate()["profile"]
def rejected(name, value):
    bad = copy.deepcopy(params)
    try:
        bad[name] = value
        bad.validate()
    except ParamValidationError:
        return True
    return False
out["rejects"] = {"unknown profile": rejected("profile", "no-such-profile"), "negative steps": rejected("steps", -1),
                  "empty catalog": rejected("catalog", ""), "top_p above 1": rejected("top_p", 1.5)}
""")
    defaults, schema = info["defaults"], info["schema"]
    # As the form opens: every "configured default" field is null, and that validates.
    for name in ("profile", "base_model", "target", "steps", "samples", "temperature", "top_k", "top_p"):
        assert defaults[name] is None, name
        assert "null" in schema[name]["type"], name
    assert defaults["force_retrain"] is False and defaults["dry_run"] is False
    catalog = defaults["catalog"]
    assert catalog == os.path.normpath(catalog) and Path(catalog).is_absolute() and Path(catalog).is_file(), catalog
    assert schema["profile"]["enum"] == [None, *PROFILES]
    assert info["profiles"] == {"None": None, **{name: name for name in PROFILES}}
    for name, param in schema.items():
        assert param["title"] and param["description"], name
    assert all(info["rejects"].values()), info["rejects"]


def test_gallery_target_is_the_target_default_and_the_asset_uri(tmp_path):
    target = (tmp_path / "public").as_uri()
    env = airflow_env(tmp_path / "home", tmp_path / "work", GALLERY_TARGET=target)
    info = probe_dag(env, """
out["target"] = dag.params.validate()["target"]
out["asset"] = [o.uri for o in dag.get_task("publish").outlets]
""")
    assert info == {"target": target, "asset": [target]}


# --- fail fast ----------------------------------------------------------------------------------

def test_fail_fast_turns_user_errors_into_no_retry_failures_and_lets_others_retry(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "dags"))
    try:
        import nightly_steps
    finally:
        sys.path.remove(str(ROOT / "dags"))
    from airflow.sdk.exceptions import AirflowFailException

    from generator.errors import UserError

    @nightly_steps.fail_fast
    def bad_input():
        raise UserError("no publish target set", "set the DAG's target param")

    @nightly_steps.fail_fast
    def flaky_network():
        raise ConnectionResetError("peer went away")

    with pytest.raises(AirflowFailException, match="no publish target set.*target param"):
        bad_input()
    with pytest.raises(ConnectionResetError):
        flaky_network()

    # The fresh-interpreter runner maps the step's exit code 2 (a UserError) the same way:
    # generating before any checkpoint exists is the operator's to fix.
    monkeypatch.setenv("GENERATOR_PATHS__WORKDIR", str(tmp_path / "work"))
    with pytest.raises(AirflowFailException, match="no live checkpoint"):
        nightly_steps.run_step_in_fresh_interpreter("generate", {"profile": "test"}, "2026-11-20")


@pytest.fixture
def smtp_sink():
    """A real SMTP server on loopback that keeps every message it receives."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is in the test extra")
    from email import message_from_bytes, policy

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append({"to": envelope.rcpt_tos,
                             "message": message_from_bytes(envelope.original_content, policy=policy.default)})
            return "250 OK"

    port = free_port()
    controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield {"port": port, "received": received}
    finally:
        controller.stop()


@pytest.mark.slow
def test_a_user_error_fails_the_night_in_its_first_task_without_retry_and_mails_the_operator(tmp_path, smtp_sink):
    home, work = tmp_path / "home", tmp_path / "work"
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp_sink["port"],
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "gallery@localhost", "retry_limit": 0}}
    # Two retries with minutes of back-off: a retried task would keep this run going for minutes.
    env = airflow_env(home, work, GENERATOR_PROFILE="test", GALLERY_RETRIES="2",
                      GALLERY_NOTIFY_EMAIL="ops@example.com", AIRFLOW_CONN_SMTP_DEFAULT=json.dumps(smtp))
    migrate = subprocess.run(["airflow", "db", "migrate"], capture_output=True, text=True, env=env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    started = time.monotonic()
    result = dags_test(env, "2026-11-20", {"target": "ftp://example.com/site"}, timeout=300)
    output = result.stdout + result.stderr
    (tmp_path / "dags-test.log").write_text(output)
    assert time.monotonic() - started < 120, "the night waited for retries"
    with sqlite3.connect(home / "airflow.db") as db:
        states = dict(((task, (state, tries)) for task, state, tries in
                       db.execute("SELECT task_id, state, try_number FROM task_instance WHERE map_index = -1")))
    assert states["check_config"] == ("failed", 1), states
    assert states["ingest"][0] == "upstream_failed", states
    assert "not retried" in output and "unsupported publish target" in output, output[-4000:]

    deadline = time.monotonic() + 30
    while not smtp_sink["received"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(smtp_sink["received"]) == 1, output[-4000:]
    mail = smtp_sink["received"][0]
    assert mail["to"] == ["ops@example.com"]
    assert mail["message"]["Subject"].startswith("nightly_gallery FAILED: check_config")
    body = mail["message"].get_body(("html", "plain")).get_content()
    assert "unsupported publish target" in body and "fix:" in body


# --- the trigger form against the settings ------------------------------------------------------

def dags_module(name: str):
    sys.path.insert(0, str(ROOT / "dags"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "dags"))


def probe_values(schema: dict, default) -> list:
    """Values on both sides of every bound the Param declares, and ordinary ones, of the setting's type."""
    bounds = [schema[key] for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if key in schema]
    if isinstance(default, bool):
        return [True, False]
    if isinstance(default, int):
        return sorted({-1, 0, 1, 2, 1000, *(b + d for b in bounds for d in (-1, 0, 1))})
    if isinstance(default, float):
        return sorted({-1.0, 0.0, 1e-6, 0.5, 1.0, 2.0, 1000.0, *(b + d for b in bounds for d in (-1e-6, 0.0, 1e-6))})
    if isinstance(default, list):
        return [["[Movie]"], ["[TV Show] [Comedies]", "[Dramas]"], ["Movie"], ["[Movie] and more"], ["[ ]"]]
    return sorted({*(v for v in schema.get("enum") or [] if v is not None), "fast", "gpt2-simple", "124M", "tiny",
                   "a.b-c_9", "no such", "./../../pub", "..", ".hidden", "a/b"})


def test_every_param_agrees_with_the_setting_it_maps_to(tmp_path):
    """Bounds, enum and default of each mapped Param, probed against the config loader's own checks."""
    from generator.config import load_config
    from generator.errors import UserError
    from generator.settings import describe

    steps = dags_module("nightly_steps")
    info = probe_dag(airflow_env(tmp_path / "home", tmp_path / "work"), """
out = {name: {"schema": {k: v for k, v in dag.params.get_param(name).schema.items() if k != "description"},
              "default": dag.params.get_param(name).value} for name in dag.params}
""")
    missing = sorted(set(steps.PARAM_SETTINGS) - set(info))
    assert not missing, f"mapped settings without a Param: {missing}"
    cases = {}
    for param, key in steps.PARAM_SETTINGS.items():
        section, _, name = key.partition(".")
        setting_default = describe(type(getattr(load_config(profile="test"), section)))[name]["default"]
        param_default = info[param]["default"]
        assert param_default in (None, [], setting_default), (param, param_default, setting_default)
        if key == "publish.target":  # checked by parse_target when the night starts (require_target), not the loader
            continue
        cases[param] = probe_values(info[param]["schema"], setting_default)
    accepted = probe_dag(airflow_env(tmp_path / "home", tmp_path / "work"), f"""
import copy
from airflow.sdk.exceptions import ParamValidationError
def accepts(name, value):
    params = copy.deepcopy(dag.params)
    try:
        params[name] = value
        params.validate()
    except ParamValidationError:
        return False
    return True
out = {{name: [accepts(name, value) for value in values] for name, values in {cases!r}.items()}}
""")
    disagreements = []
    for param, values in cases.items():
        section, _, name = steps.PARAM_SETTINGS[param].partition(".")
        for value, form in zip(values, accepted[param]):
            try:
                load_config(profile="test", overrides={section: {name: value}})
                loader = True
            except UserError:
                loader = False
            if form != loader:
                disagreements.append(f"{param}={value!r}: form {'accepts' if form else 'refuses'}, "
                                     f"{steps.PARAM_SETTINGS[param]} {'accepts' if loader else 'refuses'}")
    assert not disagreements, "\n".join(disagreements)


def test_the_dag_and_the_loader_pick_the_same_default_profile():
    from generator.config import default_profile

    ops = dags_module("nightly_ops")
    for environ in ({}, {"GENERATOR_PROFILE": "test"}, {"GENERATOR_PROFILE": ""}):
        for user in ({}, {"profile": "124M"}):
            for shipped in ({}, {"profile": "tiny"}, {"profile": "main"}):
                assert ops.default_profile(environ, user, shipped) == default_profile(environ, user, shipped)
