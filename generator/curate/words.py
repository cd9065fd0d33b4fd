"""Words for comparisons, stable ids and n-grams: what curate, the lexicon and the quality panel share."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable


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
