"""Benchmark: render 100k kept descriptions into the gallery, then render the same input again.

    python bench/bench_render.py [--count 100000] [--catalog PATH] [--keep DIR]

The descriptions are word-level Markov text built from the real catalog
(../shared/data/netflix_titles_2021.csv; the bundled sample catalog when it is absent),
with the catalog's own mix of types and main genres, so pages and the search index have
realistic sizes. Runs render() in this process:

  1. first render into an empty folder (every file written),
  2. the same input again (an unchanged night: must write nothing),
  3. the same night with 1% of the descriptions replaced (what an incremental night writes).

render() uses one worker process per core for the permalink pages (render.workers = 0);
"cpu s" counts this process and its workers.

Target: >= 5,000 pages/s on the first render. Figures are printed last.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL_CATALOG = ROOT.parent / "shared" / "data" / "netflix_titles_2021.csv"
SAMPLE_CATALOG = ROOT / "sample_data" / "catalog.csv"
TARGET_PAGES_PER_SECOND = 5000
NIGHT = "2026-11-25"


def read_catalog(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in csv.DictReader(handle)]
    return [r for r in rows if r.get("description", "").strip()]


def synthetic_samples(rows: list[dict], count: int, seed: int = 7) -> list[dict]:
    """``count`` distinct descriptions: first-order word Markov text, 12-60 words, ending in a full stop."""
    rng = random.Random(seed)
    chain: dict = defaultdict(list)
    for row in rows:
        words = [None, *row["description"].split(), None]
        for a, b in zip(words, words[1:]):
            chain[a].append(b)
    samples, seen = [], set()
    while len(samples) < count:
        word, words = None, []
        while len(words) < 60:
            word = rng.choice(chain[word])
            if word is None:
                break
            words.append(word)
        text = " ".join(words).rstrip(",;:")
        if len(words) < 12 or text in seen:
            continue
        if not text.endswith((".", "!", "?")):
            text += "."
        seen.add(text)
        row = rng.choice(rows)
        genre = row.get("listed_in", "").split(",")[0].strip() or None
        samples.append({"text": text, "type": row.get("type") or None, "genre": genre, "terminated": True,
                        "logprob": round(-rng.random() * 3, 4)})
    return samples


def write_kept(path: Path, samples: list[dict]) -> None:
    from generator.curate import sample_id

    with path.open("w", encoding="utf-8") as handle:
        for record in samples:
            handle.write(json.dumps({**record, "id": sample_id(record["text"])}, ensure_ascii=False) + "\n")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (render's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run(label: str, kept: Path, site: Path, settings) -> dict:
    from generator.render import render

    started, cpu = time.perf_counter(), cpu_seconds()
    manifest = render(kept, site, settings, night=NIGHT, report={"night": NIGHT})
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"run": label, "seconds": seconds, "cpu": cpu, "pages": manifest["pages"], "written": manifest["written"],
            "unchanged": manifest["unchanged"], "removed": manifest["removed"], "bytes": manifest["bytes"],
            "pages_per_s": manifest["pages"] / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="kept descriptions to render")
    parser.add_argument("--catalog", type=Path, default=REAL_CATALOG if REAL_CATALOG.is_file() else SAMPLE_CATALOG)
    parser.add_argument("--keep", type=Path, help="render here and keep the site (default: a temp folder, removed)")
    parser.add_argument("--tmp", type=Path, help="folder for the temp work (default: the system's; /dev/shm takes the disk out)")
    args = parser.parse_args()

    from generator.render import RenderSettings

    rows = read_catalog(args.catalog)
    print(f"catalog: {args.catalog} ({len(rows):,} descriptions); building {args.count:,} samples…", flush=True)
    samples = synthetic_samples(rows, args.count)
    work = Path(tempfile.mkdtemp(prefix="bench_render_", dir=args.tmp))
    try:
        kept = work / "kept.jsonl"
        write_kept(kept, samples)
        site = args.keep or work / "site"
        if args.keep and site.exists():
            shutil.rmtree(site)
        settings = RenderSettings(base_url="https://gallery.example.org")
        results = [run("first render (empty folder)", kept, site, settings)]
        results.append(run("same input again", kept, site, settings))
        changed = list(samples)
        replacements = synthetic_samples(rows, len(samples) // 100, seed=99)
        for i, new in zip(range(0, len(changed), 100), replacements):
            changed[i] = new
        write_kept(kept, changed)
        results.append(run("1% of descriptions replaced", kept, site, settings))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"{'run':<30} {'seconds':>8} {'cpu s':>7} {'pages':>9} {'written':>9} {'unchanged':>10} {'removed':>8} "
          f"{'MB':>8} {'pages/s':>9}")
    for r in results:
        print(f"{r['run']:<30} {r['seconds']:>8.2f} {r['cpu']:>7.2f} {r['pages']:>9,} {r['written']:>9,} "
              f"{r['unchanged']:>10,} {r['removed']:>8,} {r['bytes'] / 1e6:>8.1f} {r['pages_per_s']:>9,.0f}")
    first, again, partial = results
    print()
    print(f"descriptions: {args.count:,}; output under {work}; peak RSS {peak_mb:,.0f} MB; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"first render: {first['pages']:,} files, {first['bytes'] / 1e6:,.1f} MB in {first['seconds']:.1f} s")
    print(f"second render of the same input: wrote {again['written']} files, removed {again['removed']} "
          f"({again['seconds']:.1f} s)")
    print(f"1% replaced: wrote {partial['written']:,} of {partial['pages']:,} files "
          f"({partial['written'] / partial['pages']:.1%}), removed {partial['removed']:,}")
    ok = first["pages_per_s"] >= TARGET_PAGES_PER_SECOND
    print(f"pages/s of CPU time (first render, all processes): {first['pages'] / first['cpu']:,.0f}")
    print(f"pages/s (first render, wall clock): {first['pages_per_s']:,.0f} (target >= {TARGET_PAGES_PER_SECOND:,}: "
          f"{'met' if ok else 'NOT met'})")
    return 0 if ok and again["written"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
