"""The night, composed: ingest -> train -> promote -> generate -> curate -> render -> publish -> report.

Each ``step_*`` function is one box of the nightly DAG and one part of
``python -m generator run``: it takes the configuration and the night's id,
reads its inputs from the night's folder (``<workdir>/nights/<night>/``) and
returns a small dict of paths and figures, never large data, so the same
functions serve the CLI, the Airflow tasks (via XCom) and the tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

from .artifacts import atomic_write_json, read_jsonl, read_manifest, write_jsonl
from .config import Config
from .errors import UserError

log = logging.getLogger(__name__)


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def _validate_night(night: str) -> str:
    try:
        dt.date.fromisoformat(night)
    except ValueError:
        raise UserError(f"bad night {night!r}", "use a date like 2026-11-25") from None
    return night


@dataclasses.dataclass
class NightPaths:
    root: Path

    @property
    def ingest(self) -> Path:
        return self.root / "ingest"

    @property
    def samples(self) -> Path:
        return self.root / "generate" / "samples.jsonl"

    def shard(self, index: int) -> Path:
        return self.root / "generate" / f"shard-{index:03d}.jsonl"

    @property
    def kept(self) -> Path:
        return self.root / "curate" / "kept.jsonl"

    @property
    def history(self) -> Path:
        return self.root / "curate" / "history.jsonl"

    @property
    def check(self) -> Path:
        return self.root / "check.json"

    @property
    def decision(self) -> Path:
        return self.root / "promote.json"

    @property
    def publish_summary(self) -> Path:
        return self.root / "publish.json"

    @property
    def report(self) -> Path:
        return self.root / "report.json"


def night_paths(config: Config, night: str) -> NightPaths:
    return NightPaths(config.paths.night_dir(_validate_night(night)))


# --- ingest and the decision to train ---------------------------------------------------------

def step_ingest(config: Config, night: str, catalog: str) -> dict:
    from .ingest import ingest

    paths = night_paths(config, night)
    manifest = ingest(catalog, paths.ingest, config.ingest)
    return {"ingest_dir": str(paths.ingest), "catalog_hash": manifest["catalog_hash"],
            "rows": manifest["rows"], "kept": manifest["kept"]}


def step_should_train(config: Config, night: str, force_retrain: bool = False) -> dict:
    """Skip training when the live checkpoint was trained on this very catalog."""
    decision = _should_train(config, night, force_retrain)
    atomic_write_json(night_paths(config, night).check, decision)
    return decision


def _should_train(config: Config, night: str, force_retrain: bool) -> dict:
    from .checkpoints import read_live

    ingest_manifest = read_manifest(night_paths(config, night).ingest, "ingest")
    live = read_live(config.paths.checkpoint_root, config.train.run_name)
    if force_retrain:
        return {"train": True, "reason": "retrain forced by the run's params"}
    if live is None:
        return {"train": True, "reason": "no live checkpoint yet"}
    if config.train.steps == 0:
        return {"train": False, "reason": "train.steps is 0"}
    if live.get("catalog_hash") == ingest_manifest["catalog_hash"]:
        return {"train": False, "reason": f"catalog unchanged since step {live['step']} ({live['catalog_hash'][:12]})"}
    return {"train": True, "reason": "catalog changed"}


def step_train(config: Config, night: str) -> dict:
    from .train import train

    paths = night_paths(config, night)
    manifest = train(paths.ingest, config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)
    return {key: manifest[key] for key in ("run_dir", "step", "steps", "train_loss", "val_loss", "resumed")}


def step_promote(config: Config, night: str, trained: bool = True) -> dict:
    """The promotion gate; writes the night's decision to ``promote.json``."""
    from .checkpoints import gate, promote, read_live, restore_run_from_live
    from .train import evaluate_loss

    paths = night_paths(config, night)
    root, run_name = config.paths.checkpoint_root, config.train.run_name
    live = read_live(root, run_name)
    if not trained:
        if live is None:
            raise UserError("there is no live checkpoint to generate from", "run once with training (train.steps > 0)")
        check = json.loads(paths.check.read_text()) if paths.check.is_file() else {}
        reason = f"training skipped: {check.get('reason', 'not requested')}"
        decision = {"promoted": False, "trained": False, "reason": reason, "live": live}
    else:
        train_manifest = read_manifest(Path(root) / run_name, "train")
        ingest_manifest = read_manifest(paths.ingest, "ingest")
        live_loss = None
        if live is not None:
            # Compare both checkpoints on tonight's held-out text, not on last night's numbers.
            live_loss = evaluate_loss(live["path"], paths.ingest / "val.txt", config.train.val_max_tokens,
                                      config.train.threads)
        ok, reason = gate(train_manifest["val_loss"], live_loss, config.train.promotion_margin)
        if ok:
            live = promote(train_manifest["run_dir"], root, run_name, {
                "catalog_hash": ingest_manifest["catalog_hash"], "val_loss": train_manifest["val_loss"],
                "train_loss": train_manifest["train_loss"], "night": night})
        else:
            restore_run_from_live(root, run_name)
        decision = {"promoted": ok, "trained": True, "reason": reason, "live": live,
                    "candidate_val_loss": train_manifest["val_loss"], "live_val_loss": live_loss}
    atomic_write_json(paths.decision, decision)
    return {"promoted": decision["promoted"], "reason": decision["reason"], "live_release": live["path"]}


