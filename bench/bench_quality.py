"""Quality sweep: each recipe runs the night as the product does and prints the night's quality panel.

A recipe is a profile plus overrides of the model shape (tokenizer vocabulary size), training
(steps, learning rate) and sampling (temperature, top-p). Each runs in its own temporary workdir
through the pipeline's step functions (generator.pipeline), as ``run_night`` does up to curation:
ingest -> train -> promote -> generate -> curate -> rounds. Rounds (``step_rounds``) generate and
curate until ``generate.target_kept`` descriptions are kept or ``generate.max_samples`` is spent,
so every recipe publishes (up to) the same number of descriptions and the realism test (a
cross-validated classifier whose accuracy grows with the texts per class) compares the same
per-class count across recipes and with the nightly panel. The reader's figures are the panel's
(median SLOR published / real held-out, AUC of real against published), read by the night's reader. Curation, conditioning and the
unseen-token mask are the profile's, at today's defaults; the panel is the one the night writes
(``curate/quality.json``).

Recipes that differ only in sampling share one trained model: the first trains, the others run a
later night in the same workdir, where the catalog is unchanged and training is skipped, as on a
product night. CPU minutes are this process's (all threads), training (ingest, train, promote) and
generation (generate, curate, rounds) apart; a shared model's training is counted on its first row.

    .venv/bin/python bench/bench_quality.py [--catalog CSV] [--recipes sweep|NAME,NAME]
        [--target-kept N] [--max-samples N] [--json FILE]

``smoke`` checks the harness in about a minute; ``default`` (the six recipes of docs/quality.md) takes about
15 CPU minutes, ``full`` (with warmer sampling, a larger budget and a replicate on other seeds) about 20.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.artifacts import read_jsonl  # noqa: E402
from generator.config import load_config  # noqa: E402
from generator.errors import UserError  # noqa: E402
from generator.night import night_paths  # noqa: E402
from generator.quality import distinct_2  # noqa: E402
from generator.pipeline import (step_curate, step_generate, step_ingest, step_promote,  # noqa: E402
                                step_rounds, step_should_train, step_train)

FIRST_NIGHT = dt.date(2026, 1, 1)
DISTINCT_N = 100
HOT = {"temperature": 0.95, "top_p": 0.95}
COOL = {"temperature": 0.7, "top_p": 0.85}
WORDS = {"vocab_size": 12288}  # a byte-level BPE large enough that (nearly) every catalog word is one token
# name: (profile, {model overrides}, {train overrides}, {generate overrides}); empty = the profile's value.
RECIPES = {
    "smoke": ("test", {}, {"steps": 20}, {}),
    "smoke-hot": ("test", {}, {"steps": 20}, HOT),
    "tiny-600": ("tiny", {}, {"steps": 600}, {}),
    "tiny-600-hot": ("tiny", {}, {"steps": 600}, HOT),
    "tiny-600-cool": ("tiny", {}, {"steps": 600}, COOL),
    "tiny-600-warm": ("tiny", {}, {"steps": 600}, {"temperature": 0.9, "top_p": 0.9}),
    "tiny-600-hot-8k": ("tiny", {}, {"steps": 600}, {**HOT, "max_samples": 8192}),
    # Replicates: other weights, data order and sampling seeds, to read the differences above against.
    "tiny-600-seed2": ("tiny", {"seed": 2}, {"steps": 600, "seed": 2}, {"seed": 2}),
    "tiny-600-hot-seed2": ("tiny", {"seed": 2}, {"steps": 600, "seed": 2}, {**HOT, "seed": 2}),
    "tiny-900": ("tiny", {}, {"steps": 900}, {}),
    "tiny-900-hot": ("tiny", {}, {"steps": 900}, HOT),
    "tiny-1200": ("tiny", {}, {"steps": 1200}, {}),
    "tiny-300": ("tiny", {}, {"steps": 300}, {}),
    "tiny-words-600": ("tiny", WORDS, {"steps": 600}, {}),
    "tiny-words-1200": ("tiny", WORDS, {"steps": 1200}, {}),
    "small-400": ("small", {}, {"steps": 400}, {}),
    # SmolLM2-135M (Llama family) with LoRA: the default profile, cooler sampling, fewer steps.
    "smollm2-60": ("smollm2", {}, {"steps": 60}, {}),
    "smollm2-60-cool": ("smollm2", {}, {"steps": 60}, {"temperature": 0.8, "top_p": 0.9}),
    "smollm2-30": ("smollm2", {}, {"steps": 30}, {}),
    # The untrained base prompted with four catalog examples per batch (generate.few_shot), no adapter.
    "smollm2-prompted": ("smollm2", {}, {}, {"few_shot": 4}),
}
PROMPTED = {"smollm2-prompted"}  # no training: generation reads a run of the base alone
SWEEPS = {"smollm2": ["smollm2-prompted", "smollm2-60", "smollm2-60-cool", "smollm2-30"],
          "catalog-2021": ["tiny-600", "smollm2-prompted", "smollm2-60"], "default": ["tiny-600", "tiny-600-cool", "tiny-600-hot", "tiny-1200", "tiny-words-600", "tiny-900"],
          "smoke": ["smoke", "smoke-hot"]}
SWEEPS["full"] = SWEEPS["default"][:3] + ["tiny-600-warm", "tiny-600-hot-8k"] + SWEEPS["default"][3:5] + [
    "tiny-600-seed2", "tiny-600-hot-seed2"] + SWEEPS["default"][5:] + ["tiny-900-hot"]


def model_key(name: str) -> str:
    """Recipes with the same key train the same model (they differ only in sampling)."""
    profile, model, train, _ = RECIPES[name]
    return json.dumps([profile, model, train], sort_keys=True)


def recipe_config(name: str, workdir: Path, target_kept: int | None, max_samples: int | None):
    profile, model, train, generate = RECIPES[name]
    generate = {**generate, "progress": False}
    if target_kept is not None:
        generate["target_kept"] = target_kept
    if max_samples is not None:  # the command line's budget, over the recipe's
        generate["max_samples"] = max_samples
    train = {**train, "save_every": train["steps"]} if "steps" in train else train
    return load_config(profile=profile, environ={}, overrides={
        "paths": {"workdir": str(workdir)}, "model": model, "train": train, "generate": generate})


def prompted_release(config, night: str):
    """A Llama run of the base itself (no adapter), with the night's generation info: the prompted row."""
    from generator.checkpoints import Release, write_generation_info
    from generator.models.llama import model_file, run

    run_dir = config.paths.checkpoint_root / "prompted"
    path, digest = model_file.base_file()
    run.write_family(run_dir, path, digest, None)
    write_generation_info(run_dir, night_paths(config, night).ingest / "train.txt")
    return Release("prompted", 0, run_dir)


