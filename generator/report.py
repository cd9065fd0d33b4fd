"""The night's report: one summary, built from what each stage declared in its manifest.

``build_report`` reads the night's manifests and decisions (never re-deriving
them); ``summary_line`` is its one line for operators (the CLI's output, the
DAG's log, the run's note). The model card on the site is rendered from it.

``seconds`` is where the night's time went: ``steps``, each step's wall seconds
as it recorded them (:mod:`generator.timings`; a step that adds a timing shows up
here with no change to this module), their ``total``, and ``rounds``, each
generation round's generate and curate seconds and its sampler's start-up
(``reused`` when a compiled sampler of the same process served it).
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import read_manifest
from .config import Config
from .errors import UserError
from .night import night_paths
from .timings import read_timings

GENERATION_FIGURES = ("temperature", "top_k", "top_p", "seed", "backend", "conditions")
READER_FIGURES = ("on", "model", "cut", "percentile", "held_out", "held_out_median", "read", "unread",
                  "reading_seconds", "tokens_per_second")


def _manifest(output) -> dict:
    try:
        return read_manifest(output)
    except UserError:
        return {}


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def build_report(config: Config, night: str) -> dict:
    """The night's summary for operators and the model card; every part is optional."""
    paths = night_paths(config, night)
    ingest_m = _manifest(paths.ingest)
    decision = _json(paths.decision)
    train_m = _manifest(Path(config.paths.checkpoint_root) / config.train.run_name) if decision.get("trained") else {}
    live = decision.get("live") or {}
    generate_m = _manifest(paths.samples)
    generation_settings = generate_m.get("settings") or {}
    curate_m = _manifest(paths.kept)
    publish_s = _json(paths.publish_summary)
    rounds = _json(paths.rounds)
    render_m = _manifest(config.paths.site_root)
    if render_m.get("rendered_night") != night:  # last night's render, not tonight's
        render_m = {}
    previous = previous_catalog_hash(config, night)
    return {
        "night": night,
        "profile": config.profile,
        "catalog": {"source": ingest_m.get("source"), "rows": ingest_m.get("rows"), "kept": ingest_m.get("kept"),
                    "catalog_hash": ingest_m.get("catalog_hash"),
                    "changed": None if previous is None else previous != ingest_m.get("catalog_hash"),
                    "train_count": ingest_m.get("train_count"), "val_count": ingest_m.get("val_count")},
        "model": {"name": config.model.name, "family": config.model.family, **model_source(config, live),
                  "live_release": live.get("release"), "live_step": live.get("step")},
        "train": {"skipped": not decision.get("trained", False), "reason": decision.get("reason"),
                  "promoted": decision.get("promoted"), "diverged": decision.get("diverged", False),
                  "fix": decision.get("fix"), "steps": train_m.get("steps", 0),
                  "total_steps": train_m.get("step", live.get("step")),
                  "train_loss": train_m.get("train_loss", live.get("train_loss")),
                  "val_loss": train_m.get("val_loss", live.get("val_loss")),
                  "live_val_loss": decision.get("live_val_loss"),
                  "seconds": train_m.get("seconds"), "loss_curve": train_m.get("loss_curve", [])},
        # What generation declared it used, not tonight's config re-read.
        "generate": {"samples": generate_m.get("samples"), "terminated": generate_m.get("terminated"),
                     "length": generate_m.get("length"), "seconds": generate_m.get("seconds"),
                     "shards": sum(1 for s in generate_m.get("shards", []) if not s.get("round"))
                     or (1 if generate_m else None),
                     "rounds": len(rounds.get("rounds", [])) or None, "target_kept": rounds.get("target_kept"),
                     "stop": rounds.get("stop"),
                     **{key: generation_settings.get(key) for key in GENERATION_FIGURES}},
        "curate": {"input": curate_m.get("input"), "kept": curate_m.get("kept"), "kept_rate": curate_m.get("kept_rate"),
                   "rejected": curate_m.get("rejected", {}),
                   "reader": {k: (curate_m.get("reader") or {}).get(k) for k in READER_FIGURES}},
        "render": {k: render_m.get(k) for k in ("pages", "written", "unchanged", "removed", "descriptions")}
        if render_m else {},
        "publish": publish_s,
        "quality": _json(paths.quality),
        "seconds": seconds_spent(paths, rounds),
    }


