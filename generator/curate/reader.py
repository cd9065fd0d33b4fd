"""The reader: a pretrained English language model reads every candidate, and real text sets the bar.

The model (SmolLM2-135M-Instruct as a GGUF file, ``generator.models.llama``) reads each text after
a fixed prefix ("Netflix description: ") and gives each of the text's tokens a log-probability.
A text's score is its **SLOR** (syntactic log-odds ratio; Lau, Clark & Lappin 2017, Kann et al.
2018)::

    SLOR = (sum of the model's token log-probabilities - sum of the unigram log-probabilities
            of the text's words) / number of tokens

with unigram frequencies from wordfreq (``word_frequency``, at least 1e-8, so an unlisted word
costs what the rarest listed words cost). Dividing out the unigram part forgives a text its rare
words: "glassblowers" is rare, so the model finds it unlikely, and the unigram term pays that
back; an invented word such as "gradukome" is spelt from unlikely pieces, which costs the model
far more than a rare real word does, and the floor pays back only what an unlisted word costs.
What is left is how well the words fit together. Mean negative log-likelihood per token is kept
beside it (``reader_nll``) for the figures.

**The cut is calibrated each night against real text.** The same reader scores up to
``reader_held_out`` of the catalog's held-out descriptions (``split == "val"``: the text ingest
writes to ``val.txt``); a candidate is kept only if its SLOR is at least their
``reader_percentile``-th percentile. A good night keeps all its good candidates, a bad night
publishes fewer, never worse.

**Cost.** Only candidates that passed every other rule are read, in batches, within
``reader_seconds`` of reading per curation; candidates whose turn comes after that are rejected as
``reader-budget``, never published unread. Scores are cached under ``<cache_dir>`` by (model
digest, prefix, text), so a re-run (or the next round of the same night, or the held-out text of
the next night) reads nothing twice. The model is loaded once per process, and only when
something is not cached.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Sequence

from ..artifacts import atomic_write_text
from ..errors import UserError
from ..models.llama.score import numerics_tag

PREFIX = "Netflix description: "
UNIGRAM_FLOOR = 1e-8  # the frequency of a word wordfreq does not list: the large list's own floor
MIN_HELD_OUT = 20  # fewer held-out descriptions cannot set a percentile worth the name
SAVE_EVERY_SECONDS = 30.0
MAX_CACHED = 100_000  # scores per cache file (about 6 MB): a few months of nights, and tonight's held-out text


# --- the score -----------------------------------------------------------------------------------

def unigram_logprob(text: str) -> float:
    """Sum of ln(wordfreq frequency) over the text's words (wordfreq's own English tokenizer)."""
    import wordfreq

    return sum(math.log(wordfreq.word_frequency(word, "en", minimum=UNIGRAM_FLOOR))
               for word in wordfreq.tokenize(text, "en"))


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the reader made of one text: its token log-probabilities, summed, and its scores."""

    logprob_sum: float
    tokens: int
    score: float  # SLOR
    nll: float  # mean negative log-likelihood per token


def reading(text: str, logprob_sum: float, tokens: int) -> Reading:
    if tokens <= 0:
        return Reading(logprob_sum, 0, -math.inf, math.inf)
    return Reading(logprob_sum, tokens, (logprob_sum - unigram_logprob(text)) / tokens, -logprob_sum / tokens)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, like numpy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def auc(higher: Sequence[float], lower: Sequence[float]) -> float | None:
    """P(a score from ``higher`` beats one from ``lower``), ties half: 0.5 = the scores cannot tell them apart."""
    if not higher or not lower:
        return None
    import bisect

    ordered = sorted(lower)
    wins = sum(bisect.bisect_left(ordered, h) + 0.5 * (bisect.bisect_right(ordered, h) - bisect.bisect_left(ordered, h))
               for h in higher)
    return wins / (len(higher) * len(lower))


