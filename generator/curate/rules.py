"""The per-sample rules that need no index: each returns a detail string when the sample fails."""

from __future__ import annotations

import re
import unicodedata

from .settings import CurateSettings
from .words import ngrams

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
    return malformed_characters(text) or _check_terminal(text, settings)


def malformed_characters(text: str) -> str | None:
    """Leftover markers or brackets, broken UTF-8, invisible characters, unbalanced quotes or brackets."""
    if text.isascii() and not _SUSPECT_ASCII.search(text):
        return None
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
    return None


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


def check_unknown_words(text: str, lexicon, limit: int) -> str | None:
    """Too many invented words (in neither English nor the catalog): see generator/curate/lexicon.py."""
    unknown = lexicon.unknown(text)
    if len(unknown) > limit:
        return f"{len(unknown)} invented words (limit {limit}): {', '.join(unknown[:5])}"
    return None
