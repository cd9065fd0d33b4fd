"""Choose the ``unknown-words`` wordfreq threshold by measurement.

For each Zipf threshold it prints:

- real pass rate: the share of real held-out descriptions (``split == "val"``) with no
  invented word, judged against English + the vocabulary of the *training* records only
  (so their new names are not given away), and the same for the descriptions that are
  new in the 2021 snapshot judged against the 2020 catalog (a nightly refresh);
- invented catch rate: the share of spliced pseudo-words that the lexicon flags. A
  bootstrapped BPE model invents words by gluing sub-word pieces of real words
  ("gradu" + "kome"); the bench makes such words the same way (a prefix of one catalog
  word + a suffix of another, each 2+ letters, not a catalog word), lowercase and as
  mid-sentence capitalised names.

    .venv/bin/python bench/bench_lexicon.py [--catalog CSV] [--previous CSV]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.ingest import IngestSettings, ingest  # noqa: E402
from generator.curate.lexicon import Lexicon, judged_words, tokens  # noqa: E402
from generator.quality import catalog_records  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
THRESHOLDS = (0.0, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def ingest_records(csv: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as out:
        ingest(str(csv), out, IngestSettings())
        return catalog_records(out)


def spliced_words(records: list[dict], lexicon_words: set[str], count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = sorted({w.lower() for r in records for t, _ in tokens(r["description"]) for w in judged_words(t)
                    if w.isalpha() and len(w) >= 5})
    made: set[str] = set()
    while len(made) < count:
        a, b = rng.choice(words), rng.choice(words)
        word = a[:rng.randint(2, len(a) - 2)] + b[rng.randint(2, len(b) - 2):]
        if len(word) >= 5 and word not in lexicon_words:
            made.add(word)
    return sorted(made)


def pass_rate(lexicon: Lexicon, descriptions: list[str]) -> tuple[float, list[str]]:
    failures = [d for d in descriptions if lexicon.unknown(d)]
    return 1 - len(failures) / len(descriptions), failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=SHARED / "netflix_titles_2021.csv")
    parser.add_argument("--previous", type=Path, default=SHARED / "netflix_titles_2020.csv")
    parser.add_argument("--strict-names", action="store_true",
                        help="judge mid-sentence capitalised words too (allow_new_names = false)")
    parser.add_argument("--show", type=int, default=5, help="failing real descriptions to print per threshold")
    args = parser.parse_args()
    if not args.catalog.is_file():
        sys.exit(f"catalog not found: {args.catalog} (the real snapshots live in ../shared/data/)")
    records = ingest_records(args.catalog)
    train = [r for r in records if r["split"] == "train"]
    val = [r["description"] for r in records if r["split"] == "val"]
    new = []
    previous = ingest_records(args.previous) if args.previous.is_file() else []
    if previous:
        seen = {r["description"] for r in previous}
        new = [r["description"] for r in records if r["description"] not in seen]
    catalog_words = Lexicon(records, min_zipf=99).catalog_words  # catalog vocabulary only
    invented = spliced_words(records, catalog_words, 2000)
    print(f"catalog {args.catalog.name}: {len(train)} train, {len(val)} val; {len(new)} descriptions new "
          f"since {args.previous.name if previous else '-'}; {len(invented)} spliced pseudo-words")
    print(f"{'min_zipf':>8} {'val pass':>9} {'new pass':>9} {'caught':>7} {'caught Names':>12}")
    for threshold in THRESHOLDS:
        lexicon = Lexicon(train, min_zipf=threshold, allow_new_names=not args.strict_names)
        val_rate, failures = pass_rate(lexicon, val)
        new_rate = pass_rate(Lexicon(previous, min_zipf=threshold, allow_new_names=not args.strict_names), new)[0] if new else float("nan")
        caught = sum(bool(lexicon.unknown(f"a {w} b")) for w in invented) / len(invented)
        caught_names = sum(bool(lexicon.unknown(f"a {w.title()} b")) for w in invented) / len(invented)
        print(f"{threshold:>8} {val_rate:>9.2%} {new_rate:>9.2%} {caught:>7.2%} {caught_names:>12.2%}")
        for description in failures[:args.show]:
            print(f"{'':>10}{lexicon.unknown(description)}  <- {description[:90]}")


if __name__ == "__main__":
    main()
