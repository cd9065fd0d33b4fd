"""The operator's side of the nightly DAG: the trigger form, notifications, the run's note, the Asset.

Read by the DAG file at parse time, so it imports only the standard library and
``airflow.sdk`` at module level, and never ``generator`` (the scheduler parses the
DAG every few seconds; TensorFlow and the stages load inside the tasks). The
profile names come straight from ``generator/defaults.toml`` (and the file named by
``GENERATOR_CONFIG``) with ``tomllib``; the package is located with
``importlib.util.find_spec``, which finds a top-level package without importing it.

Deployment knobs (environment of the scheduler, dag-processor and workers):

- ``GALLERY_CATALOG``: the catalog param's default (default: the bundled sample).
- ``GALLERY_TARGET``: the target param's default; else ``GENERATOR_PUBLISH__TARGET`` applies.
- ``GALLERY_NOTIFY_EMAIL``: comma-separated recipients of failure mail (SmtpNotifier of
  apache-airflow-providers-smtp, over the Airflow connection ``GALLERY_NOTIFY_SMTP_CONN``,
  default ``smtp_default``); ``GALLERY_NOTIFY_SUCCESS=true`` also mails each night's summary line.
- ``GALLERY_API_CONN``: an Airflow HTTP connection to the api-server (default ``gallery_api``:
  ``http://user:password@host:8080``) with which the report task writes the night's summary as
  the run's note; absent, the note is skipped (the summary is still in the report task's log).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CATALOG = PROJECT_ROOT / "sample_data" / "catalog.csv"
UNCONFIGURED_SITE = "netflix_gallery_site"


# --- parse-time defaults ----------------------------------------------------------------------

def defaults_toml() -> Path:
    """``generator/defaults.toml`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("generator")
    if spec is not None and spec.origin:
        return Path(spec.origin).with_name("defaults.toml")
    return PROJECT_ROOT / "generator" / "defaults.toml"


def configured_profiles(environ=os.environ) -> tuple[list[str], str]:
    """(profile names, the default profile) as the config loader will see them."""
    def read(path: Path) -> dict:
        try:
            with path.open("rb") as handle:
                return tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            # The task's check_config names the problem; the form still opens.
            log.warning("cannot read profiles from %s: %s", path, exc)
            return {}

    shipped = read(defaults_toml())
    user = read(Path(environ["GENERATOR_CONFIG"])) if environ.get("GENERATOR_CONFIG") else {}
    names = sorted({*shipped.get("profiles", {}), *user.get("profiles", {})})
    return names, default_profile(environ, user, shipped)


def default_profile(environ, user: dict, shipped: dict) -> str:
    """The profile a run without one gets: GENERATOR_PROFILE, the user's file, the shipped file, "smollm2".

    ``generator.config.default_profile``'s rule, restated because the DAG must not import
    ``generator`` at parse time; tests/test_dag_ops.py checks that the two agree.
    """
    return environ.get("GENERATOR_PROFILE") or user.get("profile") or shipped.get("profile") or "smollm2"


def default_catalog(environ=os.environ) -> str:
    """The deployment's catalog: ``GALLERY_CATALOG`` or the bundled sample, as a clean absolute path."""
    value = environ.get("GALLERY_CATALOG") or str(BUNDLED_CATALOG)
    if "://" in value:
        return value
    return os.path.abspath(os.path.expanduser(value))


def catalog_param_default(environ=os.environ) -> str | None:
    """What the trigger form shows: the deployment's catalog, unless it carries a secret.

    A presigned URL (its query) or a ``user:pass@`` URL must not become a param default: params are
    stored with every run and shown in the UI. Then the form opens empty and the task reads
    ``GALLERY_CATALOG`` from the workers' environment when it runs.
    """
    value = default_catalog(environ)
    parts = urllib.parse.urlsplit(value) if "://" in value else None
    if parts is not None and (parts.username or parts.password or parts.query):
        return None
    return value


def default_target(environ=os.environ) -> str | None:
    """The target param's default; None lets the workers' ``GENERATOR_PUBLISH__TARGET`` apply."""
    return environ.get("GALLERY_TARGET") or None


def site_asset_uri(environ=os.environ) -> str:
    """The Asset's URI: the deployment's publish target, fixed when the DAG is parsed.

    An Asset's URI is static (the scheduler matches consumers by it), so it names the
    deployment's configured target (``GALLERY_SITE_URI``, else ``GALLERY_TARGET``, else
    ``GENERATOR_PUBLISH__TARGET``); a run whose target param points elsewhere still
    updates this Asset, and its event's ``extra["target"]`` says where that night went.
    """
    for name in ("GALLERY_SITE_URI", "GALLERY_TARGET", "GENERATOR_PUBLISH__TARGET"):
        if environ.get(name):
            return environ[name].rstrip("/")
    return UNCONFIGURED_SITE


# --- notifications ----------------------------------------------------------------------------

def _recipients(environ=os.environ) -> list[str]:
    return [address.strip() for address in environ.get("GALLERY_NOTIFY_EMAIL", "").split(",") if address.strip()]


def failure_notifiers(environ=os.environ) -> list:
    """SmtpNotifier for a task's final failure (after its retries), when ``GALLERY_NOTIFY_EMAIL`` is set."""
    recipients = _recipients(environ)
    if not recipients:
        return []
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [SmtpNotifier(
        to=recipients, from_email=environ.get("GALLERY_NOTIFY_FROM") or None,
        smtp_conn_id=environ.get("GALLERY_NOTIFY_SMTP_CONN", "smtp_default"),
        subject="nightly_gallery FAILED: {{ ti.task_id }} of {{ run_id }}",
        html_content=("<p>Task <b>{{ ti.task_id }}</b> of run <b>{{ run_id }}</b> failed "
                      "(try {{ ti.try_number }}): {{ exception }}</p>"
                      "<p>Log: {{ ti.log_url }}</p>"),
    )]


def success_notifiers(environ=os.environ) -> list:
    """The night's one-line summary by mail, when ``GALLERY_NOTIFY_SUCCESS`` is true."""
    if environ.get("GALLERY_NOTIFY_SUCCESS", "").lower() not in ("1", "true", "yes", "on") or not _recipients(environ):
        return []
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    summary = "{{ ti.xcom_pull(task_ids='report')['summary'] }}"
    return [SmtpNotifier(
        to=_recipients(environ), from_email=environ.get("GALLERY_NOTIFY_FROM") or None,
        smtp_conn_id=environ.get("GALLERY_NOTIFY_SMTP_CONN", "smtp_default"),
        subject="nightly_gallery {{ run_id }}: " + summary,
        html_content="<p>" + summary + "</p><p>Report: {{ ti.xcom_pull(task_ids='report')['report_path'] }}</p>",
    )]


# --- the run's note ---------------------------------------------------------------------------

def set_run_note(dag_id: str, run_id: str, note: str, environ=os.environ) -> bool:
    """Write ``note`` on the DAG run through the public REST API; False (and a log line) when it cannot.

    Airflow 3's task SDK has no call for the run's note, and tasks may not touch the
    metadata DB, so this uses the api-server like any client: a JWT from ``/auth/token``
    with the connection's login, then ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    conn_id = environ.get("GALLERY_API_CONN", "gallery_api")
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        log.info("no Airflow connection %r: the run's note is not set (the summary is in this log)", conn_id)
        return False
    scheme = "https" if conn.conn_type == "https" else "http"
    base = f"{scheme}://{conn.host}:{conn.port or 8080}"
    try:
        token = _post_json(f"{base}/auth/token", {"username": conn.login, "password": conn.password})["access_token"]
        request = urllib.request.Request(
            f"{base}/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            "?update_mask=note",
            data=json.dumps({"note": note[:1000]}).encode(), method="PATCH",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30):
            pass
    except (OSError, KeyError, ValueError) as exc:
        # The night's work is done; a note the api-server refused is not worth failing it.
        log.warning("could not set the run's note through %s: %s", base, exc)
        return False
    return True


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# --- the Asset event --------------------------------------------------------------------------

def publish_event_extra(night: str, published: dict, kept: int | None) -> dict:
    """What a consumer of the site Asset learns from one publish (all JSON)."""
    return {"night": night, "target": published.get("target"), "site_url": published.get("site_url"),
            "kept": kept, "uploaded": published.get("uploaded"), "deleted": published.get("deleted"),
            "dry_run": bool(published.get("dry_run"))}
