"""The realism rule: after the per-sample rules, drop the candidates that look most machine-written.

A classifier (``quality.realism_classifier``) learns tonight's candidates against the
catalog's *training* descriptions; each candidate is scored by the fold model that did not
see it (out-of-fold), and the night keeps the ``realism_keep_share`` most real-looking.
This is discriminator rejection sampling: a small model writes some descriptions that read
like the catalog and many that do not, and a reader should get the former. The quality
panel's realism test uses the held-out split, which this rule never sees.

It judges the night's candidates together, so unlike the per-sample rules a candidate kept
in one round may be dropped when a later round brings better ones.
"""

from __future__ import annotations

import math
import random

from .settings import CurateSettings

FOLDS = 5
MIN_CANDIDATES = 20  # fewer, and five folds leave the classifier too little to learn from


def reference_descriptions(catalog: list, limit: int, seed: int = 0) -> list[str]:
    """The catalog's training descriptions, a seeded sample of at most ``limit``."""
    train = [entry.description for entry in catalog if entry.split == "train"]
    return sorted(random.Random(seed).sample(train, limit)) if len(train) > limit else train


def realism_scores(candidates: list[str], reference: list[str], seed: int = 0) -> list[float]:
    """Out-of-fold probability that each candidate is a real description (seeded folds: repeatable)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from ..quality import marked, realism_classifier

    labels = [0] * len(candidates) + [1] * len(reference)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    # Balanced weights: the reference usually outnumbers tonight's candidates ten to one.
    model = realism_classifier(C=1.0, class_weight="balanced")
    proba = cross_val_predict(model, marked(candidates + reference), labels, cv=folds, method="predict_proba")
    return [float(p) for p in proba[:len(candidates), 1]]


def apply_realism(kept: list[dict], catalog: list, settings: CurateSettings) -> tuple[list[dict], list[dict], dict]:
    """(kept, dropped with reason and detail, summary) after the realism rule; input order is kept."""
    share = settings.realism_keep_share
    if share >= 1.0:
        return kept, [], {"on": False}
    reference = reference_descriptions(catalog, settings.realism_reference)
    if len(kept) < MIN_CANDIDATES or len(reference) < MIN_CANDIDATES:
        return kept, [], {"on": True, "skipped": f"needs {MIN_CANDIDATES}+ candidates and training descriptions "
                                                 f"(candidates {len(kept)}, training {len(reference)})"}
    scores = realism_scores([record["text"] for record in kept], reference)
    keep = math.ceil(share * len(kept))
    # Highest score first; ties by input order, so the cut is repeatable.
    ranked = sorted(range(len(kept)), key=lambda i: (-scores[i], i))
    chosen = set(ranked[:keep])
    cut = scores[ranked[keep - 1]]
    survivors, dropped = [], []
    for i, record in enumerate(kept):
        record["realism"] = round(scores[i], 4)
        if i in chosen:
            survivors.append(record)
        else:
            record["reason"] = "realism"
            record["detail"] = (f"reads machine-written: P(real) {scores[i]:.2f}, below tonight's cut {cut:.2f} "
                                f"(keeps the {share:.0%} most real-looking)")
            dropped.append(record)
    median = sorted(scores)[len(scores) // 2]
    return survivors, dropped, {"on": True, "candidates": len(kept), "kept": len(survivors), "cut": round(cut, 4),
                                "median_score": round(median, 4), "reference": len(reference)}
