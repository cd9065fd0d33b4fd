"""Quality sweep: for each recipe, run ingest -> bootstrap -> train -> generate -> curate and print the panel.

A recipe is a model shape, a tokenizer vocabulary size, training steps and learning rate,
and sampling temperature and top-p. Each runs in its own temporary workdir through the
pipeline's step functions (generator.pipeline) with load_config(profile=..., overrides=...),
and is scored by generator.quality.quality_panel against the catalog's held-out descriptions.
One row per recipe, CPU minutes (this process, all threads) first:

    .venv/bin/python bench/bench_quality.py [--catalog CSV] [--recipes default|smoke|NAME,NAME] [--samples N]

The default sweep is sized for about 15 CPU minutes on the bundled catalog; ``smoke`` checks
the harness in about a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.config import load_config  # noqa: E402
from generator.night import night_paths  # noqa: E402
from generator.pipeline import (step_curate, step_generate, step_ingest, step_promote,  # noqa: E402
                                step_train)
from generator.quality import quality_panel  # noqa: E402

NIGHT = "2026-01-01"
# name: (profile, {model overrides}, {train overrides}, {generate overrides})
RECIPES = {
    "smoke": ("test", {}, {"steps": 20}, {"temperature": 0.8, "top_p": 0.9}),
    "tiny-300": ("tiny", {}, {"steps": 300, "learning_rate": 0.002}, {"temperature": 0.8, "top_p": 0.9}),
    "tiny-300-cool": ("tiny", {}, {"steps": 300, "learning_rate": 0.002}, {"temperature": 0.6, "top_p": 0.8}),
    "tiny-600": ("tiny", {}, {"steps": 600, "learning_rate": 0.002}, {"temperature": 0.8, "top_p": 0.9}),
    "tiny-2k-vocab-600": ("tiny", {"vocab_size": 2048}, {"steps": 600, "learning_rate": 0.002},
                          {"temperature": 0.8, "top_p": 0.9}),
    "small-400": ("small", {}, {"steps": 400, "learning_rate": 0.001, "batch_size": 2},
                  {"temperature": 0.8, "top_p": 0.9}),
    # A byte-level BPE large enough that (nearly) every catalog word is one token.
    "tiny-words-300": ("tiny", {"vocab_size": 12288}, {"steps": 300, "learning_rate": 0.002},
                       {"temperature": 0.8, "top_p": 0.9}),
    "tiny-words-600": ("tiny", {"vocab_size": 12288}, {"steps": 600, "learning_rate": 0.002},
                       {"temperature": 0.8, "top_p": 0.9}),
    "tiny-words-600-cool": ("tiny", {"vocab_size": 12288}, {"steps": 600, "learning_rate": 0.002},
                            {"temperature": 0.7, "top_p": 0.85}),
    "tiny-words-1200": ("tiny", {"vocab_size": 12288}, {"steps": 1200, "learning_rate": 0.002},
                        {"temperature": 0.8, "top_p": 0.9}),
}
SWEEPS = {"default": ["tiny-300", "tiny-300-cool", "tiny-600", "tiny-2k-vocab-600", "small-400"], "smoke": ["smoke"],
          "words": ["tiny-300", "tiny-words-300", "tiny-600", "tiny-words-600", "tiny-words-600-cool",
                    "tiny-words-1200"]}


def run_recipe(name: str, catalog: str, samples: int, workdir: Path) -> dict:
    profile, model, train, generate = RECIPES[name]
    config = load_config(profile=profile, environ={}, overrides={
        "paths": {"workdir": str(workdir)}, "model": model, "train": {**train, "save_every": train["steps"]},
        "generate": {**generate, "samples": samples, "progress": False}})
    started = time.process_time()
    step_ingest(config, NIGHT, catalog)
    step_train(config, NIGHT)
    step_promote(config, NIGHT)
    step_generate(config, NIGHT)
    step_curate(config, NIGHT)
    cpu_minutes = (time.process_time() - started) / 60
    paths = night_paths(config, NIGHT)
    panel = quality_panel(paths.samples, paths.ingest, paths.kept)
    return {"recipe": name, "cpu_minutes": round(cpu_minutes, 2), **panel}


def row(result: dict) -> str:
    realism = result["realism"]["accuracy"]
    fluency = result["fluency"]
    return (f"{result['recipe']:<20} {result['cpu_minutes']:>6.2f} {result['samples']:>5} "
            f"{(result['curation'] or {}).get('kept_rate', 0):>6.0%} "
            f"{result['invented_rate']['before']:>7.0%} {result['invented_rate']['after'] or 0:>6.0%} "
            f"{result['distinct_2'] or 0:>6.3f} {result['novelty']['longest_shared_run_median'] or 0:>5} "
            f"{result['novelty']['longest_shared_run_max'] or 0:>4} "
            f"{fluency['published_median_perplexity'] or 0:>8.0f} {fluency['real_held_out_median_perplexity'] or 0:>6.0f} "
            f"{'-' if realism is None else f'{realism:.2f}':>7}")


HEADER = (f"{'recipe':<20} {'cpu_m':>6} {'smpl':>5} {'kept':>6} {'inv_in':>7} {'inv_out':>6} {'dist2':>6} "
          f"{'run_md':>5} {'max':>4} {'ppl_pub':>8} {'ppl_re':>6} {'realism':>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default=str(ROOT / "sample_data" / "catalog.csv"))
    parser.add_argument("--recipes", default="default", help=f"a sweep ({', '.join(SWEEPS)}) or recipe names, "
                        f"comma-separated, from: {', '.join(RECIPES)}")
    parser.add_argument("--samples", type=int, default=200, help="samples generated per recipe")
    parser.add_argument("--json", metavar="FILE", help="also write every panel as JSON")
    args = parser.parse_args()
    names = SWEEPS.get(args.recipes) or [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    results = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"bench-quality-{name}-") as workdir:
            results.append(run_recipe(name, args.catalog, args.samples, Path(workdir)))
        print(f"done {name}: {results[-1]['cpu_minutes']} CPU min", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"catalog {args.catalog}; kept = curate kept rate; inv_in/out = samples with an invented word before/after "
          "curation; run_md/max = longest run of words shared with the catalog; ppl = median per-word perplexity "
          "(published, real held-out); realism = classifier accuracy published vs held-out (0.5 = indistinguishable)")
    print(HEADER)
    for result in results:
        print(row(result))


if __name__ == "__main__":
    main()
