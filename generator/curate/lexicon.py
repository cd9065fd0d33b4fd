"""Lexicon: which words of a description are real, for the ``unknown-words`` curate rule.

A word is real when it is an English word (wordfreq's shipped ``large`` English
list, words at or above a Zipf frequency ``min_zipf``) or a word of the catalog
itself (the titles and descriptions of the ingest records: names, places,
titles). A small model trained from scratch on a bootstrapped BPE splices
sub-words into words nobody uses ("gradukome", "eartmogue"); those are in
neither.

How words are cut (:func:`judged_words`):

- curly apostrophes count as straight ones; a possessive ``'s`` (or a bare
  trailing ``'``) is dropped: "Tokyo's" is judged as "tokyo";
- a hyphenated compound is judged part by part ("glass-blowing": "glass", "blowing");
- a word with a digit is judged as a number: each part with a digit must be written as
  catalog copy writes numbers ("1980s", "21st", "9-year-old", "4K", "MP3", "360º", a real word
  and a number as in "Inspiration4"; 99.9 % of the 2021 catalog's number words) or exactly as the
  catalog writes it ("3Below", "4x4"), not as the digit runs a small model loops on ("1555555555")
  or splices into words ("1950ains"); its other parts are not judged;
- a title's period ("Dr. Pacenstein") does not end a sentence;
- accents do not matter ("Pokemon" for the catalog's "Pokémon");
- words shorter than ``MIN_LETTERS`` letters are not judged (wordfreq lists
  nearly every two-letter string, so they would prove nothing);
- a word with an inner apostrophe is real if wordfreq lists it whole ("don't",
  "rock'n'roll") or every piece is real ("O'Brien": "brien").

Not accepted: coined compounds ("pitmasters", "rockumentary"). Real catalog copy
coins some (1 % of 2021 descriptions have one that wordfreq does not list), but
accepting any split into two common words let 11 % more spliced inventions
through (bench/bench_lexicon.py: caught 95.9 % -> 84.9 %).

Coined hyphenated compounds of real words ("mother-alike", "now-examine") pass by
default, because real copy coins them too ("drug-addled"); with ``allow_new_compounds``
off, a compound must be one the catalog itself writes, whole.

Capitalised words: a name the catalog uses is a catalog word, whatever its case
in the sample. A capitalised word in the middle of a sentence that neither the
catalog nor English uses is a new name ("Plunotaria"); real descriptions coin
them all the time (6 % of held-out 2021 descriptions have one), so new names
pass unless ``allow_new_names`` is off. Sentence-initial capitals say nothing
about names, so a sentence-initial word is judged like a lowercase one (a name
the catalog uses still passes there, as a catalog word).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from typing import Iterable

MIN_LETTERS = 3
# Measured with bench/bench_lexicon.py on the 2021 catalog: the highest Zipf bar that still
# passes >= 99 % of held-out real descriptions (99.0 %; 1.5 passes 98.1 %) while catching
# 95.9 % of spliced sub-word inventions (the whole list, 1.0, catches 95.1 %).
DEFAULT_MIN_ZIPF = 1.25

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*['’]?")
_SENTENCE_END = re.compile(r"[.!?…:;]")
# "Dr. Pacenstein", "Mrs. Gonsha": the period of a title does not end the sentence.
_TITLE_ABBREVIATION = re.compile(r"(?:^|\W)(?:mr|mrs|ms|dr|st|capt|lt|sgt|col|gen|prof|rev|jr|sr|vs|mt)\.\s*$",
                                 re.IGNORECASE)
# A number with its suffix ("1980s", "4K", "7pm"), or a code of capitals and digits ("MP3", "MI6", "BNK48");
# not letters-digit-letters ("Buz0s" was published as a word).
_NUMBER_PART = re.compile(r"(?i:\d{1,4}(?:s|st|nd|rd|th|d|k|m|am|pm|º)?)|[A-Z]{1,3}\d{1,4}")
_NAMED_NUMBER = re.compile(r"([^\W\d_]{4,})\d{1,4}")  # "Inspiration4": a real word, then a number
_POSSESSIVE = re.compile(r"['’]s?$", re.IGNORECASE)
_COMBINING = re.compile(r"[\u0300-\u036f]")


@functools.lru_cache(maxsize=8)
def english_words(min_zipf: float) -> frozenset[str]:
    """wordfreq's large English list, words with Zipf frequency >= ``min_zipf`` (loaded once per value)."""
    import wordfreq

    # Zipf = log10(frequency per billion words); frequency is per word.
    cutoff = 10 ** (min_zipf - 9) if min_zipf > 0 else 0.0
    return frozenset(word for word, freq in wordfreq.get_frequency_dict("en", "large").items() if freq >= cutoff)


def fold(word: str) -> str:
    """Case-folded NFC with straight apostrophes: the form every lookup uses."""
    return unicodedata.normalize("NFC", word).casefold().replace("’", "'")