def shares_base(reader_digest: str | None, generator_base_digest: str | None) -> bool:
    """Does the generator start from the reader's own weights (same file digest)? Then the reader
    rates the generator's text kindly, as a model rates text like its own."""
    return bool(reader_digest and generator_base_digest and reader_digest == generator_base_digest)


SHARED_BASE_NOTE = "the reader and the generator share a base model: it rates text like its own kindly"


# --- the model and its cache ---------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    from ..models.llama.model_file import file_sha256

    return file_sha256(path)


def model_digest(path: Path) -> str:
    """The model file's sha256, computed once per process per file version (no model load)."""
    stat = path.stat()
    return _file_digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _loaded_scorer(path: str, digest: str, threads: int, batch_size: int, eager: bool, matmul_dtype: str = "float32"):
    from ..models.llama.score import LlamaScorer

    return LlamaScorer(path, threads=threads, batch_size=batch_size, matmul_dtype=matmul_dtype)


def loaded_scorer(path: Path, digest: str, threads: int, batch_size: int, matmul_dtype: str = "float32"):
    """One LlamaScorer per process and file (every round of a night reuses it), in the process's TF mode."""
    from ..tf_runtime import import_tf

    return _loaded_scorer(str(path), digest, threads, batch_size, bool(import_tf().executing_eagerly()), matmul_dtype)


def reader_model_path(configured: str) -> Path:
    """``curate.reader_model``, or the machine cache's SmolLM2 file; missing: the UserError naming fetch-model."""
    from ..models.llama import model_file

    path = Path(configured).expanduser() if configured else model_file.model_path()
    if not path.is_file():
        raise UserError(f"the reader's model file {path} is missing",
                        f"run `{model_file.FETCH_COMMAND}` (or set curate.reader_model to a GGUF file, "
                        "or curate.reader = false)")
    return path


class ScoreCache:
    """The model's (logprob sum, tokens) per text, for one model digest and prefix, in one compact JSON file
    (rows in the order they were last used, so a cap keeps the most recent)."""

    def __init__(self, cache_dir: Path, digest: str, prefix: str):
        key = hashlib.sha256(f"{prefix}\n{digest}".encode()).hexdigest()[:8]  # digest: the file's, with its matmul type
        self.path = Path(cache_dir) / f"{digest[:16]}-{key}.json"
        self.digest, self.prefix = digest, prefix
        self.entries: dict[str, list] = self._load()
        self.dirty = False

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: scores are re-read, never trusted from a broken file
        if not isinstance(data, dict) or data.get("model_digest") != self.digest or data.get("prefix") != self.prefix:
            return {}
        rows = data.get("scores")  # [[key, logprob sum, tokens], ...], least recently used first
        if not isinstance(rows, list):
            return {}
        return {row[0]: row[1:] for row in rows if isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)}

    def get(self, text: str) -> tuple[float, int] | None:
        key = self.key(text)
        found = self.entries.pop(key, None)
        if found is None:
            return None
        self.entries[key] = found  # most recently used last: what the cap keeps
        return float(found[0]), int(found[1])

    def put(self, text: str, logprob_sum: float, tokens: int) -> None:
        self.entries[self.key(text)] = [round(float(logprob_sum), 5), int(tokens)]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        # Another process may have added scores meanwhile; ours (used most recently) go last.
        merged = {key: value for key, value in self._load().items() if key not in self.entries}
        merged.update(self.entries)
        if len(merged) > MAX_CACHED:  # every night adds its candidates: keep the most recently used
            merged = dict(list(merged.items())[-MAX_CACHED:])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [[key, *value] for key, value in merged.items()]
        atomic_write_text(self.path, json.dumps({"model_digest": self.digest, "prefix": self.prefix, "scores": rows},
                                                separators=(",", ":"), ensure_ascii=False) + "\n")
        self.entries, self.dirty = merged, False


