"""The curate stage's settings and its rules, in order."""

from __future__ import annotations

import dataclasses

from ..errors import UserError
from ..settings import check_declared, setting

# The title rules (titles.py) follow the description's: a title is judged once its description would be kept.
RULES = ("unterminated", "length", "malformed", "degenerate", "unknown-words", "copy", "blocklist", "near-duplicate",
         "reader", "reader-budget", "title-empty", "title-too-long", "title-malformed", "title-degenerate",
         "title-first-words", "title-invented-word", "title-copy", "title-repeat", "title-reader")


@dataclasses.dataclass
class CurateSettings:
    min_words: int = setting(8, "length: fewest words (whitespace-separated) a description may have", at_least=1)
    max_words: int = setting(80, "length: most words a description may have", at_least=1)
    min_chars: int = setting(30, "length: fewest characters", at_least=0)
    max_chars: int = setting(600, "length: most characters", at_least=0)
    require_terminal_punctuation: bool = setting(True, "malformed: a description must end in . ! ? or ... "
                                                 "(before closing quotes or brackets)")
    max_word_run: int = setting(2, 'degenerate: times a word may repeat in a row ("very, very" ok, '
                                '"very very very" not)', at_least=1)
    repeat_ngram: int = setting(4, "degenerate: a phrase of this many words occurring twice is a loop (0 = off)",
                                at_least=0)
    min_distinct_ratio: float = setting(0.5, "degenerate: minimum share of distinct words (real catalog "
                                        "descriptions are all >= 0.66)", at_least=0, at_most=1)
    copy_ngram: int = setting(8, "copy: this many consecutive words (case, accents and punctuation ignored) "
                              "shared with any catalog description make a copy; exact, not probabilistic", at_least=1)
    near_duplicate_threshold: float = setting(0.7, "near-duplicate: Jaccard similarity of word shingles at or "
                                              "above which a sample repeats one kept earlier (tonight or on an "
                                              "earlier night)", above=0, at_most=1)
    shingle_words: int = setting(1, "near-duplicate: words per shingle; 1 (sets of words) catches a two- or "
                                 "three-word change in a 20-word description at 0.7, 2-word shingles miss it",
                                 at_least=1)
    num_perm: int = setting(64, "near-duplicate: MinHash permutations for the LSH candidate search "
                            "(candidates are confirmed exactly)", at_least=16, at_most=1024)
    blocklist_file: str = setting("", "blocklist: file of blocked words or phrases, one per line; empty = the "
                                  "shipped generator/data/blocklist.txt")
    rank_by: str = setting("reader_score", "order kept samples by this numeric sample field, highest first, and "
                           "record `rank` (reader_score: the reader's SLOR; logprob: the generator's own mean token "
                           "log-probability); empty = input order")
    max_unknown_words: int = setting(0, "unknown-words: reject samples with more than this many invented words "
                                     "(in neither the English lexicon nor the catalog's vocabulary); -1 = off",
                                     at_least=-1)
    unknown_words_min_zipf: float = setting(
        1.25, "unknown-words: English words are wordfreq's with at least this Zipf frequency "
        "(measured: bench/bench_lexicon.py)", at_least=0, at_most=8)
    allow_new_names: bool = setting(
        True, "unknown-words: a capitalised word in mid-sentence is a name even if nobody uses it yet")
    allow_new_compounds: bool = setting(
        True, "unknown-words: a hyphenated word of real words passes even if nobody writes it (\"drug-addled\"); "
        "off: it must be a compound the catalog itself uses")
    reader: bool = setting(
        True, "reader: a pretrained English language model (SmolLM2-135M) reads every candidate that passed the "
        "other rules and keeps it only if it reads as well as real text (generator/curate/reader.py); off = no "
        "reader rule")
    reader_model: str = setting("", "reader: its GGUF model file; empty = SmolLM2-135M-Instruct in the machine "
                                "cache (python -m generator fetch-model)")
    reader_prefix: str = setting("Netflix description: ", "reader: the text each description is read after "
                                 "(part of the score cache's key)")
    reader_percentile: float = setting(
        10.0, "reader: keep a candidate only if its SLOR is at least this percentile of the night's real held-out "
        "descriptions' (0: at least the worst of them)", at_least=0, at_most=100)
    reader_held_out: int = setting(400, "reader: most held-out descriptions the cut is calibrated on (a seeded "
                                   "sample of a larger split)", at_least=20)
    reader_seconds: float = setting(
        240.0, "reader: seconds of reading the candidates of one curation may take (loading the model, calibrating "
        "and cached scores not counted); candidates not read by then are rejected as reader-budget, never "
        "published unread", above=0)
    reader_matmul_dtype: str = setting(
        "bfloat16", "reader: the type of the blocks' projections in its matmuls: bfloat16 (about 2x faster on a CPU "
        "with bfloat16 units; mean |change| of a text's NLL per token 0.005 on 32 real descriptions) or float32 "
        "(part of the score cache's key)", choices=("bfloat16", "float32"))
    reader_batch_size: int = setting(16, "reader: texts per forward pass", at_least=1, at_most=512)
    reader_threads: int = setting(0, "reader: TensorFlow threads when it loads first in its process; 0 = its default",
                                  at_least=0)
    title_max_words: int = setting(10, "title-too-long: most words a title may have (99 % of the 2021 catalog's "
                                   "titles have at most 9)", at_least=1)
    title_catalogs: list = setting([], "title-copy: more catalog CSVs (paths, http(s):// or s3:// URLs) whose "
                                   "titles a title may not copy, besides the night's own catalog, e.g. the real "
                                   "catalogs when the night trains on the bundled one")
    title_max_chars: int = setting(60, "title-too-long: most characters a title may have (99 % of the 2021 "
                                   "catalog's have at most 51)", at_least=1)
    min_kept: int = setting(1, "a night that keeps fewer descriptions fails loudly (exit 2, the DAG marks it "
                            "failed) and the last good site stays published; 0 = publish even an empty gallery",
                            at_least=0)

    def validate(self) -> None:
        check_declared(self, "curate")  # the loader checked a loaded config; this guards direct callers
        if self.max_words < self.min_words:
            raise UserError(f"curate.max_words = {self.max_words} is below curate.min_words = {self.min_words}",
                            "set curate.max_words >= curate.min_words")
        if self.max_chars < self.min_chars:
            raise UserError(f"curate.max_chars = {self.max_chars} is below curate.min_chars = {self.min_chars}",
                            "use 0 <= curate.min_chars <= curate.max_chars")
