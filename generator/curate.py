"""Curate: publish only novel, well-formed, distinct descriptions.

``curate(samples, catalog, out)`` reads samples JSONL (generate's output) and
checks every sample against these rules, in this order; the first rule a
sample fails is its ``reason`` (with a short ``detail``) in the rejected file:

1. ``unterminated``   generation hit its length cap before ``<|endoftext|>``
                      (``"terminated": false``; a line without the field counts as terminated).
2. ``length``         fewer than ``min_words`` or more than ``max_words`` words, or
                      outside ``min_chars``..``max_chars`` characters.
3. ``malformed``      leftover markers (``<|startoftext|>``/``<|endoftext|>`` fragments, a
                      ``[Movie]``-style control prefix: real descriptions never use square
                      brackets), U+FFFD or mojibake (broken UTF-8), control/invisible characters,
                      an odd number of double quotes, unbalanced brackets, or no terminal
                      punctuation (``require_terminal_punctuation``).
4. ``degenerate``     a word repeated more than ``max_word_run`` times in a row, a doubled
                      function word ("the the"), a phrase of ``repeat_ngram`` words that occurs
                      twice, or fewer than ``min_distinct_ratio`` distinct words.
5. ``unknown-words`` more than ``max_unknown_words`` (default 0) invented words: words in
                      neither wordfreq's English list (Zipf >= ``unknown_words_min_zipf``) nor the
                      catalog's titles and descriptions (generator/lexicon.py). -1 = off.
6. ``fluency``        per-word perplexity under a word n-gram Kneser-Ney model of the training
                      descriptions above the ``fluency_percentile``-th percentile of the real
                      held-out descriptions (generator/fluency.py). 0 = off.
7. ``copy``           shares a run of ``copy_ngram`` consecutive words with any description of
                      the *full* catalog (training and validation), after normalisation (case,
                      accents, apostrophes and punctuation ignored). Exact: hashed n-grams,
                      each hit confirmed against the catalog text.
8. ``near-duplicate`` Jaccard similarity of word shingles (``shingle_words``; single words by
                      default) >= ``near_duplicate_threshold`` with a sample already kept tonight (the first one wins) or a description
                      published on an earlier night (``history_path``). Candidates come from
                      datasketch's MinHash LSH; each is confirmed with the exact Jaccard.
9. ``blocklist``      contains a word or phrase of the blocklist file.

The settings are ``[curate]`` in ``generator/defaults.toml``. Kept samples stay in
input order unless they carry the numeric field ``rank_by`` (default ``logprob``,
generate's mean token log-probability): then they are ordered highest first and
each records its ``rank``.

Outputs: the kept samples (``out_path``: every original field plus ``id``, and
``rank`` when ranked), the rejected ones (``<out stem>.rejected.jsonl`` unless
given: plus ``id``, ``reason``, ``detail``) and ``<out stem>.manifest.json``
(counts per reason, kept rate, settings).

``id`` is the first 12 hex digits of the SHA-256 of the text in Unicode NFC
with whitespace collapsed, so a description keeps its permalink across
re-renders and re-runs. Curation is deterministic and idempotent: curating the
kept output again keeps all of it, unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import sys
import time
import unicodedata
import zlib
from pathlib import Path
from typing import Iterable

from .artifacts import atomic_open, read_jsonl, write_jsonl, write_manifest
from .errors import UserError
from .settings import setting

log = logging.getLogger(__name__)

RULES = ("unterminated", "length", "malformed", "degenerate", "unknown-words", "fluency", "copy", "near-duplicate",
         "blocklist")
DEFAULT_BLOCKLIST = Path(__file__).with_name("data") / "blocklist.txt"


@dataclasses.dataclass
class CurateSettings:
    min_words: int = setting(8, "length: fewest words (whitespace-separated) a description may have")
    max_words: int = setting(80, "length: most words a description may have")
    min_chars: int = setting(30, "length: fewest characters")
    max_chars: int = setting(600, "length: most characters")
    require_terminal_punctuation: bool = setting(True, "malformed: a description must end in . ! ? or ... "
                                                 "(before closing quotes or brackets)")
    max_word_run: int = setting(2, 'degenerate: times a word may repeat in a row ("very, very" ok, '
                                '"very very very" not)')
    repeat_ngram: int = setting(4, "degenerate: a phrase of this many words occurring twice is a loop (0 = off)")
    min_distinct_ratio: float = setting(0.5, "degenerate: minimum share of distinct words (real catalog "
                                        "descriptions are all >= 0.66)")
    copy_ngram: int = setting(8, "copy: this many consecutive words (case, accents and punctuation ignored) "
                              "shared with any catalog description make a copy; exact, not probabilistic")
    near_duplicate_threshold: float = setting(0.7, "near-duplicate: Jaccard similarity of word shingles at or "
                                              "above which a sample repeats one kept earlier (tonight or on an "
                                              "earlier night)")
    shingle_words: int = setting(1, "near-duplicate: words per shingle; 1 (sets of words) catches a two- or "
                                 "three-word change in a 20-word description at 0.7, 2-word shingles miss it")
    num_perm: int = setting(64, "near-duplicate: MinHash permutations for the LSH candidate search "
                            "(candidates are confirmed exactly)")
    blocklist_file: str = setting("", "blocklist: file of blocked words or phrases, one per line; empty = the "
                                  "shipped generator/data/blocklist.txt")
    rank_by: str = setting("logprob", "order kept samples by this numeric sample field, highest first, and "
                           "record `rank`; empty = input order")
    max_unknown_words: int = setting(0, "unknown-words: reject samples with more than this many invented words "
                                     "(in neither the English lexicon nor the catalog's vocabulary); -1 = off")
    unknown_words_min_zipf: float = setting(
        1.25, "unknown-words: English words are wordfreq's with at least this Zipf frequency "
        "(measured: bench/bench_lexicon.py)")
    allow_new_names: bool = setting(
        True, "unknown-words: a capitalised word in mid-sentence is a name even if nobody uses it yet")
    fluency_percentile: float = setting(
        0.0, "fluency: reject samples less fluent than this percentile of real held-out descriptions; 0 = off")
    fluency_order: int = setting(3, "fluency: n-gram order of the catalog's word language model")

    def validate(self) -> None:
        def bad(key: str, fix: str) -> UserError:
            return UserError(f"curate.{key} = {getattr(self, key)!r} is out of range", fix)

        if self.min_words < 1:
            raise bad("min_words", "set curate.min_words to 1 or more")
        if self.max_words < self.min_words:
            raise bad("max_words", "set curate.max_words >= curate.min_words")
        if self.min_chars < 0 or self.max_chars < self.min_chars:
            raise bad("max_chars", "use 0 <= curate.min_chars <= curate.max_chars")
        if self.max_word_run < 1:
            raise bad("max_word_run", "set curate.max_word_run to 1 or more")
        if self.repeat_ngram < 0:
            raise bad("repeat_ngram", "set curate.repeat_ngram to 0 (off) or a phrase length such as 4")
        if not 0.0 <= self.min_distinct_ratio <= 1.0:
            raise bad("min_distinct_ratio", "use a fraction such as 0.5")
        if self.copy_ngram < 1:
            raise bad("copy_ngram", "set curate.copy_ngram to a word count such as 8")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise bad("near_duplicate_threshold", "use a Jaccard similarity in (0, 1] such as 0.7")
        if self.shingle_words < 1:
            raise bad("shingle_words", "set curate.shingle_words to 1 or more")
        if not 16 <= self.num_perm <= 1024:
            raise bad("num_perm", "use 16..1024 permutations, e.g. 64")
        if self.fluency_percentile > 100:
            raise bad("fluency_percentile", "use a percentile such as 90, or 0 for off")
        if not 1 <= self.fluency_order <= 6:
            raise bad("fluency_order", "use an n-gram order of 1..6, e.g. 3")


# --- text normalisation and ids ---------------------------------------------------------------

_APOSTROPHES = re.compile(r"['’‘`´ʼ]")
_WORD = re.compile(r"[^\W_]+")
_COMBINING = re.compile(r"[\u0300-\u036f]")  # accents, once NFKD has split them off their letters


def normalised_words(text: str) -> list[str]:
    """Words for comparisons: case-folded, accents and apostrophes dropped, split on punctuation.

    "Don't", "DONT" and "dont" are the same word; "well-known" is "well known".
    """
    text = text.casefold()
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _WORD.findall(_APOSTROPHES.sub("", text))


def sample_id(text: str) -> str:
    """Stable id of a description: first 12 hex of SHA-256 of its NFC, whitespace-collapsed text."""
    canonical = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def ngrams(words: list[str], n: int) -> Iterable[tuple[str, ...]]:
    """Every run of ``n`` consecutive words, as tuples (none when there are fewer words)."""
    return zip(*(words[k:] for k in range(n)))


# --- per-sample rules: each returns a detail string when the sample fails ---------------------

def check_unterminated(record: dict) -> str | None:
    terminated = record.get("terminated", True)
    if terminated is not None and not terminated:
        return "no <|endoftext|> before the length cap"
    return None


def check_length(text: str, settings: CurateSettings) -> str | None:
    words = len(text.split())
    if not settings.min_words <= words <= settings.max_words:
        return f"{words} words (allowed {settings.min_words}-{settings.max_words})"
    chars = len(text.strip())
    if not settings.min_chars <= chars <= settings.max_chars:
        return f"{chars} characters (allowed {settings.min_chars}-{settings.max_chars})"
    return None


_MARKER = re.compile(r"<\||\|>|(?:startof|endof)text|\[[^\[\]]{0,60}\]", re.IGNORECASE)
# UTF-8 bytes decoded as Latin-1/cp1252: "Ã©" for "é", "â€™" for "’".
_MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]")
_QUOTES = re.compile('["“”]')
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BRACKETS = re.compile(r"[()\[\]{}]")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_TRAILING_CLOSERS = "\"”’')]} "
TERMINAL = ".!?…"


# Any ASCII character that one of the checks below looks at; most samples contain none.
_SUSPECT_ASCII = re.compile(r'[<|\[\](){}"\x00-\x1f\x7f]')


def check_malformed(text: str, settings: CurateSettings) -> str | None:
    if text.isascii() and not _SUSPECT_ASCII.search(text):
        return _check_terminal(text, settings)
    marker = _MARKER.search(text)
    if marker:
        return f"leftover marker {marker.group(0)!r}"
    if "\ufffd" in text or _MOJIBAKE.search(text):
        return "broken UTF-8 (replacement character or mojibake)"
    # Control, format (zero-width), surrogate, private-use and unassigned characters:
    # ingest strips them from the catalog, so a sample carrying one is broken output.
    bad = _control_character(text)
    if bad:
        return f"control or invisible character U+{ord(bad):04X}"
    if len(_QUOTES.findall(text)) % 2:
        return "unbalanced double quotes"
    if not _brackets_balanced(text):
        return "unbalanced brackets"
    return _check_terminal(text, settings)


def _check_terminal(text: str, settings: CurateSettings) -> str | None:
    last = text.rstrip(_TRAILING_CLOSERS)[-1:]
    if settings.require_terminal_punctuation and (not last or last not in TERMINAL):
        return "no terminal punctuation"
    return None


def _control_character(text: str) -> str | None:
    if text.isascii():  # the common case, without a Unicode lookup per character
        match = _ASCII_CONTROL.search(text)
        return match.group(0) if match else None
    return next((ch for ch in sorted(set(text)) if unicodedata.category(ch)[0] == "C"), None)


def _brackets_balanced(text: str) -> bool:
    stack: list[str] = []
    for ch in _BRACKETS.findall(text):
        if ch in "([{":
            stack.append(ch)
        elif ch in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[ch]:
                return False
    return not stack


# "the the" is GPT-2's most common glitch; real text doubles these words only by mistake.
# ("that that" and "had had" are good English, and names like "Llama Llama" are real.)
FUNCTION_WORDS = frozenset(
    "a an the of to in on at by for with from and or but is are was his her their its".split())


def check_degenerate(words: list[str], settings: CurateSettings) -> str | None:
    # Each test first runs a cheap whole-list check; the loop that names the culprit
    # runs only for the few samples that fail it.
    if any(map(str.__eq__, words, words[1:])):
        run = 1
        for previous, word in zip(words, words[1:]):
            run = run + 1 if word == previous else 1
            if run > settings.max_word_run:
                return f"{word!r} repeated {run} times in a row"
            if run == 2 and word in FUNCTION_WORDS:
                return f"doubled {word!r}"
    n = settings.repeat_ngram
    if n and len(words) >= 2 * n:
        grams = list(ngrams(words, n))
        if len(set(grams)) < len(grams):
            seen: set[tuple[str, ...]] = set()
            for gram in grams:
                if gram in seen:
                    return f"phrase {' '.join(gram)!r} repeated"
                seen.add(gram)
    if words:
        ratio = len(set(words)) / len(words)
        if ratio < settings.min_distinct_ratio:
            return f"only {ratio:.0%} distinct words (minimum {settings.min_distinct_ratio:.0%})"
    return None


# --- copy: exact n-gram overlap with the full catalog -----------------------------------------

class CopyIndex:
    """Every normalised ``n``-word run of the catalog, keyed by hash.

    A hash hit is confirmed against the words of the catalog description it came
    from, so the check is exact (no false positives; a miss would take a 64-bit
    hash collision) while the index stays a dict of ints, a few MB for the whole
    Netflix catalog.
    """

    def __init__(self, entries: list, n: int):
        self.n = n
        self.entries = entries
        words_per_entry = [normalised_words(entry.description) for entry in entries]
        # " w1 w2 … " per entry: a run of words is in a description iff " run " is a substring.
        self._padded = [f" {' '.join(words)} " for words in words_per_entry]
        self._index: dict[int, int] = {}
        for position, words in enumerate(words_per_entry):
            for key in map(hash, self._grams(words)):
                self._index.setdefault(key, position)

    def _grams(self, words: list[str]) -> list[tuple[str, ...]]:
        # A description shorter than n words is matched whole.
        return list(ngrams(words, self.n)) if len(words) >= self.n else [tuple(words)]

    def find(self, words: list[str]) -> tuple[tuple[str, ...], object] | None:
        """The first shared run of words and the catalog entry it comes from, if any."""
        grams = self._grams(words)
        for gram, position in zip(grams, map(self._index.get, map(hash, grams))):
            if position is not None and self._confirm(gram, position):
                return gram, self.entries[position]
        return None

    def _confirm(self, gram: tuple[str, ...], position: int) -> bool:
        run = " ".join(gram)
        if len(gram) < self.n:  # a short description must match whole
            return self._padded[position] == f" {run} "
        return f" {run} " in self._padded[position]


def check_unknown_words(text: str, lexicon, limit: int) -> str | None:
    """Too many invented words (in neither English nor the catalog): see generator/lexicon.py."""
    unknown = lexicon.unknown(text)
    if len(unknown) > limit:
        return f"{len(unknown)} invented words (limit {limit}): {', '.join(unknown[:5])}"
    return None


def check_copy(words: list[str], index: CopyIndex) -> str | None:
    found = index.find(words)
    if found is None:
        return None
    gram, entry = found
    phrase = " ".join(gram)
    title = f"{entry.title!r} ({entry.show_id})" if entry.title or entry.show_id else "a catalog description"
    return f"shares {phrase!r} with {title}"


# --- near-duplicates: MinHash LSH candidates, exact Jaccard decision --------------------------

def shingles(words: list[str], k: int) -> frozenset[str]:
    """The set of ``k``-word runs (a text shorter than ``k`` words is one shingle)."""
    if k == 1:
        return frozenset(map(sys.intern, words))  # kept sets share their word strings
    if len(words) <= k:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(gram) for gram in ngrams(words, k))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NearDuplicateIndex:
    """Kept descriptions, queried for ones too similar to a new sample.

    MinHash (datasketch, crc32 shingle hashes: deterministic across processes,
    unlike Python's ``hash``) finds candidates through LSH banding, tuned to
    miss few true near-duplicates (false negatives weigh 9x false positives);
    every candidate is then confirmed with the exact Jaccard of the shingle
    sets, so the decision is exact and symmetric (which makes curation idempotent).
    """

    def __init__(self, settings: CurateSettings):
        from datasketch import MinHash, MinHashLSH

        self.threshold = settings.near_duplicate_threshold
        # One MinHash, cleared and refilled per sample: building a MinHash object costs
        # more than hashing a description's shingles into it. The LSH keeps only band
        # hashes, never the object.
        self._minhash = MinHash(num_perm=settings.num_perm, seed=1, hashfunc=zlib.crc32)
        self._sketched: frozenset[str] | None = None
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=settings.num_perm, weights=(0.1, 0.9))
        self._sets: list[frozenset[str]] = []  # kept shingle sets, for the exact check
        self._labels: list[str] = []

    def _sketch(self, shingle_set: frozenset[str]):
        if self._sketched is not shingle_set:
            self._minhash.clear()
            self._minhash.update_batch([s.encode("utf-8") for s in shingle_set])
            self._sketched = shingle_set
        return self._minhash

    def find(self, shingle_set: frozenset[str]) -> tuple[str, float] | None:
        """The most similar kept description at or above the threshold, as (label, jaccard)."""
        best = None
        for key in sorted(self._lsh.query(self._sketch(shingle_set))):
            similarity = jaccard(shingle_set, self._sets[key])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (self._labels[key], similarity)
        return best

    def add(self, label: str, shingle_set: frozenset[str]) -> None:
        key = len(self._sets)
        self._sets.append(shingle_set)
        self._labels.append(label)
        self._lsh.insert(key, self._sketch(shingle_set), check_duplication=False)  # keys are unique by construction

    def __len__(self) -> int:
        return len(self._sets)


# --- blocklist --------------------------------------------------------------------------------

@dataclasses.dataclass
class Blocklist:
    """Whole words, word prefixes (``entry*``) and phrases, all normalised like the copy check."""

    path: str
    words: frozenset = frozenset()
    prefixes: tuple = ()
    phrases: tuple = ()

    def find(self, words: list[str]) -> str | None:
        for word in words:
            if word in self.words:
                return word
            if self.prefixes and word.startswith(self.prefixes):
                return word
        if self.phrases:
            padded = f" {' '.join(words)} "
            for phrase in self.phrases:
                if f" {phrase} " in padded:
                    return phrase
        return None


def load_blocklist(path: str | Path | None = None) -> Blocklist:
    """Read a blocklist file (the shipped default when ``path`` is empty)."""
    path = Path(path).expanduser() if path else DEFAULT_BLOCKLIST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"blocklist file not found: {path}",
                        "set curate.blocklist_file to an existing file, or empty for the default") from None
    except UnicodeDecodeError:
        raise UserError(f"blocklist file {path} is not UTF-8 text", "save it as UTF-8, one word per line") from None
    words, prefixes, phrases = set(), set(), set()
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        prefix = entry.endswith("*")
        normalised = normalised_words(entry.rstrip("*"))
        if not normalised:
            continue
        if len(normalised) > 1:
            phrases.add(" ".join(normalised))
        elif prefix:
            prefixes.add(normalised[0])
        else:
            words.add(normalised[0])
    return Blocklist(str(path), frozenset(words), tuple(sorted(prefixes)), tuple(sorted(phrases)))


def check_blocklist(words: list[str], blocklist: Blocklist) -> str | None:
    found = blocklist.find(words)
    return f"contains blocked {found!r}" if found else None


# --- the stage --------------------------------------------------------------------------------

def default_rejected_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.rejected.jsonl")


def read_history(history_path: str | Path | None) -> list[dict]:
    """Descriptions published on earlier nights; a missing file means none yet (first night)."""
    if not history_path or not Path(history_path).is_file():
        return []
    return list(read_jsonl(history_path))


class Curator:
    """The rules with their indexes; ``judge`` one sample at a time, in input order."""

    def __init__(self, catalog: list, settings: CurateSettings, blocklist: Blocklist,
                 history: Iterable[dict] = ()):
        """``catalog``: the ingested entries (title, description, split), as ``ingest.read_catalog`` gives them."""
        from .fluency import FluencyJudge
        from .lexicon import Lexicon

        self.settings = settings
        self.copies = CopyIndex(catalog, settings.copy_ngram)
        records = [dataclasses.asdict(entry) for entry in catalog]
        self.lexicon = (Lexicon(records, settings.unknown_words_min_zipf, settings.allow_new_names)
                        if settings.max_unknown_words >= 0 else None)
        self.fluency = (FluencyJudge(records, settings.fluency_order, settings.fluency_percentile)
                        if settings.fluency_percentile > 0 else None)
        self.near = NearDuplicateIndex(settings)
        self.blocklist = blocklist
        for record in history:
            words = normalised_words(record["text"])
            night = record.get("night")
            label = f"a description published on {night}" if night else "a previously published description"
            self.near.add(label, shingles(words, settings.shingle_words))
        self.history_count = len(self.near)

    def judge(self, record: dict, sample_key: str) -> tuple[str, str] | None:
        """``(reason, detail)`` of the first failing rule, or None when kept (then it joins the index)."""
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
        detail = self.fluency and self.fluency.check(words)
        if detail:
            return "fluency", detail
        detail = check_copy(words, self.copies)
        if detail:
            return "copy", detail
        shingle_set = shingles(words, settings.shingle_words)
        found = self.near.find(shingle_set)
        if found:
            label, similarity = found
            return "near-duplicate", f"Jaccard {similarity:.2f} with {label}"
        detail = check_blocklist(words, self.blocklist)
        if detail:
            return "blocklist", detail
        self.near.add(f"kept sample {sample_key}", shingle_set)
        return None


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
           catalog_label: str = "") -> dict:
    """Run the curate stage; returns its manifest (also written as ``<out stem>.manifest.json``).

    ``catalog`` is the full ingested catalog (``ingest.read_catalog`` of the night's
    ingest folder: training and validation descriptions alike); ``catalog_label``
    names it in the manifest. ``history_path`` is optional JSONL of descriptions
    published on earlier nights (objects with ``text``, optionally ``night``).
    """
    settings.validate()  # the loader validated a loaded config; this guards direct callers
    started = time.perf_counter()
    out_path = Path(out_path)
    rejected_path = Path(rejected_path) if rejected_path else default_rejected_path(out_path)
    # Check the small inputs first; a bad samples line fails the stage mid-way, but
    # every write is atomic, so nothing is left behind.
    if not Path(samples_path).is_file():
        raise UserError(f"samples file not found: {samples_path}", "pass the JSONL written by the generate stage")
    history = read_history(history_path)
    blocklist = load_blocklist(settings.blocklist_file)

    curator = Curator(catalog, settings, blocklist, history)
    kept: list[dict] = []
    counts = dict.fromkeys(RULES, 0)
    total = 0
    # Rejected samples stream straight to disk; only the kept ones stay in memory (for ranking).
    with atomic_open(rejected_path, "w") as rejected_file:
        for record in read_jsonl(samples_path):
            total += 1
            key = sample_id(record["text"])
            verdict = curator.judge(record, key)
            record["id"] = key
            if verdict is None:
                record.pop("rank", None)  # a rank from an earlier curation is recomputed, not kept stale
                kept.append(record)
            else:
                record["reason"], record["detail"] = verdict
                counts[record["reason"]] += 1
                rejected_file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        ranked = rank(kept, settings.rank_by)
        write_jsonl(out_path, kept)
    seconds = time.perf_counter() - started
    log.info("curated %d samples: kept %d in %.1fs", total, len(kept), seconds)
    return write_manifest(
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
        fluency=curator.fluency.summary() if curator.fluency else None,
        blocklist=blocklist.path,
        settings=dataclasses.asdict(settings),
        seconds=round(seconds, 2),
        outputs={"kept": str(out_path), "rejected": str(rejected_path)},
    )


def add_cli(subparsers) -> None:
    from .config import add_setting_flag

    parser = subparsers.add_parser(
        "curate", parents=[subparsers.common],
        help="keep only novel, well-formed, distinct samples",
        description="Check samples against the rules unterminated, length, malformed, degenerate, unknown-words, "
        "fluency, copy "
        "(against the full catalog), near-duplicate and blocklist, in that order. Writes the kept samples "
        "(with a stable id) to OUT.jsonl, the rejected ones with their reason to OUT.rejected.jsonl, and "
        "OUT.manifest.json with counts per reason.",
    )
    parser.add_argument("--samples", required=True, metavar="IN.jsonl", help="samples JSONL from generate")
    parser.add_argument("--catalog", required=True, metavar="DIR|CSV",
                        help="the ingest stage's output folder (its catalog.jsonl), or a catalog CSV (path, "
                        "http(s):// URL or s3:// URI) read with the configured ingest settings")
    parser.add_argument("--out", required=True, metavar="OUT.jsonl", help="kept samples JSONL to write")
    parser.add_argument("--rejected", metavar="FILE", help="rejected samples JSONL (default OUT.rejected.jsonl)")
    parser.add_argument("--history", metavar="FILE",
                        help="JSONL of descriptions published on earlier nights (near-duplicate check); "
                        "a missing file means none")
    add_setting_flag(parser, "--blocklist", "curate.blocklist_file")
    add_setting_flag(parser, "--min-words", "curate.min_words")
    add_setting_flag(parser, "--max-words", "curate.max_words")
    add_setting_flag(parser, "--copy-ngram", "curate.copy_ngram")
    add_setting_flag(parser, "--near-duplicate-threshold", "curate.near_duplicate_threshold")
    add_setting_flag(parser, "--rank-by", "curate.rank_by")
    add_setting_flag(parser, "--max-unknown-words", "curate.max_unknown_words")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .ingest import load_catalog, read_catalog

    if Path(args.catalog).is_dir():
        catalog = read_catalog(args.catalog)
    else:  # a CSV: parsed here, by the CLI, the way the ingest stage would with this config
        catalog = load_catalog(args.catalog, config.ingest)
    manifest = curate(args.samples, catalog, args.out, config.curate, history_path=args.history,
                      rejected_path=args.rejected, catalog_label=args.catalog)
    reasons = ", ".join(f"{reason} {count}" for reason, count in manifest["rejected"].items() if count)
    print(f"kept {manifest['kept']} of {manifest['input']} samples ({manifest['kept_rate']:.0%}) -> {args.out}"
          + (f"; rejected: {reasons}" if reasons else ""))
    return 0
