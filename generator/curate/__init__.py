"""Curate: publish only novel, well-formed, distinct descriptions.

``curate(samples, catalog, out)`` reads samples JSONL (generate's output) and
checks every sample against these rules (``RULES``), in this order; the first rule a
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
                      catalog's titles and descriptions (generator/curate/lexicon.py). -1 = off.
6. ``copy``           shares a run of ``copy_ngram`` consecutive words with any description of
                      the *full* catalog (training and validation), after normalisation (case,
                      accents, apostrophes and punctuation ignored). Exact: hashed n-grams,
                      each hit confirmed against the catalog text.
7. ``blocklist``      contains a word or phrase of the blocklist file.
8. ``near-duplicate`` Jaccard similarity of word shingles (``shingle_words``; single words by
                      default) >= ``near_duplicate_threshold`` with a sample already kept tonight (the
                      first one wins) or a description published on an earlier night (``history_path``).
                      Candidates come from datasketch's MinHash LSH; each is confirmed with the exact Jaccard.
9. ``reader``         a pretrained English language model reads the candidates that passed every
                      rule above, in batches: a SLOR below the ``reader_percentile``-th percentile of
                      the catalog's real held-out descriptions' reads worse than real text
                      (``reader.py``). ``reader = false`` turns it off.
10. ``reader-budget`` not read: the reader's ``reader_seconds`` of reading were spent before its
                      turn (never published unread).

The title rules (``titles.py``) judge a sample's ``title`` (from a model trained on titled
text; a sample without the field skips them). A bad title rejects the whole sample:

11. ``title-empty``   no title before the separator.
12. ``title-too-long`` more than ``title_max_words`` words or ``title_max_chars`` characters.
13. ``title-malformed`` a second separator, leftover markers or brackets, broken characters.
14. ``title-degenerate`` a doubled function word ("The The"), a word loop, few distinct words.
15. ``title-first-words`` the title is the description's own first words.
16. ``title-invented-word`` more than ``max_unknown_words`` words in neither the lexicon nor
                      the sample's description (a capital is no sign of a name in a title).
17. ``title-copy``    a catalog title, training or held-out (case and punctuation ignored).
18. ``title-repeat``  the title of a sample kept tonight or published on an earlier night.
19. ``title-reader``  after the per-sample rules: a pretrained reader's score of the title
                      under its cut (``titles.TitleReader``; the night passes the reader's).

Rules 1-7 and 11-18 judge each sample alone; then 8 (and 18 again, against what is kept so far)
and 9-10 go through the survivors in input order, chunk by chunk (a near-duplicate of an already
kept description is not read); 19 reads the titles of what is left.

The settings are ``CurateSettings`` (``settings.py``); the modules: (normalised words and ids are ``words.py``),
``rules`` (per-sample checks), ``indexes`` (copy, near-duplicate, blocklist), ``titles`` (the title rules),
``reader`` (the reader, its score, cache and cut), ``stage`` (``curate()``), ``cli``. Kept samples stay in
input order unless they carry the numeric field ``rank_by`` (default ``reader_score``,
the reader's SLOR; ``logprob`` is generate's mean token log-probability): then they are
ordered highest first and each records its ``rank``. Render keeps that order: the home
page's picks and every listing lead with the best-read descriptions.

Outputs: the kept samples (``out_path``: every original field plus ``id``, the
reader's ``reader_score`` and ``reader_nll``, and ``rank`` when ranked), the rejected
ones (``<out stem>.rejected.jsonl`` unless given: plus ``id``, ``reason``, ``detail``;
those the reader judged also carry their scores and the night's ``reader_cut``) and
``<out stem>.manifest.json`` (counts per reason, kept rate, the reader's cut, held-out
count and median, settings).

``id`` is the first 12 hex digits of the SHA-256 of the text in Unicode NFC
with whitespace collapsed, so a description keeps its permalink across
re-renders and re-runs. Curation is deterministic and idempotent: curating the
kept output again keeps all of it, unchanged (the reader's scores come from its cache;
only a candidate its budget left unread can fare differently on a re-run, which reads it).
"""

from .cli import add_cli
from .indexes import CopyIndex, NearDuplicateIndex, jaccard, load_blocklist, shingles
from .settings import RULES, CurateSettings
from .stage import Curator, curate, rank
from .titles import TITLE_RULES, TitleReader, title_key
from .words import ngrams, normalised_words, sample_id

__all__ = ["RULES", "TITLE_RULES", "CopyIndex", "CurateSettings", "Curator", "NearDuplicateIndex", "TitleReader",
           "add_cli", "curate", "jaccard", "load_blocklist", "ngrams", "normalised_words", "rank", "sample_id",
           "shingles", "title_key"]
