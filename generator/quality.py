"""Quality panel: how good a batch of descriptions is, measured against the real catalog."""

from __future__ import annotations

from pathlib import Path

from .artifacts import manifest_path, read_manifest



def catalog_records(ingest_dir: str | Path) -> list[dict]:
    """The ingest records of ``ingest_dir`` as dicts: show_id, type, title, genres, description, split."""
    import dataclasses

    from .ingest import read_catalog

    return [dataclasses.asdict(entry) for entry in read_catalog(ingest_dir)]


def distinct_2(texts: list[str]) -> float | None:
    """Distinct word bigrams / all word bigrams over the batch (1.0 = no phrase repeats)."""
    from .curate.words import ngrams, normalised_words

    grams = [gram for text in texts for gram in ngrams(normalised_words(text), 2)]
    return round(len(set(grams)) / len(grams), 4) if grams else None


class SharedRuns:
    """Longest run of consecutive words a text shares with any catalog description (its novelty)."""

    def __init__(self, descriptions: list[str]):
        from .curate.words import normalised_words

        self.words: list[str | None] = []
        for description in descriptions:
            self.words.extend(normalised_words(description))
            self.words.append(None)  # a run never crosses two descriptions
        self.unigrams = set(self.words) - {None}
        self.bigrams = set(zip(self.words, self.words[1:]))
        self.trigrams: dict[tuple, list[int]] = {}
        for position, gram in enumerate(zip(self.words, self.words[1:], self.words[2:])):
            if None not in gram:
                self.trigrams.setdefault(gram, []).append(position)

    def longest(self, text: str) -> int:
        from .curate.words import normalised_words

        words = normalised_words(text)
        best = 0
        if any(w in self.unigrams for w in words):
            best = 1
        if any(g in self.bigrams for g in zip(words, words[1:])):
            best = 2
        for i, gram in enumerate(zip(words, words[1:], words[2:])):
            for position in self.trigrams.get(gram, ()):
                k = 3
                while i + k < len(words) and self.words[position + k] == words[i + k]:
                    k += 1
                best = max(best, k)
        return best


MIN_PER_CLASS = 10


def realism_classifier(C: float = 10.0, class_weight=None):
    """The classifier that tells generated from real descriptions: one home for its features.

    Logistic regression on TF-IDF word 1-2-grams and cased character 2-4-grams of
    ``^text$`` (see ``marked``), used by the panel's two-sample test and the realism rule.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        # Case and punctuation kept, across word boundaries: ". A", "n, t" tell word order and sentence shape.
        ("chars", TfidfVectorizer(analyzer="char", ngram_range=(2, 4), lowercase=False, sublinear_tf=True)),
    ])
    return make_pipeline(features, LogisticRegression(C=C, max_iter=2000, class_weight=class_weight))


def marked(texts: list[str]) -> list[str]:
    """"^" and "$" mark where a text starts and ends, so character n-grams see how it opens and closes."""
    return [f"^{text}$" for text in texts]


def classifier_two_sample_test(published: list[str], real: list[str], seed: int = 0, folds: int = 5) -> dict:
    """Can a classifier tell published from real held-out descriptions? 0.5 = indistinguishable.

    ``realism_classifier``, classes balanced by sampling the larger down to the smaller,
    cross-validated accuracy.
    """
    import random

    n = min(len(published), len(real))
    if n < MIN_PER_CLASS:
        return {"accuracy": None, "reason": f"needs {MIN_PER_CLASS}+ texts of each (published {len(published)}, "
                                            f"real held-out {len(real)})"}
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = random.Random(seed)
    texts = marked(rng.sample(published, n) + rng.sample(real, n))
    labels = [1] * n + [0] * n
    splits = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    scores = cross_val_score(realism_classifier(), texts, labels, cv=splits, scoring="accuracy")
    return {"accuracy": round(float(scores.mean()), 4), "std": round(float(scores.std()), 4), "per_class": n,
            "folds": len(scores)}


def title_panel(published: list[dict], rejected: dict | None) -> dict | None:
    """The titles of a batch: how many carry one, the share of distinct ones (case and punctuation
    ignored, as ``title-repeat`` compares them) and what the title rules rejected. None when no
    sample has a title and no title rule rejected any (an untitled model)."""
    from .curate.titles import TITLE_RULES, READER_RULE, title_key

    rejected = {rule: count for rule, count in (rejected or {}).items() if rule in (*TITLE_RULES, READER_RULE)}
    keys = [title_key(record["title"]) for record in published if record.get("title")]
    if not keys and not any(rejected.values()):
        return None
    return {"titled": len(keys), "of": len(published),
            "distinct_share": round(len(set(keys)) / len(keys), 4) if keys else None,
            "copies_rejected": rejected.get("title-copy", 0),
            "invented_rejected": rejected.get("title-invented-word", 0),
            "rejected": rejected}


def _median(values: list[float]) -> float | None:
    import statistics

    return round(statistics.median(values), 2) if values else None


def quality_panel(samples_jsonl: str | Path, ingest_dir: str | Path, kept_jsonl: str | Path | None = None,
                  fluency_order: int = 3) -> dict:
    """The quality figures of a batch: invented words, per-rule kept rates, distinct-2, novelty,
    fluency, realism and titles. ``published`` is the kept file when given, else the samples themselves."""
    from .artifacts import read_jsonl
    from .curate.fluency import FluencyJudge
    from .curate.lexicon import Lexicon

    records = catalog_records(ingest_dir)
    sample_records = list(read_jsonl(samples_jsonl)) if samples_jsonl else []
    kept_records = list(read_jsonl(kept_jsonl)) if kept_jsonl else []
    samples = [record["text"] for record in sample_records]
    kept = [record["text"] for record in kept_records]
    published = kept if kept_jsonl else samples
    real = [r["description"] for r in records if r.get("split") == "val"]
    lexicon = Lexicon(records)

    def invented_rate(texts: list[str]) -> float | None:
        return round(sum(bool(lexicon.unknown(t)) for t in texts) / len(texts), 4) if texts else None

    curation, rejected = None, None
    if kept_jsonl:
        if manifest_path(kept_jsonl).is_file():
            manifest = read_manifest(kept_jsonl, "curate")
            total, rejected = manifest.get("input") or 0, manifest.get("rejected", {})
            curation = {"kept_rate": manifest.get("kept_rate"),
                        "rejected_share": {rule: round(count / total, 4) if total else 0.0
                                           for rule, count in manifest.get("rejected", {}).items()}}
    runs = SharedRuns([r["description"] for r in records])
    shared = [runs.longest(t) for t in published]
    judge = FluencyJudge(records, fluency_order)
    return {
        "samples": len(samples),
        "published": len(published),
        "invented_rate": {"before": invented_rate(samples), "after": invented_rate(kept) if kept_jsonl else None},
        "curation": curation,
        "distinct_2": distinct_2(published),
        "novelty": {"longest_shared_run_median": _median(shared), "longest_shared_run_max": max(shared, default=None)},
        "fluency": {"order": fluency_order, "published_median_perplexity": _median([judge.perplexity(t) for t in published]),
                    "real_held_out_median_perplexity": _median(judge.held_out)},
        "realism": classifier_two_sample_test(published, real),
        "titles": title_panel(kept_records if kept_jsonl else sample_records, rejected),
    }
