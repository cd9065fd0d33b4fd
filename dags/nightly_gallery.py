"""Nightly gallery: fine-tune GPT-2 on the refreshed catalog, generate, curate, render, publish.

Every task is a thin call into ``generator.pipeline``; artifacts stay on disk
(or S3) under the night's folder and only paths and small figures travel
through XCom. Nothing heavy is imported here at parse time: TensorFlow and
gpt-2-simple load inside the tasks, and the GPU steps (train, generate) run in a
fresh interpreter because CUDA does not survive the task runner's fork.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

# The DAG's helper modules sit beside it; the DAG folder is on sys.path only in some runners.
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nightly_ops import (catalog_param_default, configured_profiles, default_catalog, default_target,
                         failure_notifiers, publish_event_extra, set_run_note, site_asset_uri, success_notifiers)
from nightly_steps import BACKENDS, CONDITION, fail_fast

log = logging.getLogger(__name__)

SCHEDULE = os.environ.get("GALLERY_SCHEDULE", "0 2 * * *")
GPU_QUEUE = os.environ.get("GALLERY_GPU_QUEUE", "gpu")
SHARD_SAMPLES = int(os.environ.get("GALLERY_SHARD_SAMPLES", "500"))
RETRIES = int(os.environ.get("GALLERY_RETRIES", "2"))
# The night's deadline: past it the run fails (and its running tasks are stopped), so a stuck
# night does not block the next one (max_active_runs=1). Above train's 6-hour timeout.
DEADLINE = timedelta(hours=float(os.environ.get("GALLERY_DEADLINE_HOURS", "10")))
PROFILES, DEFAULT_PROFILE = configured_profiles()
SITE_ASSET = Asset(name="netflix_gallery_site", uri=site_asset_uri())


def _on_failure(context) -> None:
    """One clear line for the operator: what failed, where, and where to look."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.error("nightly_gallery FAILED: task %s (try %s) of run %s: %s: %s",
              getattr(ti, "task_id", "?"), getattr(ti, "try_number", "?"), context.get("run_id"),
              type(error).__name__ if error else "error", str(error).splitlines()[0] if error else "see the task log")


DEFAULT_ARGS = {
    "owner": "gallery",
    "retries": RETRIES,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(minutes=30),
    # Called once a task has failed for good (after its retries, or at once for a user error).
    "on_failure_callback": [_on_failure, *failure_notifiers()],
}

EMPTY_MEANS_CONFIGURED = "Empty: the configured value (profile, GENERATOR_* variables)."
PARAMS = {
    "catalog": Param(catalog_param_default(), type=["null", "string"], minLength=1, title="Catalog",
                     description="Catalog CSV to ingest: a path on the workers, an http(s):// URL or an s3:// URI. "
                     "Empty: the deployment's (GALLERY_CATALOG in the workers' environment, else the bundled sample)."),
    "profile": Param(None, type=["null", "string"], enum=[None, *PROFILES], title="Profile",
                     values_display={"null": f"configured default ({DEFAULT_PROFILE})"},
                     description="Named profile of generator/defaults.toml (model size, steps, samples). "
                     "Empty: GENERATOR_PROFILE or the file's default."),
    "base_model": Param(None, type=["null", "string"], pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", title="Base model",
                        description="Base model name (model.name), e.g. 124M: one folder name under the models "
                        "folder. Empty: the profile's."),
    "steps": Param(None, type=["null", "integer"], minimum=0, title="Training steps",
                   description="Fine-tuning steps tonight (train.steps); 0 skips training. " + EMPTY_MEANS_CONFIGURED),
    "samples": Param(None, type=["null", "integer"], minimum=1, title="Samples",
                     description="Descriptions to generate (generate.samples). " + EMPTY_MEANS_CONFIGURED),
    "temperature": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=100, title="Temperature",
                         description="Sampling temperature (generate.temperature). " + EMPTY_MEANS_CONFIGURED),
    "top_k": Param(None, type=["null", "integer"], minimum=0, title="Top-k",
                   description="Sample among the k likeliest tokens, 0 = off (generate.top_k). " + EMPTY_MEANS_CONFIGURED),
    "top_p": Param(None, type=["null", "number"], minimum=0, maximum=1, title="Top-p",
                   description="Nucleus sampling mass, 0 = off (generate.top_p). " + EMPTY_MEANS_CONFIGURED),
    "seed": Param(None, type=["null", "integer"], minimum=0, title="Seed",
                  description="Generation seed; each night adds its own offset (generate.seed). "
                  + EMPTY_MEANS_CONFIGURED),
    "backend": Param(None, type=["null", "string"], enum=[None, *BACKENDS], title="Sampler",
                     description="fast: the early-stopping sampler; gpt2-simple: the reference (generate.backend). "
                     + EMPTY_MEANS_CONFIGURED),
    "conditions": Param([], type=["null", "array"], items={"type": "string", "pattern": CONDITION}, title="Conditions",
                        description='Control prefixes such as "[TV Show] [Comedies]" or "[Movie]" to split the '
                        "samples across (generate.conditions). " + EMPTY_MEANS_CONFIGURED),
    "force_retrain": Param(False, type="boolean", title="Force retraining",
                           description="Train even if the catalog is unchanged since the live checkpoint."),
    "target": Param(default_target(), type=["null", "string"], title="Publish target",
                    description="Where the site goes: file:///abs/dir or s3://bucket/prefix. "
                    "Empty: the workers' GENERATOR_PUBLISH__TARGET."),
    "dry_run": Param(False, type="boolean", title="Dry run",
                     description="Plan the publish (what would be uploaded and deleted) without touching the target."),
}