def model_source(config: Config, live: dict) -> dict:
    """``source`` (the model card's line) and, for a Llama release, ``adapter`` and ``base_sha256``.

    A Llama night's model is what its live release records (``family.json``): the base file by name
    and digest, and the adapter that was trained on it.
    """
    from .models.llama import run

    path = live.get("path")
    if config.model.family != "llama" or not path or not run.is_llama_run(path):
        return {"source": config.model.source}
    try:
        family = run.read_family(path)
    except UserError:
        return {"source": "gguf"}
    adapter = family.get("adapter") or {}
    if adapter.get("kind") == "lora":
        trained = (f"LoRA rank {adapter['rank']}, alpha {adapter['alpha']:g}, on "
                   f"{len(adapter['targets'])} projections ({', '.join(adapter['targets'])})")
    else:
        trained = "full fine-tune" if adapter.get("kind") == "full" else "untrained"
    base = family["base"]
    return {"source": f"{Path(base['path']).name} (sha256 {str(base.get('sha256'))[:12]}), {trained}",
            "adapter": adapter or None, "base_sha256": base.get("sha256")}


def seconds_spent(paths, rounds: dict) -> dict:
    """Each step's seconds, their total, and each round's (``rounds.json``)."""
    steps = read_timings(paths.timings)
    return {"steps": steps, "total": round(sum(steps.values()), 2),
            "rounds": [{key: r.get(key) for key in ("round", "samples", "seconds", "startup")}
                       for r in rounds.get("rounds", [])]}


def previous_catalog_hash(config: Config, night: str) -> str | None:
    """The catalog hash of the latest earlier night that ingested one."""
    nights = config.paths.night_dir(night).parent
    if not nights.is_dir():
        return None
    earlier = sorted(p for p in nights.iterdir() if p.is_dir() and p.name < night)
    for night_dir in reversed(earlier):
        manifest = _manifest(night_dir / "ingest")
        if manifest.get("catalog_hash"):
            return manifest["catalog_hash"]
    return None


def summary_line(report: dict) -> str:
    c, t, g, k, p = (report.get(key) or {} for key in ("catalog", "train", "generate", "curate", "publish"))
    training = (f"trained +{t.get('steps')} steps (val {t.get('val_loss')}, "
                f"{'promoted' if t.get('promoted') else 'kept live'})" if not t.get("skipped")
                else f"training skipped ({t.get('reason')})")
    if t.get("diverged"):
        training = f"{t.get('reason')}, kept live (fix: {t.get('fix')})"
    rejected = ", ".join(f"{reason} {count}" for reason, count in sorted((k.get("rejected") or {}).items()) if count)
    rounds = f" in {g['rounds']} rounds ({g.get('stop')})" if (g.get("rounds") or 0) > 1 else ""
    return (f"night {report['night']}: catalog {c.get('kept')} descriptions"
            f"{' (changed)' if c.get('changed') else ''}; {training}; generated {g.get('samples')}{rounds}, "
            f"kept {k.get('kept')} [{rejected}]; {quality_line(report.get('quality') or {})}"
            f"rendered {(report.get('render') or {}).get('pages', '-')} pages; "
            + (f"not published: {p['not_published']}" if p.get("not_published") else
               f"published {p.get('uploaded', 0)} uploaded, {p.get('deleted', 0)} deleted to {p.get('target', '-')}")
            + seconds_line(report.get('seconds') or {}))


def seconds_line(seconds: dict) -> str:
    """'; 95 s: train 40, generate 12, ...' (the steps recorded so far)."""
    steps = seconds.get("steps") or {}
    if not steps:
        return ""
    return f"; {seconds['total']:.0f} s: " + ", ".join(f"{step} {value:.0f}" for step, value in steps.items())


def quality_line(panel: dict) -> str:
    """The quality panel in a few figures: invented words, the reader against real text, realism, titles."""
    if not panel:
        return ""
    invented = panel.get("invented_rate") or {}
    reader = panel.get("reader") or {}
    realism = (panel.get("realism") or {}).get("accuracy")
    titles = panel.get("titles") if isinstance(panel.get("titles"), dict) else None

    def pct(value):
        return "-" if value is None else f"{value:.0%}"

    read = (f"reader SLOR {reader.get('published_median')} vs real {reader.get('real_median')} "
            f"({pct(reader.get('published_within_real_90'))} within real text's 90%, AUC {reader.get('auc')}), "
            if reader.get("on") else "")
    title_part = (f", titles {pct(titles.get('distinct_share'))} distinct (rejected: {titles.get('copies_rejected')} "
                  f"copying a catalog title, {titles.get('invented_rejected')} with an invented word)" if titles else "")
    return (f"quality: invented words {pct(invented.get('after'))} published ({pct(invented.get('before'))} generated), "
            f"{read}realism {'-' if realism is None else f'{realism:.2f}'} (0.5 = indistinguishable){title_part}; ")