# --- generation, sharded ----------------------------------------------------------------------

def _live_release(config: Config) -> Path:
    from .checkpoints import read_live

    live = read_live(config.paths.checkpoint_root, config.train.run_name)
    if live is None:
        raise UserError("there is no live checkpoint to generate from", "run the train and promote steps first")
    return Path(live["path"])


def shard_settings(settings, index: int, count: int):
    """Settings for shard ``index`` of ``count``: its share of samples and its own seed."""
    share, extra = divmod(settings.samples, count)
    return dataclasses.replace(settings, samples=share + (1 if index < extra else 0), seed=settings.seed + 1000 * index)


def step_generate(config: Config, night: str, shard: int = 0, shards: int = 1) -> dict:
    from .sample import generate

    paths = night_paths(config, night)
    release = _live_release(config)
    settings = shard_settings(config.generate, shard, shards)
    out = paths.shard(shard) if shards > 1 else paths.samples
    if settings.samples == 0:
        write_jsonl(out, [])
        return {"samples_path": str(out), "samples": 0}
    manifest = generate(release.parent, release.name, out, settings)
    return {"samples_path": str(out), "samples": manifest["samples"], "terminated": manifest["terminated"]}


def merge_shards(config: Config, night: str, shard_paths: list[str]) -> dict:
    """Concatenate shard outputs in shard order, renumbering ``index``."""
    paths = night_paths(config, night)

    def records():
        index = 0
        for shard_path in shard_paths:
            for record in read_jsonl(shard_path):
                yield {**record, "index": index}
                index += 1

    count = write_jsonl(paths.samples, records())
    return {"samples_path": str(paths.samples), "samples": count}


# --- curate, render, publish, report ----------------------------------------------------------

def _write_history(config: Config, night: str, out: Path) -> int:
    """Descriptions kept on earlier nights, for curate's cross-night near-duplicate check."""
    archive = config.paths.archive_root

    def records():
        if not archive.is_dir():
            return
        for night_dir in sorted(archive.iterdir()):
            kept = night_dir / "kept.jsonl"
            if night_dir.name < night and kept.is_file():
                for record in read_jsonl(kept):
                    yield {"text": record["text"], "night": night_dir.name}

    return write_jsonl(out, records())


def step_curate(config: Config, night: str) -> dict:
    from .curate import curate

    paths = night_paths(config, night)
    history = _write_history(config, night, paths.history)
    manifest = curate(paths.samples, str(paths.ingest / "source.csv"), paths.kept, config.curate,
                      history_path=paths.history if history else None)
    return {"kept_path": str(paths.kept), "kept": manifest.get("kept"), "input": manifest.get("input")}