def _params() -> dict:
    return dict(get_current_context()["params"])


def _catalog() -> str:
    """This run's catalog: its param, else the deployment's, read now (never stored as a param default)."""
    return _params().get("catalog") or default_catalog()


def _config():
    """The night's configuration: this run's params over the deployment's settings."""
    from nightly_steps import config_for_run

    return config_for_run(_params())


def _night() -> str:
    """The night's id: the run's logical date, or (manual runs without one) when it was due."""
    context = get_current_context()
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date().isoformat()


@dag(
    dag_id="nightly_gallery",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=DEADLINE,
    default_args=DEFAULT_ARGS,
    tags=["gallery", "gpt-2", "nightly"],
    doc_md=__doc__ + """

**Boxes**: `check_config` (target, catalog, credentials: a configuration error fails the night at once, without
retries) → `ingest` → `check_catalog` (skip training when the catalog hash equals the live checkpoint's) →
`train` (GPU queue) → `promote` (validation-loss gate, atomic live pointer) → `plan_shards` →
`generate` ×N (GPU queue, dynamic mapping) → `merge_shards` → `curate` → `rounds` (GPU queue: more rounds until
`generate.target_kept` are kept or a budget is spent; the quality panel) → `render` → `publish` (Asset outlet) → `report`.

**Trigger form**: every field may stay as it opens; an empty field means the configured value. The run report lands
in `<workdir>/nights/<night>/report.json`, its one-line summary in the `report` log and as the run's note.
""",
    params=PARAMS,
)
def nightly_gallery():
    @task(doc_md="Fail fast: the target is set and parses, the catalog is reachable, S3 credentials are present.")
    @fail_fast
    def check_config() -> dict:
        from generator.preflight import check_night_config

        checked = check_night_config(_config(), _catalog())
        log.info("configuration OK: %s", checked)
        return checked

    @task(doc_md="Read the catalog (path/URL/S3), clean it, split train/validation, write training text and its hash.")
    @fail_fast
    def ingest(checked: dict) -> dict:
        from generator.pipeline import step_ingest

        return step_ingest(_config(), _night(), _catalog())

    @task.branch(doc_md="Skip training when the live checkpoint was trained on this very catalog (unless forced).")
    @fail_fast
    def check_catalog(ingested: dict) -> str:
        from generator.pipeline import step_should_train

        decision = step_should_train(_config(), ingested["night"], bool(_params()["force_retrain"]))
        log.info("training %s: %s", "needed" if decision["train"] else "skipped", decision["reason"])
        return "train" if decision["train"] else "skip_training"

    @task(queue=GPU_QUEUE, execution_timeout=timedelta(hours=6),
          doc_md="gpt-2-simple finetune on the GPU worker, in a fresh interpreter; resumes a killed run.")
    @fail_fast
    def train(ingested: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("train", _params(), ingested["night"])

    @task(doc_md="Catalog unchanged: no training tonight; generation uses the live checkpoint.")
    def skip_training() -> dict:
        return {"skipped": True}

    @task(trigger_rule="none_failed_min_one_success",
          doc_md="Promotion gate: the new checkpoint goes live only if its validation loss does not regress.")
    @fail_fast
    def promote(ingested: dict) -> dict:
        from generator.pipeline import step_promote

        trained = get_current_context()["ti"].xcom_pull(task_ids="train") is not None
        result = step_promote(_config(), ingested["night"], trained=trained)
        log.info("promotion: %s", result["reason"])
        return result

    @task(doc_md="Split the night's samples into shards for the GPU workers.")
    @fail_fast
    def plan_shards(promoted: dict) -> list[int]:
        from generator.pipeline import plan_shards as plan

        return plan(_config(), SHARD_SAMPLES)

    @task(queue=GPU_QUEUE, max_active_tis_per_dagrun=4,
          doc_md="Generate one shard with the early-stopping sampler, in a fresh interpreter.")
    @fail_fast
    def generate(shard: int, shards: list[int], promoted: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("generate", _params(), promoted["night"], shard=shard, shards=len(shards))

    @task(doc_md="Concatenate the shards' samples in shard order and write the generate manifest.")
    @fail_fast
    def merge_shards(results: list[dict]) -> dict:
        from generator.pipeline import merge_shards as merge

        results = sorted(results, key=lambda r: r["samples_path"])
        return merge(_config(), results[0]["night"], [r["samples_path"] for r in results])

    @task(doc_md="Keep only samples that pass every curation rule (generator/curate/settings.py, RULES); the "
          "reader (a TensorFlow model) reads the survivors, so the step runs in a fresh interpreter.")
    def curate(merged: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("curate", _params(), merged["night"], samples_path=merged["samples_path"])

    @task(queue=GPU_QUEUE, execution_timeout=timedelta(hours=2),
          doc_md="Further generate+curate rounds until generate.target_kept descriptions are kept or a budget "
          "is spent (in a fresh interpreter), then the night's quality panel.")
    def rounds(curated: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("rounds", _params(), curated["night"])

    @task(doc_md="Render the static gallery (Jinja2) with the night's model card and the archive.")
    @fail_fast
    def render(curated: dict) -> dict:
        from generator.pipeline import step_render

        return step_render(_config(), curated["night"], curated["kept_path"])

    @task(outlets=[SITE_ASSET], doc_md="Upload what changed, index.html last, then delete what is gone; "
          "the Asset event's extra carries the night, the counts and the site URL.")
    @fail_fast
    def publish(rendered: dict) -> dict:
        from generator.pipeline import step_publish

        published = step_publish(_config(), rendered["night"], rendered["site_dir"])
        context = get_current_context()
        curated = context["ti"].xcom_pull(task_ids="curate") or {}
        context["outlet_events"][SITE_ASSET].extra = publish_event_extra(published["night"], published,
                                                                         curated.get("kept"))
        return published

    @task(on_success_callback=success_notifiers(),
          doc_md="Write the run summary (report.json), log it in one line and make it the run's note.")
    @fail_fast
    def report(published: dict) -> dict:
        from generator.pipeline import step_report

        result = step_report(_config(), published["night"])
        log.info(result["summary"])
        context = get_current_context()
        set_run_note(context["dag_run"].dag_id, context["dag_run"].run_id, result["summary"])
        return result

    ingested = ingest(check_config())
    branch = check_catalog(ingested)
    trained, skipped = train(ingested), skip_training()
    branch >> [trained, skipped]
    promoted = promote(ingested)
    [trained, skipped] >> promoted
    shards = plan_shards(promoted)
    generated = generate.partial(shards=shards, promoted=promoted).expand(shard=shards)
    report(publish(render(rounds(curate(merge_shards(generated))))))


nightly_gallery()