def run_recipe(name: str, catalog: str, workdir: Path, night: str, target_kept: int | None,
               max_samples: int | None) -> dict:
    config = recipe_config(name, workdir, target_kept, max_samples)
    started = time.process_time()
    step_ingest(config, night, catalog)
    if name in PROMPTED:
        release = prompted_release(config, night)
        decision, promoted = {"train": False, "reason": "prompted: no training"}, {"live_release": str(release.path)}
    else:
        decision, release = step_should_train(config, night), None
        if decision["train"]:
            step_train(config, night)
        promoted = step_promote(config, night, trained=decision["train"])
    trained = time.process_time()
    error = None
    step_generate(config, night, release=release)
    step_curate(config, night)
    try:
        step_rounds(config, night, release)
    except UserError as exc:  # too few kept: the night fails, its files (and panel) are written
        error = str(exc)
    done = time.process_time()
    paths = night_paths(config, night)
    rounds = json.loads(paths.rounds.read_text())
    panel = json.loads(paths.quality.read_text())
    # distinct-2 falls as a batch grows: also over a seeded sample of the same size for every recipe.
    published = [record["text"] for record in read_jsonl(paths.kept)]
    same_size = random.Random(0).sample(published, min(len(published), DISTINCT_N))
    return {"recipe": name, "trained": decision["train"], "train_reason": decision["reason"],
            "live": promoted["live_release"],
            "cpu_minutes": {"train": round((trained - started) / 60, 2), "generate": round((done - trained) / 60, 2),
                            "total": round((done - started) / 60, 2)},
            "distinct_2_at_n": {"n": len(same_size), "value": distinct_2(same_size)},
            "rounds": len(rounds["rounds"]), "stop": rounds["stop"], "error": error,
            "settings": {"model": dataclasses.asdict(config.model), "train": dataclasses.asdict(config.train),
                         "generate": dataclasses.asdict(config.generate), "curate": dataclasses.asdict(config.curate)},
            **panel}


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row(result: dict) -> str:
    cpu, realism, reader, novelty = result["cpu_minutes"], result["realism"], result["reader"], result["novelty"]
    train = f"{cpu['train']:.2f}" if result["trained"] else f"({cpu['train']:.2f})"
    if result["train_reason"].startswith("prompted"):
        train = f"[{cpu['train']:.2f}]"
    accuracy = "-" if realism.get("accuracy") is None else f"{realism['accuracy']:.2f}±{realism['std']:.2f}"
    return (f"{result['recipe']:<16} {train:>7} {cpu['generate']:>6.2f} {result['samples']:>5} "
            f"{result['published']:>4} {_pct((result['curation'] or {}).get('kept_rate')):>5} "
            f"{_pct(result['invented_rate']['before']):>6} {_pct(result['invented_rate']['after']):>5} "
            f"{_num(result['distinct_2'], '.3f'):>6} {_num(result['distinct_2_at_n']['value'], '.3f'):>6} "
            f"{_num(novelty['longest_shared_run_median'], 'g'):>4}/"
            f"{_num(novelty['longest_shared_run_max'], 'g'):<3} "
            f"{_num(reader.get('published_median'), '.2f'):>5}/"
            f"{_num(reader.get('real_median'), '.2f'):<5} {_num(reader.get('auc'), '.2f'):>4} "
            f"{_pct(reader.get('published_within_real_90')):>5} {_pct(novelty.get('share_with_8_word_run')):>5} "
            f"{accuracy:>10} {realism.get('per_class', '-'):>4}  {result['stop']}")


