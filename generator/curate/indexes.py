"""The rules that judge a sample against others: copies of the catalog, near-duplicates, the blocklist."""

from __future__ import annotations

import dataclasses
import logging
import sys
import zlib
from pathlib import Path

from ..errors import UserError
from .settings import CurateSettings
from .words import ngrams, normalised_words

log = logging.getLogger(__name__)

DEFAULT_BLOCKLIST = Path(__file__).parent.parent / "data" / "blocklist.txt"

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
