"""The curate stage's settings and its rules, in order."""

from __future__ import annotations

import dataclasses

from ..errors import UserError
from ..settings import setting

RULES = ("unterminated", "length", "malformed", "degenerate", "unknown-words", "fluency", "copy", "near-duplicate",
         "blocklist", "realism")


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
    allow_new_compounds: bool = setting(
        True, "unknown-words: a hyphenated word of real words passes even if nobody writes it (\"drug-addled\"); "
        "off: it must be a compound the catalog itself uses")
    fluency_percentile: float = setting(
        0.0, "fluency: reject samples less fluent than this percentile of real held-out descriptions; 0 = off")
    fluency_order: int = setting(3, "fluency: n-gram order of the catalog's word language model")
    realism_keep_share: float = setting(
        1.0, "realism: after the other rules, keep this share of the night's candidates: those a classifier "
        "(candidates against the catalog's training descriptions, out-of-fold) finds most like real ones; 1 = off")
    realism_reference: int = setting(600, "realism: most training descriptions the classifier learns from "
                                     "(a seeded sample of a larger catalog)")
    min_kept: int = setting(1, "a night that keeps fewer descriptions fails loudly (exit 2, the DAG marks it "
                            "failed) and the last good site stays published; 0 = publish even an empty gallery")

    def validate(self) -> None:
        def bad(key: str, fix: str) -> UserError:
            return UserError(f"curate.{key} = {getattr(self, key)!r} is out of range", fix)

        if self.min_kept < 0:
            raise bad("min_kept", "set curate.min_kept to 0 (off) or a count such as 1")
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
        if not 0.0 < self.realism_keep_share <= 1.0:
            raise bad("realism_keep_share", "use a share in (0, 1] such as 0.6, or 1 for off")
        if self.realism_reference < 20:
            raise bad("realism_reference", "use 20 or more training descriptions, e.g. 600")
        if not 1 <= self.fluency_order <= 6:
            raise bad("fluency_order", "use an n-gram order of 1..6, e.g. 3")