def unaccented(word: str) -> str:
    """``word`` without its accents: "téenager" is a misspelt "teenager", "Pokemon" is "Pokémon"."""
    if word.isascii():
        return word
    return unicodedata.normalize("NFC", _COMBINING.sub("", unicodedata.normalize("NFKD", word)))


def tokens(text: str) -> Iterable[tuple[str, bool]]:
    """``(token, sentence_initial)`` for each word-like token of ``text`` (hyphens and apostrophes inside)."""
    previous_end = 0
    for match in _TOKEN.finditer(text):
        # The first word, or one after sentence-ending punctuation ("… town. Then", "… it: Love").
        initial = previous_end == 0 or (bool(_SENTENCE_END.search(text[previous_end:match.start()]))
                                        and not _TITLE_ABBREVIATION.search(text[:match.start()]))
        previous_end = match.end()
        yield match.group(0), initial


def without_possessive(token: str) -> str:
    """The token as judged: straight apostrophes, a possessive 's (or bare trailing ') dropped."""
    return _POSSESSIVE.sub("", token.replace("’", "'"))


def judged_words(token: str) -> list[str]:
    """The parts of a token that are judged (see module docstring); empty when nothing is judged."""
    if any(ch.isdigit() for ch in token):
        return []
    token = without_possessive(token)
    return [part for part in token.split("-") if sum(ch.isalpha() for ch in part) >= MIN_LETTERS]


def compound(token: str) -> str:
    """A hyphenated token as a catalog compound: folded, unaccented, possessive dropped ("Coming-of-Age's" ->
    "coming-of-age")."""
    return unaccented(fold(without_possessive(token)))


class Lexicon:
    """English words plus the catalog's own words; :meth:`unknown` lists a text's invented words."""

    def __init__(self, records: Iterable[dict] = (), min_zipf: float = DEFAULT_MIN_ZIPF,
                 allow_new_names: bool = True, allow_new_compounds: bool = True):
        self.allow_new_names = allow_new_names
        self.allow_new_compounds = allow_new_compounds
        self.english = english_words(min_zipf)
        self.catalog_words: set[str] = set()
        self.catalog_compounds: set[str] = set()
        for record in records:
            for field in ("title", "description"):
                self.add_text(record.get(field) or "")

    def add_text(self, text: str) -> None:
        """Make every word of ``text`` (and each piece of an apostrophe word) a catalog word."""
        for token, _ in tokens(text):
            if "-" in token:
                self.catalog_compounds.add(compound(token))
            if any(ch.isdigit() for ch in token):  # "3Below", "4x4": a number word the catalog writes is known
                self.catalog_words.update(fold(part) for part in without_possessive(token).split("-"))
            for part in judged_words(token) or [token]:
                word = fold(part)
                self.catalog_words.update((word, unaccented(word), *word.split("'")))

    def is_known(self, part: str, capitalised_mid_sentence: bool = False) -> bool:
        word = fold(part)
        if word in self.catalog_words or word in self.english:
            return True
        bare = unaccented(word)
        if bare != word and (bare in self.catalog_words or bare in self.english):
            return True
        if capitalised_mid_sentence and self.allow_new_names:
            return True
        if "'" in word:  # O'Brien, rock'n'roll: every piece must be real
            pieces = [p for p in word.split("'") if len(p) >= MIN_LETTERS]
            return bool(pieces) and all(self.is_known(p, capitalised_mid_sentence) for p in pieces)
        return False

    def is_number(self, part: str) -> bool:
        """A part with a digit written as catalog copy writes numbers, or written exactly as the catalog
        writes it (see the module docstring)."""
        if _NUMBER_PART.fullmatch(part) or fold(part) in self.catalog_words:
            return True
        named = _NAMED_NUMBER.fullmatch(part)
        return bool(named) and self.is_known(named.group(1))

    def unknown(self, text: str, allow_names: bool = True) -> list[str]:
        """The invented words of ``text``, in order (as written, possessives dropped).

        ``allow_names`` false: a capital is no sign of a name (a title capitalises every word),
        so only ``allow_new_names``' sentence-initial judgement applies to every word.
        """
        found = []
        for token, initial in tokens(text):
            if any(ch.isdigit() for ch in token):
                if not all(self.is_number(part) for part in without_possessive(token).split("-")
                           if any(ch.isdigit() for ch in part)):
                    found.append(without_possessive(token))
                continue
            parts = judged_words(token)
            # Short parts count here ("cult-up", "B-grown").
            if "-" in token and not self.allow_new_compounds and compound(token) not in self.catalog_compounds:
                found.append(without_possessive(token))
                continue
            for part in parts:
                if not self.is_known(part, allow_names and part[:1].isupper() and not initial):
                    found.append(part)
        return found


def zipf(word: str) -> float:
    """wordfreq's Zipf frequency of a word (0 when unlisted); for reports and threshold measurements."""
    import wordfreq

    frequency = wordfreq.word_frequency(fold(word), "en", "large")
    return round(math.log10(frequency) + 9, 2) if frequency else 0.0