HEADER = (f"{'recipe':<16} {'cpu_tr':>7} {'cpu_gc':>6} {'smpl':>5} {'pub':>4} {'kept':>5} {'inv_in':>6} "
          f"{'inv_out':>5} {'dist2':>6} {'d2@100':>6} {'run md/max':<8} {'slor pub/real':<11} {'auc':>4} "
          f"{'in90':>5} {'8run':>5} {'realism':>10} "
          f"{'n':>4}  stop")


def curation_label(results: list[dict]) -> str:
    """The curation the sweep ran with: its rules and the settings away from their built-in defaults."""
    from generator.curate.settings import RULES, CurateSettings

    defaults = dataclasses.asdict(CurateSettings())
    labels = sorted({json.dumps({k: v for k, v in r["settings"]["curate"].items() if defaults.get(k) != v},
                                sort_keys=True) for r in results})
    return f"rules {', '.join(RULES)}; settings off their defaults {' | '.join(labels)}"


def print_table(results: list[dict], catalog: str) -> None:
    print(f"catalog {catalog}; cpu_tr = CPU minutes ingest+train+promote (in parentheses: training skipped, "
          "model shared with an earlier recipe; in brackets: no training, the base prompted with catalog examples), cpu_gc = generate+curate+rounds; smpl = samples drawn; pub = "
          "published; kept = kept rate; inv_in/out = samples with an invented word generated/published; "
          "d2@100 = distinct-2 of a seeded sample of 100 published; run md/max = longest run of words shared with "
          "the catalog; slor = the reader's median SLOR (published/real held-out), auc = the reader's AUC of "
          "real against published (0.5 = indistinguishable; under 0.5: it prefers the published), in90 = share of "
          "the published within real text's 90 %, 8run = share of the published sharing an 8-word run with a catalog; realism = classifier accuracy ± std over folds, published vs held-out "
          "(0.5 = indistinguishable), n per class")
    print(HEADER)
    for result in results:
        print(row(result))
    for result in results:
        if result["error"]:
            print(f"{result['recipe']}: {result['error']}")
    print(f"curation: {curation_label(results)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default=str(ROOT / "sample_data" / "catalog.csv"))
    parser.add_argument("--recipes", default="default", help=f"a sweep ({', '.join(SWEEPS)}) or recipe names, "
                        f"comma-separated, from: {', '.join(RECIPES)}")
    parser.add_argument("--target-kept", type=int, default=150,
                        help="descriptions each night aims to publish (generate.target_kept; the tiny profile's 150)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="sample budget of a night's rounds (default: the profile's generate.max_samples)")
    parser.add_argument("--json", metavar="FILE", help="also write every result (panel, rounds, settings) as JSON")
    args = parser.parse_args()
    names = SWEEPS.get(args.recipes) or [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    results, workdirs, nights = [], {}, {}
    try:
        for name in names:
            key = model_key(name)
            if key not in workdirs:
                workdirs[key] = tempfile.TemporaryDirectory(prefix=f"bench-quality-{name}-")
            nights[key] = nights.get(key, -1) + 1
            night = (FIRST_NIGHT + dt.timedelta(days=nights[key])).isoformat()
            results.append(run_recipe(name, args.catalog, Path(workdirs[key].name), night, args.target_kept,
                                      args.max_samples))
            print(f"done {name}: {results[-1]['cpu_minutes']} CPU min, {results[-1]['stop']}", file=sys.stderr,
                  flush=True)
            if args.json:  # after every recipe, so a long sweep cut short keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    finally:
        for workdir in workdirs.values():
            workdir.cleanup()
    print_table(results, args.catalog)


if __name__ == "__main__":
    main()
