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
    ``^text$`` (see ``marked``), the panel's two-sample test.
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


def reader_figures(reader, published: list[str], real: list[str], candidates: list[float],
                   generator_base_digest: str | None = None) -> dict:
    """The reader's view of the batch: median SLOR of the published and of the real held-out
    descriptions (and of every candidate the night's reader scored), the share of the published
    within real text's 90 % (SLOR at least the real 10th percentile), and the AUC of real against
    published (0.5 = the reader cannot tell them apart; 1 = it always prefers real text)."""
    from .curate.reader import SHARED_BASE_NOTE, auc, percentile, shares_base

    if reader is None:
        return {"on": False}
    if not published and not candidates:  # nothing reached the reader tonight: the model need not even load
        return {"on": True, "published": 0, "candidates": 0}
    readings = reader.read(published + real)
    mine = [readings[t].score for t in published]
    theirs = [readings[t].score for t in real]
    within = None
    if mine and theirs:
        bar = percentile(theirs, 10)
        within = round(sum(score >= bar for score in mine) / len(mine), 4)
    area = auc(theirs, mine)
    shared = shares_base(reader.digest, generator_base_digest)
    return {"on": True, "model": reader.label, "published": len(mine), "real": len(theirs),
            "published_median": _median(mine), "real_median": _median(theirs),
            "candidates_median": _median(candidates), "candidates": len(candidates),
            "published_median_nll": _median([readings[t].nll for t in published]),
            "real_median_nll": _median([readings[t].nll for t in real]),
            "published_within_real_90": within, "auc": None if area is None else round(area, 4),
            "shares_base": shared, "note": SHARED_BASE_NOTE if shared else None}


def _candidate_scores(kept_jsonl) -> list[float]:
    """The reader's score of every candidate it read tonight: the kept ones and those it rejected."""
    import math

    from .artifacts import read_jsonl
    from .curate.stage import default_rejected_path

    scores = [r.get("reader_score") for r in read_jsonl(kept_jsonl)]
    rejected = default_rejected_path(kept_jsonl)
    if rejected.is_file():
        scores += [r.get("reader_score") for r in read_jsonl(rejected)]
    return [s for s in scores if isinstance(s, (int, float)) and math.isfinite(s)]


def quality_panel(samples_jsonl: str | Path, ingest_dir: str | Path, kept_jsonl: str | Path | None = None,
                  reader=None, generator_base_digest: str | None = None, held_out_limit: int = 400) -> dict:
    """The quality figures of a batch: invented words, per-rule kept rates, distinct-2, novelty,
    the reader's figures (when given a :class:`generator.curate.reader.Reader`: the night's own, whose
    cache already holds tonight's scores), realism and titles. ``published`` is the kept file when given,
    else the samples themselves."""
    from .artifacts import read_jsonl
    from .curate.lexicon import Lexicon
    from .curate.reader import held_out_descriptions
    from .ingest import read_catalog

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
    real_read = held_out_descriptions(read_catalog(ingest_dir), held_out_limit) if reader is not None else []
    return {
        "samples": len(samples),
        "published": len(published),
        "invented_rate": {"before": invented_rate(samples), "after": invented_rate(kept) if kept_jsonl else None},
        "curation": curation,
        "distinct_2": distinct_2(published),
        "novelty": {"longest_shared_run_median": _median(shared), "longest_shared_run_max": max(shared, default=None),
                    # The RAVEN-style check (McCoy et al. 2023): published text sharing an 8-word run with the catalog.
                    "share_with_8_word_run": round(sum(s >= 8 for s in shared) / len(shared), 4) if shared else None},
        "reader": reader_figures(reader, published, real_read,
                                 _candidate_scores(kept_jsonl) if kept_jsonl and reader is not None else [],
                                 generator_base_digest),
        "realism": classifier_two_sample_test(published, real),
        "titles": title_panel(kept_records if kept_jsonl else sample_records, rejected),
    }


# --- the night's panel -----------------------------------------------------------------------------

def reader_cache(config) -> Path:
    """The reader's scores, kept across rounds and nights: ``<workdir>/reader-cache/``."""
    return Path(config.paths.workdir).expanduser() / "reader-cache"


def generator_base_digest(config) -> str | None:
    """The sha256 of the generator's base weights file, when its base model's manifest names one: a
    ``sha256`` field, or a ``path`` that is a single file (a GGUF base). A GPT-2 base (a folder) has none."""
    from .base_model import model_path
    from .curate.reader import model_digest
    from .errors import UserError

    if config.model.family == "llama":  # the base is a GGUF file: its digest, as the reader takes its own
        from .models.llama.model_file import base_file

        try:
            return base_file(config.model.gguf_path)[1]
        except UserError:
            return None
    try:
        manifest = read_manifest(model_path(config.paths.models_root, config.model.name))
    except (UserError, ValueError, OSError):
        return None
    if isinstance(manifest.get("sha256"), str):
        return manifest["sha256"]
    path = Path(str(manifest.get("path") or ""))
    return model_digest(path) if manifest.get("path") and path.is_file() else None


def night_panel(config, night: str) -> dict:
    """The quality panel of what the night will publish, read by the night's own reader (through its cache)."""
    from .curate.reader import Reader
    from .night import night_paths

    paths = night_paths(config, night)
    reader = Reader(config.curate, reader_cache(config)) if config.curate.reader else None
    return quality_panel(paths.samples, paths.ingest, paths.kept, reader=reader,
                         generator_base_digest=generator_base_digest(config) if reader else None,
                         held_out_limit=config.curate.reader_held_out)