class Reader:
    """The reader with its cache: ``read(texts)`` gives a :class:`Reading` per text (None: not read in time).

    ``scorer``: anything with LlamaScorer's interface (``token_logprobs(texts, prefix)``,
    ``digest``); default, the configured model file, loaded on first need.
    """

    def __init__(self, settings, cache_dir: str | os.PathLike, scorer=None, prefix: str | None = None):
        self.settings, self.prefix = settings, settings.reader_prefix if prefix is None else prefix
        self._scorer = scorer
        if scorer is None:
            self.path = reader_model_path(settings.reader_model)
            self.digest = model_digest(self.path)
            self.label = self.path.name
        else:
            self.path, self.digest = None, str(scorer.digest)
            self.label = getattr(scorer, "label", type(scorer).__name__)
        # Scores in bfloat16 differ from float32's in the third decimal: a cache per type, the scorer's own
        # when one is given (the title reader shares the night's loaded model, and so its type).
        dtype = settings.reader_matmul_dtype if scorer is None else getattr(scorer, "matmul_dtype", "float32")
        self.cache = ScoreCache(Path(cache_dir), self.digest + numerics_tag(dtype), self.prefix)
        self.fresh = self.cached = self.fresh_tokens = 0
        self.seconds = 0.0

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = loaded_scorer(self.path, self.digest, self.settings.reader_threads,
                                         self.settings.reader_batch_size, self.settings.reader_matmul_dtype)
        return self._scorer

    def read(self, texts: Sequence[str], allowance: float | None = None) -> dict[str, Reading | None]:
        """Each distinct text's reading; texts not cached are read in chunks while this call's reading
        seconds (the model's work, not its loading) stay under ``allowance``; the rest are None."""
        found: dict[str, Reading | None] = {}
        todo = []
        for text in dict.fromkeys(texts):
            hit = self.cache.get(text)
            if hit is None:
                todo.append(text)
            else:
                found[text] = reading(text, *hit)
                self.cached += 1
        chunk = 4 * max(1, self.settings.reader_batch_size)
        last_save, seconds_before = time.monotonic(), self.seconds
        try:
            for start in range(0, len(todo), chunk):
                if allowance is not None and self.seconds - seconds_before >= allowance:
                    found.update(dict.fromkeys(todo[start:], None))
                    break
                found.update(self._read_fresh(todo[start:start + chunk]))
                if time.monotonic() - last_save > SAVE_EVERY_SECONDS:  # a killed night keeps what it read
                    self.cache.save()
                    last_save = time.monotonic()
        finally:
            self.cache.save()
        return found

    def _read_fresh(self, texts: list[str]) -> dict[str, Reading]:
        scorer = self.scorer  # loading is not reading time: the budget is for candidates
        started = time.monotonic()
        logprobs = scorer.token_logprobs(list(texts), self.prefix)
        self.seconds += time.monotonic() - started
        out = {}
        for text, values in zip(texts, logprobs):
            total, count = float(sum(float(v) for v in values)), len(values)
            self.cache.put(text, total, count)
            out[text] = reading(text, total, count)
            self.fresh += 1
            self.fresh_tokens += count
        return out


def held_out_descriptions(catalog: list, limit: int, seed: int = 0) -> list[str]:
    """The catalog's held-out descriptions (``split == "val"``), a seeded sample of at most ``limit``."""
    texts = sorted({entry.description for entry in catalog if entry.split == "val"})
    return sorted(random.Random(seed).sample(texts, limit)) if len(texts) > limit else texts


# --- the rule ------------------------------------------------------------------------------------

