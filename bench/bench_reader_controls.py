"""Controls for the reader (generator/curate/reader.py): does its score tell real text from broken text?

An instrument that flatters is worse than none. With the real reader (SmolLM2-135M, the file
``python -m generator fetch-model`` fetches), on real 2021 Netflix descriptions:

- ``reference``: N real descriptions, the stand-in for the night's held-out text: they set the
  cut (the 10th percentile of their SLOR) and real text's 90th percentile of NLL;
- ``real``: N *other* real descriptions (so real text's share within the cut is measured, not given;
  its AUC is against the reference: real against real);
- ``shuffled``: the same N with their words in a random order;
- ``replaced 20%``: the same N with a fifth of their words replaced by words drawn at random
  from the catalog's descriptions;
- ``one invented word``: the same N with one word replaced by a spliced pseudo-word (the start of
  one catalog word and the end of another, in no English list: what a small BPE model invents).

For each it prints the median SLOR and NLL per token, the share that reads within real text's
90 % (SLOR at least the reference's 10th percentile, i.e. the night's cut; NLL at most the
reference's 90th percentile) and the AUC of real against it (0.5 = the score cannot tell them
apart), by SLOR and by NLL, and a rare real word against an invented one in the same sentence.

    .venv/bin/python bench/bench_reader_controls.py [--texts 200] [--threads 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.curate.reader import PREFIX, auc, percentile, reading  # noqa: E402
from generator.curate.words import normalised_words  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PAIR = ("A young woman moves to the city and falls in with a band of glassblowers.",
        "A young woman moves to the city and falls in with a band of gradukome.")


def real_descriptions(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return sorted({row["description"].strip() for row in csv.DictReader(handle) if row.get("description")})


def spliced_word(rng: random.Random, pool: list[str], known) -> str:
    while True:
        a, b = rng.choice(pool), rng.choice(pool)
        word = a[:rng.randint(2, len(a) - 2)] + b[rng.randint(2, len(b) - 2):]
        if len(word) >= 5 and not known(word):
            return word


def controls(texts: list[str], pool: list[str], seed: int = 0) -> dict[str, list[str]]:
    import wordfreq

    rng = random.Random(seed)

    def shuffle(text):
        words = text.split()
        rng.shuffle(words)
        return " ".join(words)

    def replace(text, share=0.2):
        words = text.split()
        for i in rng.sample(range(len(words)), max(1, round(share * len(words)))):
            words[i] = rng.choice(pool)
        return " ".join(words)

    def invent(text):
        words = text.split()
        i = rng.randrange(len(words))
        tail = "".join(ch for ch in words[i] if not ch.isalnum() and ch not in "'’")[-1:]
        words[i] = spliced_word(rng, pool, lambda w: wordfreq.word_frequency(w, "en") > 0) + tail
        return " ".join(words)

    return {"shuffled": [shuffle(t) for t in texts], "replaced 20%": [replace(t) for t in texts],
            "one invented word": [invent(t) for t in texts]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=SHARED / "netflix_titles_2021.csv")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not args.catalog.is_file():
        sys.exit(f"catalog not found: {args.catalog} (the real snapshots live in ../shared/data/)")
    from generator.models.llama import model_file
    from generator.models.llama.score import LlamaScorer

    everything = real_descriptions(args.catalog)
    chosen = random.Random(0).sample(everything, 2 * args.texts)
    reference, real = chosen[:args.texts], chosen[args.texts:]
    pool = sorted({w for t in everything for w in normalised_words(t) if w.isalpha() and len(w) >= 5})
    sets = {"reference": reference, "real": real, **controls(real, pool)}

    started = time.perf_counter()
    scorer = LlamaScorer(model_file.require_model(), threads=args.threads, batch_size=args.batch_size)
    loaded = time.perf_counter()
    scores, tokens, reading_seconds = {}, 0, 0.0
    for name, texts in [*sets.items(), ("pair", list(PAIR))]:
        began = time.perf_counter()
        logprobs = scorer.token_logprobs(texts, PREFIX)
        reading_seconds += time.perf_counter() - began if name != "reference" else 0.0  # reference also traces
        tokens += sum(len(lp) for lp in logprobs) if name != "reference" else 0
        scores[name] = [reading(t, float(lp.sum()), len(lp)) for t, lp in zip(texts, logprobs)]

    cut = percentile([r.score for r in scores["reference"]], 10)
    nll_bar = percentile([r.nll for r in scores["reference"]], 90)
    real_slor, real_nll = [r.score for r in scores["real"]], [r.nll for r in scores["real"]]
    # Each control against the real text it was made from; real text against the reference (other real text).
    versus = {name: (real_slor, real_nll) for name in sets}
    versus["real"] = ([r.score for r in scores["reference"]], [r.nll for r in scores["reference"]])
    rows = {}
    for name in sets:
        slor, nll = [r.score for r in scores[name]], [r.nll for r in scores[name]]
        rows[name] = {"median_slor": round(percentile(slor, 50), 3), "median_nll": round(percentile(nll, 50), 3),
                      "within_by_slor": round(sum(s >= cut for s in slor) / len(slor), 3),
                      "within_by_nll": round(sum(v <= nll_bar for v in nll) / len(nll), 3),
                      "auc_slor": None if name == "reference" else round(auc(versus[name][0], slor), 3),
                      # NLL: lower is better, so real "beats" a text when its NLL is lower.
                      "auc_nll": None if name == "reference" else round(auc([-v for v in versus[name][1]],
                                                                            [-v for v in nll]), 3)}
    rare, invented = scores["pair"]
    result = {"texts": args.texts, "catalog": args.catalog.name, "cut_slor": round(cut, 3),
              "nll_90th": round(nll_bar, 3), "rows": rows,
              "pair": {"glassblowers": {"slor": round(rare.score, 3), "nll": round(rare.nll, 3)},
                       "gradukome": {"slor": round(invented.score, 3), "nll": round(invented.nll, 3)}},
              "load_seconds": round(loaded - started, 1),
              "tokens_per_second": round(tokens / reading_seconds, 1) if reading_seconds else None}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{args.texts} texts per set from {args.catalog.name}; the cut (reference's 10th percentile of SLOR) "
          f"{cut:.2f}, reference's 90th percentile of NLL {nll_bar:.2f}")
    print(f"{'set':<18} {'SLOR md':>8} {'NLL md':>7} {'within (SLOR)':>14} {'within (NLL)':>13} "
          f"{'AUC SLOR':>9} {'AUC NLL':>8}")
    for name, row in rows.items():
        print(f"{name:<18} {row['median_slor']:>8.2f} {row['median_nll']:>7.2f} {row['within_by_slor']:>14.0%} "
              f"{row['within_by_nll']:>13.0%} {row['auc_slor'] if row['auc_slor'] is not None else '-':>9} "
              f"{row['auc_nll'] if row['auc_nll'] is not None else '-':>8}")
    print(f"rare real word vs invented, same sentence: glassblowers SLOR {rare.score:.2f} NLL {rare.nll:.2f}; "
          f"gradukome SLOR {invented.score:.2f} NLL {invented.nll:.2f}")
    print(f"model load {loaded - started:.1f} s; reading {result['tokens_per_second']} tokens/s "
          f"({args.threads} threads, batch {args.batch_size})")


if __name__ == "__main__":
    main()
