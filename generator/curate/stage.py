"""The curate stage: every sample through the rules, in order; kept and rejected files and the manifest."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Iterable

from ..artifacts import atomic_open, check_output_file, read_jsonl, write_jsonl, write_manifest
from ..console import progress
from ..errors import UserError
from ..redact import public_label
from .indexes import Blocklist, CopyIndex, NearDuplicateIndex, check_blocklist, check_copy, load_blocklist, shingles
from .rules import check_degenerate, check_length, check_malformed, check_unknown_words, check_unterminated
from .settings import RULES, CurateSettings
from .titles import TitleJudge, TitleReader, apply_title_reader, load_known_titles
from .words import normalised_words, sample_id

log = logging.getLogger(__name__)


def default_rejected_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.rejected.jsonl")


def read_history(history_path: str | Path | None) -> list[dict]:
    """Descriptions (and their titles) published on earlier nights; a missing file means none yet (first night)."""
    if not history_path or not Path(history_path).is_file():
        return []
    return list(read_jsonl(history_path))


class Curator:
    """The rules with their indexes: ``judge`` one sample at a time by the per-sample rules, in input order;
    then, for those that passed, ``near_duplicate`` against what is kept so far and ``keep``."""

    def __init__(self, catalog: list, settings: CurateSettings, blocklist: Blocklist,
                 history: Iterable[dict] = (), known_titles: Iterable[tuple[str, str]] = ()):
        """``catalog``: the ingested entries (title, description, split), as ``ingest.read_catalog`` gives them."""
        from .lexicon import Lexicon

        self.settings = settings
        self.copies = CopyIndex(catalog, settings.copy_ngram)
        records = [dataclasses.asdict(entry) for entry in catalog]
        self.lexicon = (Lexicon(records, settings.unknown_words_min_zipf, settings.allow_new_names,
                                settings.allow_new_compounds)
                        if settings.max_unknown_words >= 0 else None)
        self.near = NearDuplicateIndex(settings)
        self.blocklist = blocklist
        history = list(history)
        self.titles = TitleJudge(catalog, settings, self.lexicon, history, known_titles)
        for record in history:
            words = normalised_words(record["text"])
            night = record.get("night")
            label = f"a description published on {night}" if night else "a previously published description"
            self.near.add(label, shingles(words, settings.shingle_words))
        self.history_count = len(self.near)

    def judge(self, record: dict) -> tuple[str, str] | None:
        """``(reason, detail)`` of the first per-sample rule the sample fails, or None."""
        settings, text = self.settings, record["text"]
        detail = check_unterminated(record)
        if detail:
            return "unterminated", detail
        detail = check_length(text, settings)
        if detail:
            return "length", detail
        detail = check_malformed(text, settings)
        if detail:
            return "malformed", detail
        words = normalised_words(text)
        detail = check_degenerate(words, settings)
        if detail:
            return "degenerate", detail
        detail = self.lexicon and check_unknown_words(text, self.lexicon, settings.max_unknown_words)
        if detail:
            return "unknown-words", detail
        detail = check_copy(words, self.copies)
        if detail:
            return "copy", detail
        detail = check_blocklist(words, self.blocklist)
        if detail:
            return "blocklist", detail
        return self.titles.judge(record)

    def near_duplicate(self, record: dict) -> tuple[str, str] | None:
        """A near-duplicate of a description kept tonight or published before, or None."""
        found = self.near.find(shingles(normalised_words(record["text"]), self.settings.shingle_words))
        if found:
            label, similarity = found
            return "near-duplicate", f"Jaccard {similarity:.2f} with {label}"
        # Two candidates may share a title that neither repeated when the per-sample rules judged them.
        title = " ".join((record.get("title") or "").split())
        detail = title and self.titles.check_repeat(title, record["text"])
        return ("title-repeat", detail) if detail else None

    def keep(self, record: dict) -> None:
        self.near.add(f"kept sample {record['id']}", shingles(normalised_words(record["text"]), self.settings.shingle_words))
        self.titles.add(record, record["id"])


def rank(kept: list[dict], field: str) -> bool:
    """Order kept samples by a numeric field, highest first (ties and missing values keep input order).

    Adds ``rank`` (1 = best). Returns False, changing nothing, when no sample has the field.
    """
    def score(record: dict):
        value = record.get(field)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return value if numeric else None

    if not field or not any(score(r) is not None for r in kept):
        return False
    kept.sort(key=lambda r: (score(r) is None, -(score(r) or 0.0)))
    for position, record in enumerate(kept, start=1):
        record["rank"] = position
    return True


def curate(samples_path: str | Path, catalog: list, out_path: str | Path, settings: CurateSettings,
           history_path: str | Path | None = None, rejected_path: str | Path | None = None,
           catalog_label: str = "", reader_cache: str | Path | None = None, reader=None,
           title_reader: TitleReader | None = None) -> dict:
    """Run the curate stage; returns its manifest (also written as ``<out stem>.manifest.json``).

    ``catalog`` is the full ingested catalog (``ingest.read_catalog`` of the night's
    ingest folder: training and validation descriptions alike); ``catalog_label``
    names it in the manifest. ``history_path`` is optional JSONL of descriptions
    published on earlier nights (objects with ``text``, optionally ``night`` and ``title``).
    ``reader_cache``: where the reader keeps its scores (default ``reader-cache/`` beside
    the kept file); ``reader``: a :class:`generator.curate.reader.Reader` to use instead
    of the configured model (tests). ``title_reader``: a pretrained reader's verdict on the
    night's titles (``titles.TitleReader``); None leaves the ``title-reader`` rule off.
    """
    from ..lock import exclusive

    settings.validate()  # the loader validated a loaded config; this guards direct callers
    out_path = check_output_file(out_path)
    rejected_path = check_output_file(rejected_path or default_rejected_path(out_path), "--rejected")
    def make_reader():
        if reader is not None:
            return reader
        from .reader import Reader

        return Reader(settings, Path(reader_cache) if reader_cache else out_path.parent / "reader-cache")

    with exclusive(out_path, "kept file"):
        return _curate(samples_path, catalog, out_path, settings, history_path, rejected_path, catalog_label,
                       make_reader if settings.reader else None, title_reader)


def _curate(samples_path, catalog: list, out_path: Path, settings: CurateSettings, history_path, rejected_path: Path,
            catalog_label: str, make_reader, title_reader: TitleReader | None = None) -> dict:
    started = time.perf_counter()
    # Check the small inputs first; a bad samples line fails the stage mid-way, but
    # every write is atomic, so nothing is left behind.
    if not Path(samples_path).is_file():
        raise UserError(f"samples file not found: {samples_path}", "pass the JSONL written by the generate stage")
    history = read_history(history_path)
    blocklist = load_blocklist(settings.blocklist_file)
    known_titles = load_known_titles(settings.title_catalogs)

    curator = Curator(catalog, settings, blocklist, history, known_titles)
    rule = None
    counts = dict.fromkeys(RULES, 0)
    total = titled = 0
    # Rejected samples stream straight to disk; those that pass the per-sample rules stay in memory
    # for the near-duplicate check and the reader, then only the kept ones (for ranking).
    with atomic_open(rejected_path, "w") as rejected_file, progress(None, "curate", unit="sample") as bar:
        def reject(record: dict, verdict: tuple[str, str]) -> None:
            record["reason"], record["detail"] = verdict
            counts[record["reason"]] += 1
            rejected_file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")

        candidates = []
        for record in read_jsonl(samples_path):
            bar.update(1)
            total += 1
            titled += record.get("title") is not None
            record["id"] = sample_id(record["text"])
            for stale in ("rank", "reader_score", "reader_nll", "reader_cut"):  # recomputed, never kept stale
                record.pop(stale, None)
            verdict = curator.judge(record)
            if verdict is None:
                candidates.append(record)
            else:
                reject(record, verdict)
        if make_reader is not None and candidates:  # only now: a night without candidates never needs the model
            from .reader import ReaderRule

            rule = ReaderRule(make_reader(), catalog, settings)  # reads the held-out text: the night's cut
        kept = _near_duplicates_and_reader(candidates, curator, rule, reject)
        if title_reader is None and rule is not None and any(r.get("title") for r in kept):
            from .reader import title_reader as night_title_reader

            title_reader = night_title_reader(rule.reader, catalog, settings, rule.reader.cache.path.parent)
        kept, read_out, title_reading = apply_title_reader(kept, title_reader)
        for record in read_out:
            reject(record, (record.pop("reason"), record.pop("detail")))
        ranked = rank(kept, settings.rank_by)
        write_jsonl(out_path, kept)
    seconds = time.perf_counter() - started
    log.info("curated %d samples: kept %d in %.1fs", total, len(kept), seconds)
    manifest = write_manifest(
        out_path, "curate",
        input=total,
        kept=len(kept),
        kept_rate=round(len(kept) / total, 4) if total else 0.0,
        rejected=counts,
        rules=list(RULES),
        ranked_by=settings.rank_by if ranked else None,
        catalog=catalog_label,
        catalog_descriptions=len(catalog),
        history=curator.history_count,
        reader=rule.summary() if rule else {"on": True, "candidates": 0} if make_reader else {"on": False},
        titles={"known_titles": len(known_titles), "titled_samples": titled,
                "kept_titled": sum(1 for r in kept if r.get("title")), "reader": title_reading},
        blocklist=blocklist.path,
        # Named by their public labels: a presigned URL's signature never reaches the manifest.
        settings={**dataclasses.asdict(settings), "title_catalogs": [public_label(s) for s in settings.title_catalogs]},
        seconds=round(seconds, 2),
        outputs={"kept": str(out_path), "rejected": str(rejected_path)},
    )
    return manifest


def _near_duplicates_and_reader(candidates: list[dict], curator: Curator, rule, reject) -> list[dict]:
    """The last two rules, in input order, chunk by chunk: near-duplicate against what is kept so far, then
    the reader, which reads a chunk's candidates in batches (those not already near-duplicates of a kept one)."""
    kept: list[dict] = []
    chunk = 64
    for start in range(0, len(candidates), chunk):
        part = candidates[start:start + chunk]
        readings = rule.read([r["text"] for r in part if curator.near_duplicate(r) is None]) if rule else {}
        for record in part:
            verdict = curator.near_duplicate(record)
            if verdict is None and rule is not None:
                verdict = rule.verdict(record, readings.get(record["text"]))
            if verdict is None:
                curator.keep(record)
                kept.append(record)
            else:
                reject(record, verdict)
    return kept


def check_min_kept(kept: int, total: int | None, settings: CurateSettings, where) -> None:
    """Refuse a night that kept fewer than ``min_kept`` descriptions: an empty gallery must not replace a good one."""
    if kept < settings.min_kept:
        of = f" of {total}" if total is not None else ""
        raise UserError(f"curation kept {kept}{of} samples ({where}), fewer than curate.min_kept ({settings.min_kept}); "
                        "nothing is rendered or published, the last good site stays",
                        "see the rejections per rule in the curate manifest and fix generation, or lower "
                        "curate.min_kept")
