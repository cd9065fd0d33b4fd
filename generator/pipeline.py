"""The night, composed: ingest -> train -> promote -> generate -> curate -> render -> publish -> report.

Each ``step_*`` function is one box of the nightly DAG and one part of
``python -m generator run``: it takes the night's configuration, the night's id
and the path the previous step returned, reads what that step declared, and
returns a small dict of paths and figures (never large data) that always
carries ``night``. The CLI, the Airflow tasks (via XCom) and the tests call
the same functions. Every step holds the workdir's lock (:mod:`generator.lock`)
while it writes (``run_night``: the whole night; generate shards: shared, side by
side) and adds its seconds to the night's timings. Where each artifact lives is
:mod:`generator.night`; the report is :mod:`generator.report`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from . import lock
from .artifacts import atomic_write_json, read_jsonl, read_manifest, write_jsonl, write_manifest
from .config import Config
from .errors import UserError
from .night import check_night, night_paths, night_seed, today
from .redact import public_label
from .report import build_report, summary_line
from .tf_runtime import use_workdir_compile_cache
from .timings import timed

log = logging.getLogger(__name__)


STEP_NAMES = {"promote_night": "promote"}  # the timings name a step as the report does


def _holds_workdir(step):
    """Run ``step(config, night, ...)`` holding the workdir's lock (exclusive), its night checked first.

    Its wall seconds go to the night's timings (:mod:`generator.timings`), read by the report.
    """
    import functools

    @functools.wraps(step)
    def locked(config: Config, night: str, *args, **kwargs):
        check_night(night)
        use_workdir_compile_cache(config)
        with lock.workdir(config), timed(night_paths(config, night).timings, STEP_NAMES.get(step.__name__, step.__name__.removeprefix("step_"))):
            return step(config, night, *args, **kwargs)

    return locked


# --- ingest and the decision to train ---------------------------------------------------------

@_holds_workdir
def step_ingest(config: Config, night: str, catalog: str) -> dict:
    from .ingest import ingest

    paths = night_paths(config, night)
    manifest = ingest(catalog, paths.ingest, config.ingest)
    return {"night": night, "ingest_dir": str(paths.ingest), "catalog_hash": manifest["catalog_hash"],
            "rows": manifest["rows"], "kept": manifest["kept"]}


@_holds_workdir
def step_should_train(config: Config, night: str, force_retrain: bool = False) -> dict:
    """Skip training when the live checkpoint was trained on this very catalog."""
    from .checkpoints import read_live

    ingest_manifest = read_manifest(night_paths(config, night).ingest, "ingest")
    live = read_live(config.paths.checkpoint_root, config.train.run_name)
    if force_retrain:
        decision = {"train": True, "reason": "retrain forced by the run's params"}
    elif live is None:
        decision = {"train": True, "reason": "no live checkpoint yet"}
    elif config.train.steps == 0:
        decision = {"train": False, "reason": "train.steps is 0"}
    elif live.record.get("catalog_hash") == ingest_manifest["catalog_hash"]:
        decision = {"train": False,
                    "reason": f"catalog unchanged since step {live.step} ({live.record['catalog_hash'][:12]})"}
    else:
        decision = {"train": True, "reason": "catalog changed"}
    atomic_write_json(night_paths(config, night).check, decision)
    return {"night": night, **decision}


@_holds_workdir
def step_train(config: Config, night: str) -> dict:
    from .train import train

    paths = night_paths(config, night)
    manifest = train(paths.ingest, config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    return {"night": night, **{key: manifest[key] for key in ("run_dir", "step", "steps", "train_loss", "val_loss",
                                                              "resumed")}}


def step_promote(config: Config, night: str, trained: bool = True) -> dict:
    """The promotion gate; writes the night's decision to ``promote.json``."""
    decision, release = promote_night(config, night, trained)
    return {"night": night, "promoted": decision["promoted"], "reason": decision["reason"],
            "live_release": str(release.path)}


DIVERGED_FIX = "lower train.learning_rate (GENERATOR_TRAIN__LEARNING_RATE, e.g. 0.0001) and run again"


