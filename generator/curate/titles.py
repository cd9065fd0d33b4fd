"""The title rules: a made-up description's made-up title must be a title of its own.

A sample from a model trained on titled text carries ``title`` (``textformat.parse_sample``);
one without the field (an untitled model, a hand-written or archived file) is not judged
here. A title failing a rule rejects the whole sample, with the rule as its ``reason``:
the description and its title were written together, the title is what a reader sees
first, and generation is cheap, so the night's rounds write another pair rather than
curate inventing a title the model did not. In order (:data:`TITLE_RULES`):

- ``title-empty``: no title (the model wrote no separator, or nothing before it);
- ``title-too-long``: more than ``title_max_words`` words or ``title_max_chars`` characters;
- ``title-malformed``: a second separator (the description holds one), leftover markers,
  brackets, broken or invisible characters, unbalanced quotes (``rules.malformed_characters``);
- ``title-degenerate``: a doubled function word ("The The Last Man"), a word repeated past
  ``max_word_run``, too few distinct words (``rules.check_degenerate``, as for descriptions);
- ``title-first-words``: the title is just the description's own first words;
- ``title-invented-word``: a word in neither the lexicon (English and the catalog's titles and
  descriptions, ``lexicon.py``) nor the sample's own description. Every word of a title is
  capitalised, so a capital says nothing about names here: a name must come from the
  catalog or the description it titles;
- ``title-copy``: the title of a catalog entry, training or held-out (case, accents,
  apostrophes and punctuation ignored: ``title_key``), or of a catalog named by
  ``curate.title_catalogs`` (real titles a night trained on another catalog must not copy);
- ``title-repeat``: the title of a sample kept tonight (the first one wins) or of a
  description published on an earlier night (the history file).

``title-reader`` follows, for the night's surviving titles together: :class:`TitleReader`
is the seam where a pretrained reader's scorer plugs in (off unless one is given).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

from ..textformat import has_title
from .lexicon import fold, judged_words, tokens
from .rules import check_degenerate, malformed_characters
from .settings import CurateSettings
from .words import normalised_words

TITLE_RULES = ("title-empty", "title-too-long", "title-malformed", "title-degenerate", "title-first-words",
               "title-invented-word", "title-copy", "title-repeat")
READER_RULE = "title-reader"


def title_key(title: str) -> str:
    """A title as compared: its normalised words (case, accents, apostrophes, punctuation ignored; "&" is "and")."""
    return " ".join(normalised_words(title.replace("&", " and ")))


class TitleJudge:
    """The per-sample title rules with their indexes: the catalog's titles and the titles kept so far."""

    def __init__(self, catalog: list, settings: CurateSettings, lexicon=None, history: Iterable[dict] = (),
                 known_titles: Iterable[tuple[str, str]] = ()):
        """``catalog``: the ingested entries (``ingest.read_catalog``); ``lexicon``: the description rule's
        (None: invented words are not judged); ``history``: records published on earlier nights;
        ``known_titles``: more (title, where) pairs no title may copy (:func:`load_known_titles`)."""
        self.settings = settings
        self.lexicon = lexicon
        self.catalog: dict[str, str] = {}  # title key -> how the detail names it
        for entry in catalog:
            key = title_key(entry.title or "")
            if key:
                self.catalog.setdefault(key, f"the catalog's title {entry.title!r}"
                                        + (f" ({entry.show_id})" if getattr(entry, "show_id", "") else ""))
        for title, where in known_titles:
            key = title_key(title)
            if key:
                self.catalog.setdefault(key, f"the title {title!r} of {where}")
        self.kept: dict[str, str] = {}  # title key -> who holds it: a kept sample or an earlier night
        for record in history:
            key = title_key(record.get("title") or "")
            if key:
                night = record.get("night")
                self.kept.setdefault(key, f"a description published on {night}" if night else
                                     "a previously published description")

    def judge(self, record: dict) -> tuple[str, str] | None:
        """``(reason, detail)`` of the first title rule the sample fails, or None (also for an untitled sample)."""
        title = record.get("title")
        if title is None:
            return None
        title, text = " ".join(title.split()), record["text"]
        for reason in TITLE_RULES:  # each rule's check is the method named after it: title-too-long, check_too_long
            check = getattr(self, "check_" + reason.removeprefix("title-").replace("-", "_"))
            detail = check(title, text)
            if detail:
                return reason, detail
        return None

    def add(self, record: dict, sample_key: str) -> None:
        """A kept sample's title: later samples may not repeat it."""
        key = title_key(record.get("title") or "")
        if key:
            self.kept.setdefault(key, f"kept sample {sample_key}")

    # the rules, each (title, description) -> detail when it fails ---------------------------------
    def check_empty(self, title: str, text: str) -> str | None:
        return None if title_key(title) else "no title before the separator"

    def check_too_long(self, title: str, text: str) -> str | None:
        words, limit = len(title.split()), self.settings.title_max_words
        if words > limit:
            return f"{words} words (at most {limit})"
        if len(title) > self.settings.title_max_chars:
            return f"{len(title)} characters (at most {self.settings.title_max_chars})"
        return None

    def check_malformed(self, title: str, text: str) -> str | None:
        if has_title(text):
            return "a second title separator: the description holds a '|'"
        return malformed_characters(title)

    def check_degenerate(self, title: str, text: str) -> str | None:
        return check_degenerate(normalised_words(title), self.settings)

    def check_first_words(self, title: str, text: str) -> str | None:
        words = normalised_words(title)
        if words == normalised_words(text)[:len(words)]:
            return f"{title!r} is how the description begins"
        return None

    def check_invented_word(self, title: str, text: str) -> str | None:
        if self.lexicon is None:
            return None
        # The description passed its own rule: a name it introduces may name it too.
        own = {fold(part) for token, _ in tokens(text) for part in judged_words(token)}
        invented = [word for word in self.lexicon.unknown(title, allow_names=False) if fold(word) not in own]
        if len(invented) > self.settings.max_unknown_words:
            return f"{len(invented)} invented words (limit {self.settings.max_unknown_words}): {', '.join(invented[:5])}"
        return None

    def check_copy(self, title: str, text: str) -> str | None:
        return self.catalog.get(title_key(title))

    def check_repeat(self, title: str, text: str) -> str | None:
        holder = self.kept.get(title_key(title))
        return f"the title of {holder}" if holder else None