def build_report(config: Config, night: str) -> dict:
    """The night's summary for operators and the model card; every part is optional."""
    paths = night_paths(config, night)

    def manifest(output) -> dict:
        try:
            return read_manifest(output)
        except UserError:
            return {}

    ingest_m = manifest(paths.ingest)
    decision = json.loads(paths.decision.read_text()) if paths.decision.is_file() else {}
    train_m = manifest(Path(config.paths.checkpoint_root) / config.train.run_name) if decision.get("trained") else {}
    live = decision.get("live") or {}
    generate_m = manifest(paths.samples)
    curate_m = manifest(paths.kept)
    publish_s = json.loads(paths.publish_summary.read_text()) if paths.publish_summary.is_file() else {}
    render_m = manifest(config.paths.site_root)
    if render_m.get("rendered_night") != night:  # last night's render, not tonight's
        render_m = {}
    previous = _previous_catalog_hash(config, night)
    report = {
        "night": night,
        "profile": config.profile,
        "catalog": {"source": ingest_m.get("source"), "rows": ingest_m.get("rows"), "kept": ingest_m.get("kept"),
                    "catalog_hash": ingest_m.get("catalog_hash"),
                    "changed": None if previous is None else previous != ingest_m.get("catalog_hash"),
                    "train_count": ingest_m.get("train_count"), "val_count": ingest_m.get("val_count")},
        "model": {"name": config.model.name, "source": config.model.source,
                  "live_release": live.get("release"), "live_step": live.get("step")},
        "train": {"skipped": not decision.get("trained", False), "reason": decision.get("reason"),
                  "promoted": decision.get("promoted"), "steps": train_m.get("steps", 0),
                  "total_steps": train_m.get("step", live.get("step")),
                  "train_loss": train_m.get("train_loss", live.get("train_loss")),
                  "val_loss": train_m.get("val_loss", live.get("val_loss")),
                  "live_val_loss": decision.get("live_val_loss"),
                  "seconds": train_m.get("seconds"), "loss_curve": train_m.get("loss_curve", [])},
        "generate": {"samples": generate_m.get("samples"), "terminated": generate_m.get("terminated"),
                     "length": generate_m.get("length"), "seconds": generate_m.get("seconds"),
                     **{k: config.generate.__dict__[k] for k in ("temperature", "top_k", "top_p", "seed", "backend",
                                                                   "conditions")}},
        "curate": {"input": curate_m.get("input"), "kept": curate_m.get("kept"), "kept_rate": curate_m.get("kept_rate"),
                   "rejected": curate_m.get("rejected", {})},
        "render": {k: render_m.get(k) for k in ("pages", "written", "unchanged", "removed", "descriptions")}
        if render_m else {},
        "publish": publish_s,
    }
    return report


def _previous_catalog_hash(config: Config, night: str) -> str | None:
    nights = config.paths.night_dir(night).parent
    if not nights.is_dir():
        return None
    earlier = sorted(p for p in nights.iterdir() if p.is_dir() and p.name < night)
    for night_dir in reversed(earlier):
        try:
            return read_manifest(night_dir / "ingest").get("catalog_hash")
        except UserError:
            continue
    return None


def step_render(config: Config, night: str) -> dict:
    from .render import render

    paths = night_paths(config, night)
    report = build_report(config, night)
    manifest = render(paths.kept, config.paths.site_root, config.render, night=night, report=report,
                      archive_dir=config.paths.archive_root)
    return {"site_dir": str(config.paths.site_root), "pages": manifest.get("pages"),
            "written": manifest.get("written"), "descriptions": manifest.get("descriptions")}


