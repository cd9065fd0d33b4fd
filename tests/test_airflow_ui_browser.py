"""The embedded Airflow in a real browser: log in, trigger a night from the form as it opens, watch it succeed.

Airflow runs as the main job runs it (``scripts/airflow_services.sh``: api-server,
scheduler, dag-processor, triggerer on SQLite with the LocalExecutor and the simple
auth manager), with the ``test`` profile and a file:// target. Headless Debian
Chromium logs in as ``admin``, opens ``nightly_gallery``'s trigger form, checks
that it opens with the deployment's defaults, submits it untouched, waits for the
run to succeed, and reads a task's log and the run's note in the UI. Screenshots go
to test-artifacts/airflow-ui/, with the components' and tasks' logs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_CATALOG
from s3server import free_port
from test_site_browser import make_driver, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "airflow-ui"
SERVICES = ROOT / "scripts" / "airflow_services.sh"
RUN_BUDGET = 600  # seconds for the night itself (test profile) on a busy 2-core machine


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    require_browser()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    base = tmp_path_factory.mktemp("embedded-airflow")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENERATOR_", "GALLERY_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_HOME": str(base / "airflow_home"), "GALLERY_UI_PORT": str(port),
        "GENERATOR_PATHS__WORKDIR": str(base / "gallery"), "GENERATOR_PROFILE": "test",
        "GALLERY_TARGET": (base / "public").as_uri(), "TF_CPP_MIN_LOG_LEVEL": "3",
        # Only the run the form triggers: unpausing must not start the schedule's latest interval too.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    })
    try:
        started = subprocess.run([str(SERVICES), "start"], env=env, capture_output=True, text=True, timeout=400)
        assert started.returncode == 0, started.stderr[-3000:]
        password = next(line.split("=", 1)[1] for line in
                        (base / "airflow_home" / "gallery-secrets.env").read_text().splitlines()
                        if line.startswith("admin="))
        yield {"url": f"http://127.0.0.1:{port}", "db": base / "airflow_home" / "airflow.db", "password": password,
               "public": base / "public", "env": env}
    finally:
        subprocess.run([str(SERVICES), "stop"], env=env, capture_output=True, timeout=120)
        for folder, name in ((base / "airflow_home" / "services", "services"), (base / "airflow_home" / "logs", "task-logs")):
            if folder.is_dir():
                shutil.copytree(folder, ARTIFACTS / name, dirs_exist_ok=True)


def query(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql, args).fetchall()


def wait_for(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (logs in {ARTIFACTS})")


def test_trigger_form_submitted_as_it_opens_runs_a_night_with_logs(airflow, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait_for("the DAG to be parsed", lambda: query(airflow["db"], "SELECT 1 FROM dag WHERE dag_id = 'nightly_gallery' "
                                                   "AND is_stale = 0"), 180)
    driver = make_driver(tmp_path_factory)
    try:
        def shot(name: str) -> None:
            driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

        def find(css: str, timeout: float = 60):
            return WebDriverWait(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

        driver.get(airflow["url"] + "/")
        find("input[name=username]").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(airflow["password"])
        shot("01-login")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)

        driver.get(airflow["url"] + "/dags/nightly_gallery")
        find("[data-testid=trigger-dag-button]").click()
        catalog = find("input[name=element_catalog]")
        dialog = catalog.find_element(By.XPATH, "./ancestor::*[@role='dialog']")
        # The form opens with the deployment's defaults: the bundled catalog, GALLERY_TARGET, the configured profile.
        assert catalog.get_attribute("value") == str(SAMPLE_CATALOG)
        assert find("input[name=element_target]").get_attribute("value") == airflow["env"]["GALLERY_TARGET"]
        assert "configured default (test)" in dialog.text
        shot("02-trigger-form")
        submit = [b for b in dialog.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Trigger"]
        assert len(submit) == 1, [b.text for b in dialog.find_elements(By.CSS_SELECTOR, "button")]
        driver.execute_script("arguments[0].scrollIntoView(true);", submit[0])
        submit[0].click()

        run_id = wait_for("the form to create a run", lambda: query(
            airflow["db"], "SELECT run_id FROM dag_run WHERE dag_id = 'nightly_gallery'"), 60)[0][0]
        state = wait_for("the night to finish", lambda: (lambda rows: rows and rows[0][0] in ("success", "failed")
                                                         and rows[0][0])(
            query(airflow["db"], "SELECT state FROM dag_run WHERE run_id = ?", run_id)), RUN_BUDGET, every=5)
        tasks = query(airflow["db"], "SELECT task_id, map_index, state, try_number FROM task_instance WHERE run_id = ?",
                      run_id)
        driver.get(f"{airflow['url']}/dags/nightly_gallery/runs/{run_id}")
        time.sleep(3)
        shot("03-run")
        assert state == "success", tasks
        assert (airflow["public"] / "index.html").is_file(), "the night published to GALLERY_TARGET"

        # The night's summary is the run's note, shown on the run's page.
        note = query(airflow["db"], "SELECT content FROM dag_run_note JOIN dag_run ON dag_run.id = dag_run_note.dag_run_id "
                     "WHERE run_id = ?", run_id)
        assert note and note[0][0].startswith("night "), note
        WebDriverWait(driver, 60).until(lambda d: note[0][0][:40] in d.find_element(By.TAG_NAME, "body").text)

        # A task's log, as the operator reads it in the UI.
        driver.get(f"{airflow['url']}/dags/nightly_gallery/runs/{run_id}/tasks/check_config")
        WebDriverWait(driver, 90).until(lambda d: "configuration OK" in d.find_element(By.TAG_NAME, "body").text)
        shot("04-task-log")
    except Exception:
        shot("failure")
        raise
    finally:
        driver.quit()