def load_known_titles(sources: Iterable[str]) -> list[tuple[str, str]]:
    """(title, where) of every row of the CSVs ``sources`` (``curate.title_catalogs``): a ``title``
    column, read as ingest reads a catalog (path, http(s):// URL or s3:// URI; BOM, spaced headers)."""
    import csv
    import io

    from ..errors import UserError
    from ..ingest import CSV_FIELD_LIMIT, clean_text, decode_catalog, fetch_catalog_bytes
    from ..redact import public_label

    found = []
    csv.field_size_limit(CSV_FIELD_LIMIT)
    for source in sources:
        label = public_label(source)
        rows = csv.reader(io.StringIO(decode_catalog(fetch_catalog_bytes(source), label), newline=""))
        header = [name.strip().lower() for name in next(rows, [])]
        if "title" not in header:
            raise UserError(f"curate.title_catalogs: {label} has no 'title' column",
                            "name CSVs with a title column (such as Kaggle's netflix_titles.csv)")
        column = header.index("title")
        found += [(clean_text(row[column]), label) for row in rows if len(row) > column and row[column].strip()]
    return found


# --- the reader's seam: titles judged together by a pretrained model's scores ----------------------

@dataclasses.dataclass(frozen=True)
class TitleReader:
    """How a pretrained reader judges titles: ``score`` maps titles to scores (higher reads better,
    e.g. SLOR), and a title scoring under ``min_score`` is rejected (``title-reader``).

    Curate calls ``score`` once, with every title that passed the other rules, in input order.
    """
    score: Callable[[list[str]], Sequence[float]]
    min_score: float
    name: str = "reader"


def apply_title_reader(kept: list[dict], reader: TitleReader | None) -> tuple[list[dict], list[dict], dict]:
    """(kept, dropped with reason and detail, summary) after the reader's cut; input order is kept."""
    if reader is None:
        return kept, [], {"on": False}
    titled = [record for record in kept if record.get("title")]
    scores = list(reader.score([record["title"] for record in titled])) if titled else []
    if len(scores) != len(titled):
        raise ValueError(f"title reader {reader.name} returned {len(scores)} scores for {len(titled)} titles")
    low = {id(record): score for record, score in zip(titled, scores) if not score >= reader.min_score}
    survivors, dropped = [], []
    for record in kept:
        if id(record) in low:
            dropped.append({**record, "reason": READER_RULE,
                            "detail": f"{reader.name} score {low[id(record)]:.3f} under {reader.min_score:g}"})
        else:
            survivors.append(record)
    return survivors, dropped, {"on": True, "reader": reader.name, "min_score": reader.min_score,
                                "judged": len(titled), "dropped": len(dropped)}