def step_publish(config: Config, night: str, target: str | None = None, dry_run: bool | None = None) -> dict:
    from .publish import publish

    paths = night_paths(config, night)
    settings = dataclasses.replace(config.publish, **{k: v for k, v in
                                                      {"target": target, "dry_run": dry_run}.items() if v is not None})
    if not settings.target:
        raise UserError("no publish target set", "pass --target file:///abs/dir or s3://bucket/prefix")
    summary = publish(config.paths.site_root, settings.target, settings)
    # A dry run's per-file plan is for the terminal, not for the night's report.
    atomic_write_json(paths.publish_summary, {k: v for k, v in summary.items() if k != "plan"})
    return {"target": settings.target, **{k: summary.get(k) for k in ("uploaded", "skipped", "deleted", "dry_run")},
            "site_url": site_url(settings.target)}


def site_url(target: str) -> str:
    """Where a reader opens the published site."""
    return target.rstrip("/") + "/index.html"


def step_report(config: Config, night: str) -> dict:
    paths = night_paths(config, night)
    report = build_report(config, night)
    atomic_write_json(paths.report, report)
    return {"report_path": str(paths.report), "summary": summary_line(report)}


def summary_line(report: dict) -> str:
    c, t, g, k, p = (report.get(key) or {} for key in ("catalog", "train", "generate", "curate", "publish"))
    training = (f"trained +{t.get('steps')} steps (val {t.get('val_loss')}, "
                f"{'promoted' if t.get('promoted') else 'kept live'})" if not t.get("skipped")
                else f"training skipped ({t.get('reason')})")
    rejected = ", ".join(f"{reason} {count}" for reason, count in sorted((k.get("rejected") or {}).items()))
    return (f"night {report['night']}: catalog {c.get('kept')} descriptions"
            f"{' (changed)' if c.get('changed') else ''}; {training}; generated {g.get('samples')}, "
            f"kept {k.get('kept')} [{rejected}]; rendered {(report.get('render') or {}).get('pages', '-')} pages; published {p.get('uploaded', 0)} uploaded, "
            f"{p.get('deleted', 0)} deleted to {p.get('target', '-')}")


def run_night(config: Config, catalog: str, night: str | None = None, target: str | None = None,
              force_retrain: bool = False, dry_run: bool | None = None) -> dict:
    """Every step of the night, in order, in this process; returns the report."""
    from .publish import parse_target

    night = _validate_night(night or today())
    # A bad target should fail before the night's work, not after it.
    if not (target or config.publish.target):
        raise UserError("no publish target set", "pass --target file:///abs/dir or s3://bucket/prefix")
    parse_target(target or config.publish.target)
    log.info("night %s: ingest %s", night, catalog)
    step_ingest(config, night, catalog)
    decision = step_should_train(config, night, force_retrain)
    log.info("night %s: %s", night, decision["reason"])
    if decision["train"]:
        step_train(config, night)
    promoted = step_promote(config, night, trained=decision["train"])
    log.info("night %s: %s", night, promoted["reason"])
    step_generate(config, night)
    step_curate(config, night)
    step_render(config, night)
    step_publish(config, night, target=target, dry_run=dry_run)
    result = step_report(config, night)
    log.info(result["summary"])
    return json.loads(Path(result["report_path"]).read_text())


# --- configuration from a DAG run's params, and one step in a fresh interpreter ---------------

PARAM_OVERRIDES = {
    # DAG param -> (config section, key)
    "steps": ("train", "steps"),
    "samples": ("generate", "samples"),
    "temperature": ("generate", "temperature"),
    "top_k": ("generate", "top_k"),
    "top_p": ("generate", "top_p"),
    "seed": ("generate", "seed"),
    "conditions": ("generate", "conditions"),
    "backend": ("generate", "backend"),
    "base_model": ("model", "name"),
}


def config_from_params(params: dict):
    """The effective config of a DAG run: defaults < profile < GENERATOR_* env < the run's params."""
    from .config import load_config

    overrides: dict = {}
    for param, (section, key) in PARAM_OVERRIDES.items():
        value = params.get(param)
        if value is not None and value != "":
            overrides.setdefault(section, {})[key] = value
    config = load_config(profile=params.get("profile") or None, overrides=overrides)
    for section in (config.train, config.generate, config.model):
        section.validate()
    return config