@_holds_workdir
def promote_night(config: Config, night: str, trained: bool = True):
    """The promotion gate; returns (the night's decision, the live release generation reads)."""
    from .checkpoints import gate, promote, read_live, require_live, reset_run
    from .models.held_out import evaluate_loss

    paths = night_paths(config, night)
    root, run_name = config.paths.checkpoint_root, config.train.run_name
    if not trained:
        live = require_live(root, run_name, "run once with training (train.steps > 0)")
        check = json.loads(paths.check.read_text()) if paths.check.is_file() else {}
        reason = f"training skipped: {check.get('reason', 'not requested')}"
        decision = {"promoted": False, "trained": False, "reason": reason, "live": live.as_record()}
        atomic_write_json(paths.decision, decision)
        return decision, live
    live = read_live(root, run_name)
    train_manifest = read_manifest(Path(root) / run_name, "train")
    ingest_manifest = read_manifest(paths.ingest, "ingest")
    live_loss = None
    if live is not None:
        # Compare both checkpoints on tonight's held-out text, not on last night's numbers.
        live_loss = evaluate_loss(live.path, paths.ingest / "val.txt", config.train.val_max_tokens,
                                  config.train.threads)
    ok, reason = gate(train_manifest["val_loss"], live_loss, config.train.promotion_margin,
                      train_loss=train_manifest["train_loss"])
    if ok:
        live = promote(train_manifest["run_dir"], root, run_name, {
            "catalog_hash": ingest_manifest["catalog_hash"], "val_loss": train_manifest["val_loss"],
            "train_loss": train_manifest["train_loss"], "night": night})
    else:
        reset_run(root, run_name)  # the next night trains on from the live weights (or the base model)
    diverged = reason.startswith("training diverged")
    decision = {"promoted": ok, "trained": True, "reason": reason, "live": live and live.as_record(),
                "candidate_val_loss": train_manifest["val_loss"], "live_val_loss": live_loss,
                **({"diverged": True, "fix": DIVERGED_FIX} if diverged else {})}
    atomic_write_json(paths.decision, decision)
    if live is None:
        raise UserError(f"{reason}; there is no live checkpoint to generate from" if diverged else
                        "there is no live checkpoint to generate from",
                        DIVERGED_FIX if diverged else "run the train and promote steps first")
    return decision, live


# --- generation, sharded ----------------------------------------------------------------------