class ReaderRule:
    """The night's cut (from the held-out text) and each candidate's verdict."""

    def __init__(self, reader: Reader, catalog: list, settings):
        self.reader, self.settings = reader, settings
        held_out = held_out_descriptions(catalog, settings.reader_held_out)
        if len(held_out) < MIN_HELD_OUT:
            raise UserError(f"the reader calibrates its cut on the catalog's held-out descriptions, and this catalog "
                            f"holds {len(held_out)} (at least {MIN_HELD_OUT} needed)",
                            "curate a larger catalog, raise ingest.validation_fraction, or set curate.reader = false")
        started = time.monotonic()
        readings = reader.read(held_out)
        self.held_out = [readings[text].score for text in held_out]
        self.calibration_seconds = time.monotonic() - started
        self.cut = percentile(self.held_out, settings.reader_percentile)
        self.candidates = self.unread = self.rejected = 0
        self._fresh_before, self._seconds_before = reader.fresh, reader.seconds

    def read(self, texts: list[str]) -> dict[str, Reading | None]:
        """Readings of candidates, within what is left of the budget: seconds of reading candidates in this
        curation (loading the model and calibrating are not counted)."""
        spent = self.reader.seconds - self._seconds_before
        return self.reader.read(texts, max(0.0, self.settings.reader_seconds - spent))

    def verdict(self, record: dict, found: Reading | None) -> tuple[str, str] | None:
        """Sets the record's reader fields; ``(reason, detail)`` when it is rejected."""
        self.candidates += 1
        record["reader_cut"] = round(self.cut, 4)
        if found is None:
            self.unread += 1
            return "reader-budget", (f"not read: curate.reader_seconds ({self.settings.reader_seconds:g} s of reading) "
                                     "was spent before its turn")
        record["reader_score"], record["reader_nll"] = round(found.score, 4), round(found.nll, 4)
        if found.score < self.cut:
            self.rejected += 1
            return "reader", (f"reads worse than real text: SLOR {found.score:.2f} < {self.cut:.2f}, the "
                              f"{self.settings.reader_percentile:g}th percentile of {len(self.held_out)} real "
                              "held-out descriptions")
        del record["reader_cut"]  # a kept record carries its scores; the cut is the night's (manifest)
        return None

    def summary(self) -> dict:
        fresh = self.reader.fresh - self._fresh_before
        seconds = self.reader.seconds - self._seconds_before
        return {"on": True, "model": self.reader.label, "model_digest": self.reader.digest, "prefix": self.reader.prefix,
                "percentile": self.settings.reader_percentile, "cut": round(self.cut, 4),
                "held_out": len(self.held_out), "held_out_median": round(percentile(self.held_out, 50), 4),
                "calibration_seconds": round(self.calibration_seconds, 2),
                "candidates": self.candidates, "read": fresh, "cached": self.candidates - self.unread - fresh,
                "rejected": self.rejected, "unread": self.unread,
                "reading_seconds": round(seconds, 2), "budget_seconds": self.settings.reader_seconds,
                "tokens_per_second": round(self.reader.fresh_tokens / self.reader.seconds, 1)
                if self.reader.seconds else None,
                "cache": str(self.reader.cache.path)}


# --- titles ----------------------------------------------------------------------------------------
TITLE_PREFIX = "Netflix title: "


def title_reader(reader: Reader, catalog: list, settings, cache_dir: str | os.PathLike):
    """The ``title-reader`` rule's judge: the night's reader (its loaded model) reading titles after
    "Netflix title: ", cut at the ``reader_percentile``-th percentile of the catalog's held-out titles'
    SLOR, the same calibration as descriptions'. None when the catalog has too few held-out titles."""
    from .titles import TitleReader

    titles = sorted({entry.title.strip() for entry in catalog if entry.split == "val" and entry.title.strip()})
    if len(titles) < MIN_HELD_OUT:
        return None
    if len(titles) > settings.reader_held_out:
        titles = sorted(random.Random(0).sample(titles, settings.reader_held_out))
    titles_read = Reader(settings, cache_dir, scorer=reader.scorer, prefix=TITLE_PREFIX)
    held_out = titles_read.read(titles)
    cut = percentile([held_out[t].score for t in titles], settings.reader_percentile)

    def score(texts: list[str]) -> list[float]:
        readings = titles_read.read(texts)
        return [readings[t].score for t in texts]

    return TitleReader(score=score, min_score=cut, name=f"reader SLOR (cut: the {settings.reader_percentile:g}th "
                       f"percentile of {len(titles)} held-out titles)")