STEPS = {
    "train": lambda config, night, **kw: step_train(config, night),
    "generate": lambda config, night, **kw: step_generate(config, night, kw.get("shard", 0), kw.get("shards", 1)),
}


def run_step_subprocess(name: str, params: dict, night: str, **kwargs) -> dict:
    """Run a TensorFlow step in a fresh Python interpreter and return its result.

    Airflow's task runner forks, and CUDA does not survive a fork: GPU steps must
    start TensorFlow in a new process. Its output goes to the task log as is; its
    result comes back through a small JSON file.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"step-{name}-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "generator", "step", name, "--night", night, "--params", json.dumps(params),
                   "--kwargs", json.dumps(kwargs), "--result-file", str(result_file)]
        process = subprocess.run(command)
        if process.returncode != 0:
            raise RuntimeError(f"step {name} failed with exit code {process.returncode} (its output is above)")
        return json.loads(result_file.read_text())


def _step_cli(args, config) -> int:
    params = json.loads(args.params)
    result = STEPS[args.name](config_from_params(params), _validate_night(args.night), **json.loads(args.kwargs))
    atomic_write_json(args.result_file, result)
    return 0


def add_cli(subparsers) -> None:
    step = subparsers.add_parser(
        "step", parents=[subparsers.common],
        help="(internal) run one TensorFlow step of the night for a DAG task, printing JSON",
    )
    step.add_argument("name", choices=sorted(STEPS))
    step.add_argument("--night", required=True)
    step.add_argument("--params", default="{}", help="the DAG run's params as JSON")
    step.add_argument("--kwargs", default="{}", help="step arguments as JSON")
    step.add_argument("--result-file", required=True, help="where to write the step's JSON result")
    step.set_defaults(func=_step_cli)

    parser = subparsers.add_parser(
        "run", parents=[subparsers.common],
        help="run the whole night: ingest, train, promote, generate, curate, render, publish, report",
        description="Run every stage of the night in this process (no Airflow needed) and print where the site is.",
    )
    parser.add_argument("--catalog", required=True, metavar="SRC", help="catalog CSV: path, http(s):// URL or s3:// URI")
    parser.add_argument("--workdir", metavar="DIR", help="state and artifacts root (default: paths.workdir)")
    parser.add_argument("--target", metavar="URI", help="publish target: file:///abs/dir or s3://bucket/prefix")
    parser.add_argument("--checkpoint-dir", metavar="DIR", help="checkpoint root (default: <workdir>/checkpoints)")
    parser.add_argument("--models-dir", metavar="DIR", help="base models root (default: <workdir>/models)")
    parser.add_argument("--steps", type=int, metavar="N", help="training steps this night")
    parser.add_argument("--samples", type=int, metavar="N", help="descriptions to generate")
    parser.add_argument("--seed", type=int, metavar="N", help="generation seed")
    parser.add_argument("--night", metavar="YYYY-MM-DD", help="the night's date (default: today, UTC)")
    parser.add_argument("--force-retrain", action="store_true", help="train even if the catalog is unchanged")
    parser.add_argument("--dry-run", action="store_true", default=None, help="plan the publish without touching the target")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .config import with_overrides

    config = with_overrides(config, paths={"workdir": args.workdir, "checkpoint_dir": args.checkpoint_dir,
                                           "models_dir": args.models_dir},
                            train={"steps": args.steps}, generate={"samples": args.samples, "seed": args.seed})
    for section in (config.train, config.generate):
        section.validate()
    report = run_night(config, args.catalog, night=args.night, target=args.target,
                       force_retrain=args.force_retrain, dry_run=args.dry_run)
    print(summary_line(report))
    print(f"site: {config.paths.site_root.resolve() / 'index.html'}")
    if report["publish"].get("target"):
        print(f"published: {site_url(report['publish']['target'])}")
    return 0