def plan_shards(config: Config, shard_samples: int) -> list[int]:
    """Shard indexes for the night's samples, at most ``shard_samples`` each."""
    return list(range(max(1, -(-config.generate.samples // max(1, shard_samples)))))


def shard_settings(settings, index: int, count: int):
    """Settings for shard ``index`` of ``count``: its share of samples and its own seed."""
    share, extra = divmod(settings.samples, count)
    return dataclasses.replace(settings, samples=share + (1 if index < extra else 0), seed=settings.seed + 1000 * index)


def night_generate_settings(config: Config, night: str):
    """Tonight's generation settings: the configured ones with the night's own seed (``night.night_seed``)."""
    return dataclasses.replace(config.generate, seed=night_seed(config.generate.seed, night))


def step_generate(config: Config, night: str, shard: int = 0, shards: int = 1, release=None) -> dict:
    """Generate the night's samples (one shard of them) from ``release`` (default: the live one)."""
    paths = night_paths(config, night)
    # Shards of one night write their own files side by side: they share the workdir's lock.
    use_workdir_compile_cache(config)
    step = f"generate-shard-{shard:03d}" if shards > 1 else "generate"
    with lock.workdir(config, lock.SHARED if shards > 1 else lock.EXCLUSIVE), timed(paths.timings, step):
        return _generate(config, night, paths, shard, shards, release)


def _generate(config: Config, night: str, paths, shard: int, shards: int, release) -> dict:
    from .checkpoints import require_live
    from .generate import generate

    release = release or require_live(config.paths.checkpoint_root, config.train.run_name)
    settings = shard_settings(night_generate_settings(config, night), shard, shards)
    out = paths.shard(shard) if shards > 1 else paths.samples
    if settings.samples == 0:
        write_jsonl(out, [])
        write_manifest(out, "generate", samples=0, terminated=0, unterminated=0, settings=dataclasses.asdict(settings))
        return {"night": night, "samples_path": str(out), "samples": 0}
    manifest = generate(release.path, out, settings)
    return {"night": night, "samples_path": str(out), "samples": manifest["samples"],
            "terminated": manifest["terminated"]}


SUMMED = ("samples", "terminated", "unterminated", "seconds", "sample_tokens", "decode_steps", "sampling_seconds")


@_holds_workdir
def merge_shards(config: Config, night: str, shard_paths: list[str], round_index: int = 0) -> dict:
    """Concatenate shard outputs in shard order, renumbering ``index``; writes the generate manifest.

    The manifest sums the shards' figures and records each shard's settings, so the
    report reads a sharded night exactly like a single-shard one.
    """
    paths = night_paths(config, night)
    manifests = [read_manifest(path, "generate") for path in shard_paths]

    def records():
        index = 0
        for shard_path in shard_paths:
            for record in read_jsonl(shard_path):
                yield {**record, "index": index}
                index += 1

    count = write_jsonl(paths.samples, records())
    totals = {key: round(sum(m.get(key) or 0 for m in manifests), 2) for key in SUMMED if any(key in m for m in manifests)}
    settings = dict(manifests[0].get("settings") or {}) if manifests else {}
    settings.update(samples=count)
    write_manifest(paths.samples, "generate", **totals, samples_path=str(paths.samples),
                   length=max((m.get("length") or 0 for m in manifests), default=0), settings=settings,
                   shards=[part for path, m in zip(shard_paths, manifests) for part in m.get("shards") or [
                       {"path": str(path), "samples": m.get("samples"), "seed": (m.get("settings") or {}).get("seed"),
                        "round": round_index}]])
    return {"night": night, "samples_path": str(paths.samples), "samples": count}


# --- curate, render, publish, report ----------------------------------------------------------

def _write_history(config: Config, night: str, out: Path) -> int:
    """Descriptions (with their titles) kept on earlier nights, for curate's cross-night near-duplicate and
    title-repeat checks."""
    archive = config.paths.archive_root

    def records():
        if not archive.is_dir():
            return
        for night_dir in sorted(archive.iterdir()):
            kept = night_dir / "kept.jsonl"
            if night_dir.name < night and kept.is_file():
                for record in read_jsonl(kept):
                    yield {"text": record["text"], "night": night_dir.name,
                           **({"title": record["title"]} if record.get("title") else {})}

    return write_jsonl(out, records())


@_holds_workdir
def step_curate(config: Config, night: str, samples_path: str | None = None) -> dict:
    """Curate the night's samples (``curate.min_kept`` is checked once its rounds are done: step_rounds)."""
    from .curate import curate
    from .ingest import read_catalog
    from .quality import reader_cache

    paths = night_paths(config, night)
    history = _write_history(config, night, paths.history)
    ingest_manifest = read_manifest(paths.ingest, "ingest")
    manifest = curate(samples_path or paths.samples, read_catalog(paths.ingest), paths.kept, config.curate,
                      history_path=paths.history if history else None, catalog_label=ingest_manifest.get("source", ""),
                      reader_cache=reader_cache(config))
    return {"night": night, "kept_path": str(paths.kept), "kept": manifest.get("kept"), "input": manifest.get("input")}


@_holds_workdir
def step_render(config: Config, night: str, kept_path: str | None = None) -> dict:
    from .curate.stage import check_min_kept
    from .publish.stage import nothing_to_publish
    from .render import render

    paths = night_paths(config, night)
    kept_path = Path(kept_path or paths.kept)
    # Again here, not only in curate: a re-run render task after a failed curate must not publish too few.
    check_min_kept(sum(1 for _ in read_jsonl(kept_path)), None, config.curate, kept_path)
    empty = nothing_to_publish(config.paths.site_root, night, kept_path)
    if empty:
        log.warning("night %s: %s", night, empty)
        return {"night": night, "site_dir": str(config.paths.site_root), "pages": None, "written": 0,
                "descriptions": 0, "not_rendered": empty}
    manifest = render(kept_path, config.paths.site_root, config.render, night=night,
                      report=build_report(config, night), archive_dir=config.paths.archive_root)
    return {"night": night, "site_dir": str(config.paths.site_root), "pages": manifest.get("pages"),
            "written": manifest.get("written"), "descriptions": manifest.get("descriptions")}


@_holds_workdir
def step_rounds(config: Config, night: str, release=None) -> dict:
    """Further rounds until ``generate.target_kept`` are kept or :func:`generator.rounds.plan_round` stops them.

    Each round generates into ``generate/round-NNN.jsonl`` with its own seed, joins the
    night's samples and the whole night is curated again (deterministic: a description
    kept stays kept; the reader's cache means only the new round's candidates are read).
    ``rounds.json`` records every round, its seconds and why the night stopped; the
    quality panel of what will be published is written last.
    """
    from .checkpoints import require_live
    from .curate.stage import check_min_kept
    from .quality import night_panel
    from .rounds import NightSoFar, plan_round, samples_bound

    release = release or require_live(config.paths.checkpoint_root, config.train.run_name)
    paths = night_paths(config, night)
    settings = night_generate_settings(config, night)
    first = read_manifest(paths.samples, "generate")
    rounds = [{"round": 0, "samples": first["samples"], "kept": read_manifest(paths.kept, "curate")["kept"],
               "seconds": {"generate": first.get("seconds")}, "startup": first.get("startup")}]
    so_far = NightSoFar(target=settings.target_kept, samples=first["samples"], kept=rounds[0]["kept"],
                        max_samples=settings.max_samples, batch_size=settings.batch_size,
                        seconds=first.get("seconds") or 0.0, max_minutes=settings.max_minutes,
                        bounded=samples_bound(config))
    started = time.monotonic()
    while True:
        count, stop = plan_round(so_far)
        if stop:
            break
        rounds.append(_one_round(config, night, release, settings, len(rounds), count))
        so_far = dataclasses.replace(so_far, samples=so_far.samples + count, kept=rounds[-1]["kept"],
                                     seconds=so_far.seconds + sum(rounds[-1]["seconds"].values()),
                                     minutes=(time.monotonic() - started) / 60)
    total, kept = so_far.samples, so_far.kept
    record = {"target_kept": so_far.target, "samples": total, "kept": kept, "rounds": rounds, "stop": stop,
              "minutes": round((time.monotonic() - started) / 60, 2)}
    atomic_write_json(paths.rounds, record)
    atomic_write_json(paths.quality, night_panel(config, night))
    try:  # the kept and rejected files are written (they say why so few passed); what fails is the night
        check_min_kept(kept, total, config.curate, paths.kept)
    except UserError as error:
        raise UserError(f"rounds stopped ({stop}); {error.problem}", error.fix) from None
    return {"night": night, "kept_path": str(paths.kept), "kept": kept, "samples": total, "stop": stop}


def _one_round(config: Config, night: str, release, settings, index: int, count: int) -> dict:
    """Round ``index``: ``count`` samples generated from ``release``, joined to the night's, the night curated again."""
    from .generate import generate

    paths = night_paths(config, night)
    started = time.monotonic()
    round_path = paths.round(index)
    manifest = generate(release.path, round_path,
                        dataclasses.replace(settings, samples=count, seed=settings.seed + 100_000 * index))
    merge_shards(config, night, [str(paths.samples), str(round_path)], round_index=index)
    generated = time.monotonic()
    curated = step_curate(config, night)
    seconds = {"generate": round(generated - started, 2), "curate": round(time.monotonic() - generated, 2)}
    log.info("night %s: round %d generated %d in %.1f s, curated in %.1f s: %d kept in all", night, index, count,
             seconds["generate"], seconds["curate"], curated["kept"])
    return {"round": index, "samples": count, "kept": curated["kept"], "seconds": seconds,
            "startup": manifest.get("startup")}


def require_target(config: Config) -> str:
    """The publish target, checked before the night's work (a bad one should not fail at the end)."""
    from .publish import parse_target

    if not config.publish.target:
        raise UserError("no publish target set", "set publish.target (flag --target, variable "
                        "GENERATOR_PUBLISH__TARGET, or the DAG's target param) to file:///abs/dir or s3://bucket/prefix")
    parse_target(config.publish.target)
    return config.publish.target


@_holds_workdir
def step_publish(config: Config, night: str, site_dir: str | None = None) -> dict:
    from .publish import publish
    from .publish.stage import nothing_to_publish

    paths = night_paths(config, night)
    target = require_target(config)
    empty = nothing_to_publish(config.paths.site_root, night, paths.kept)  # render left the site as it was
    summary = {"stage": "publish", "target": target, "uploaded": 0, "deleted": 0, "not_published": empty} if empty \
        else publish(site_dir or config.paths.site_root, target, config.publish)
    # A dry run's per-file plan is for the terminal, not for the night's report.
    atomic_write_json(paths.publish_summary, {k: v for k, v in summary.items() if k != "plan"})
    return {"night": night, "target": target, "site_url": site_url(target),
            **{k: summary.get(k) for k in ("uploaded", "skipped", "deleted", "dry_run", "not_published")}}


def site_url(target: str) -> str:
    """Where a reader opens the published site."""
    return target.rstrip("/") + "/index.html"


@_holds_workdir
def step_report(config: Config, night: str) -> dict:
    paths = night_paths(config, night)
    report = build_report(config, night)
    atomic_write_json(paths.report, report)
    return {"night": night, "report_path": str(paths.report), "summary": summary_line(report)}


def run_night(config: Config, catalog: str, night: str | None = None, force_retrain: bool = False) -> dict:
    """Every step of the night, in order, in this process; returns the report."""
    night = check_night(night or today())
    require_target(config)
    use_workdir_compile_cache(config)  # before training imports TensorFlow: the flags are read once
    with lock.workdir(config):
        return _run_night(config, catalog, night, force_retrain)


def _run_night(config: Config, catalog: str, night: str, force_retrain: bool) -> dict:
    log.info("night %s: ingest %s", night, public_label(catalog))
    step_ingest(config, night, catalog)
    decision = step_should_train(config, night, force_retrain)
    log.info("night %s: %s", night, decision["reason"])
    if decision["train"]:
        step_train(config, night)
    promoted, release = promote_night(config, night, trained=decision["train"])
    log.info("night %s: %s", night, promoted["reason"])
    generated = step_generate(config, night, release=release)
    step_curate(config, night, generated["samples_path"])
    curated = step_rounds(config, night, release)
    log.info("night %s: %s", night, curated["stop"])
    rendered = step_render(config, night, curated["kept_path"])
    step_publish(config, night, rendered["site_dir"])
    result = step_report(config, night)
    log.info(result["summary"])
    return json.loads(Path(result["report_path"]).read_text())
