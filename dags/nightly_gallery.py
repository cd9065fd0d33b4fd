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
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

log = logging.getLogger(__name__)

SCHEDULE = os.environ.get("GALLERY_SCHEDULE", "0 2 * * *")
GPU_QUEUE = os.environ.get("GALLERY_GPU_QUEUE", "gpu")
# The deployment's catalog may be a presigned URL or carry user:pass@: it is read from the workers'
# environment at run time and never becomes a param default (params are stored and shown in the UI).
DEFAULT_CATALOG = os.environ.get("GALLERY_CATALOG", os.path.join(os.path.dirname(__file__), "..", "sample_data", "catalog.csv"))
DEFAULT_TARGET = os.environ.get("GALLERY_TARGET", "")
SITE_ASSET = Asset(name="netflix_gallery_site", uri=os.environ.get("GALLERY_SITE_URI", "file:///srv/netflix-gallery/site"))
SHARD_SAMPLES = int(os.environ.get("GALLERY_SHARD_SAMPLES", "500"))
RETRIES = int(os.environ.get("GALLERY_RETRIES", "2"))


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
    "on_failure_callback": _on_failure,
}


def _params() -> dict:
    return dict(get_current_context()["params"])


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
    default_args=DEFAULT_ARGS,
    tags=["gallery", "gpt-2", "nightly"],
    doc_md=__doc__ + """

**Boxes**: `ingest` → `check_catalog` (skip training when the catalog hash equals the live checkpoint's) →
`train` (GPU queue) → `promote` (validation-loss gate, atomic live pointer) → `plan_shards` →
`generate` ×N (GPU queue, dynamic mapping) → `merge_shards` → `curate` → `rounds` (GPU queue: more rounds until
`generate.target_kept` are kept or a budget is spent; the quality panel) → `render` → `publish` (Asset outlet) → `report`.

**Params** (Trigger DAG w/ config): catalog, profile, base_model, steps, samples, temperature, top_k, top_p,
force_retrain, target, dry_run. The run report lands in `<workdir>/nights/<night>/report.json` and the `report` log.
""",
    params={
        "catalog": Param("", type="string", description="Catalog CSV: path, http(s):// URL or s3:// URI; empty = the "
                         "deployment's (GALLERY_CATALOG in the workers' environment, else the bundled sample)"),
        "profile": Param("", type="string", description="Config profile (tiny, small, 124M, 355M); empty = configured default"),
        "base_model": Param("", type="string", description="Base model name override; empty = the profile's"),
        "steps": Param(None, type=["null", "integer"], minimum=0, description="Training steps tonight; empty = profile's"),
        "samples": Param(None, type=["null", "integer"], minimum=1, description="Descriptions to generate"),
        "temperature": Param(None, type=["null", "number"], exclusiveMinimum=0, description="Sampling temperature"),
        "top_k": Param(None, type=["null", "integer"], minimum=0, description="Top-k (0 = off)"),
        "top_p": Param(None, type=["null", "number"], minimum=0, maximum=1, description="Nucleus top-p (0 = off)"),
        "force_retrain": Param(False, type="boolean", description="Train even if the catalog is unchanged"),
        "target": Param(DEFAULT_TARGET, type="string", description="Publish target: file:///dir or s3://bucket/prefix"),
        "dry_run": Param(False, type="boolean", description="Plan the publish without touching the target"),
    },
)
def nightly_gallery():
    @task(doc_md="Read the catalog (path/URL/S3), clean it, split train/validation, write training text and its hash.")
    def ingest() -> dict:
        from generator.pipeline import step_ingest

        return step_ingest(_config(), _night(), _params()["catalog"] or DEFAULT_CATALOG)

    @task.branch(doc_md="Skip training when the live checkpoint was trained on this very catalog (unless forced).")
    def check_catalog(ingested: dict) -> str:
        from generator.pipeline import step_should_train

        decision = step_should_train(_config(), ingested["night"], bool(_params()["force_retrain"]))
        log.info("training %s: %s", "needed" if decision["train"] else "skipped", decision["reason"])
        return "train" if decision["train"] else "skip_training"

    @task(queue=GPU_QUEUE, execution_timeout=timedelta(hours=6),
          doc_md="gpt-2-simple finetune on the GPU worker, in a fresh interpreter; resumes a killed run.")
    def train(ingested: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("train", _params(), ingested["night"])

    @task(doc_md="Catalog unchanged: no training tonight; generation uses the live checkpoint.")
    def skip_training() -> dict:
        return {"skipped": True}

    @task(trigger_rule="none_failed_min_one_success",
          doc_md="Promotion gate: the new checkpoint goes live only if its validation loss does not regress.")
    def promote(ingested: dict) -> dict:
        from generator.pipeline import step_promote

        trained = get_current_context()["ti"].xcom_pull(task_ids="train") is not None
        result = step_promote(_config(), ingested["night"], trained=trained)
        log.info("promotion: %s", result["reason"])
        return result

    @task(doc_md="Split the night's samples into shards for the GPU workers.")
    def plan_shards(promoted: dict) -> list[int]:
        from generator.pipeline import plan_shards as plan

        return plan(_config(), SHARD_SAMPLES)

    @task(queue=GPU_QUEUE, max_active_tis_per_dagrun=4,
          doc_md="Generate one shard with the early-stopping sampler, in a fresh interpreter.")
    def generate(shard: int, shards: list[int], promoted: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("generate", _params(), promoted["night"], shard=shard, shards=len(shards))

    @task(doc_md="Concatenate the shards' samples in shard order and write the generate manifest.")
    def merge_shards(results: list[dict]) -> dict:
        from generator.pipeline import merge_shards as merge

        results = sorted(results, key=lambda r: r["samples_path"])
        return merge(_config(), results[0]["night"], [r["samples_path"] for r in results])

    @task(doc_md="Keep only samples that pass every curation rule (see generator/curate.py RULES).")
    def curate(merged: dict) -> dict:
        from generator.pipeline import step_curate

        return step_curate(_config(), merged["night"], merged["samples_path"])

    @task(queue=GPU_QUEUE, execution_timeout=timedelta(hours=2),
          doc_md="Further generate+curate rounds until generate.target_kept descriptions are kept or a budget "
          "is spent (in a fresh interpreter), then the night's quality panel.")
    def rounds(curated: dict) -> dict:
        from nightly_steps import run_step_in_fresh_interpreter

        return run_step_in_fresh_interpreter("rounds", _params(), curated["night"])

    @task(doc_md="Render the static gallery (Jinja2) with the night's model card and the archive.")
    def render(curated: dict) -> dict:
        from generator.pipeline import step_render

        return step_render(_config(), curated["night"], curated["kept_path"])

    @task(outlets=[SITE_ASSET], doc_md="Upload what changed, index.html last, then delete what is gone.")
    def publish(rendered: dict) -> dict:
        from generator.pipeline import step_publish

        return step_publish(_config(), rendered["night"], rendered["site_dir"])

    @task(doc_md="Write the run summary (report.json) and log it in one line.")
    def report(published: dict) -> dict:
        from generator.pipeline import step_report

        result = step_report(_config(), published["night"])
        log.info(result["summary"])
        return result

    ingested = ingest()
    branch = check_catalog(ingested)
    trained, skipped = train(ingested), skip_training()
    branch >> [trained, skipped]
    promoted = promote(ingested)
    [trained, skipped] >> promoted
    shards = plan_shards(promoted)
    generated = generate.partial(shards=shards, promoted=promoted).expand(shard=shards)
    report(publish(render(rounds(curate(merge_shards(generated))))))


nightly_gallery()
