"""The training-text format: one home for the markers, the control prefix, and parsing samples back.

A training line is::

    <|startoftext|> [<type>] [<main genre>] <title> | <description><|endoftext|>

or, for text without titles (``ingest.titles = false``, a catalog without them)::

    <|startoftext|> [<type>] [<main genre>] <description><|endoftext|>

Everything after the control prefix is the line's *body*: the title, the
separator :data:`TITLE_SEPARATOR` and the description (a model family that
renders lines as a chat takes the body as the reply). Generation starts from
the same prefix (``<|startoftext|>`` plus an optional control prefix) and cuts
the continuation at ``<|endoftext|>``. Ingest builds lines with
:func:`training_line`, generate builds prefixes with :func:`generation_prefix`
and turns raw decoded text into a record with :func:`parse_sample`; nothing
else spells the format out.

Why `` | ``: no description of the 2020 or 2021 Netflix catalogs holds a ``|``
(2 of 8,807 titles do; :func:`clean_title` makes them colons), whereas ``:``,
`` - `` and `` — `` occur in many titles or descriptions. Byte-level BPE
pre-tokenizers (GPT-2's, SmolLM2's) cut `` |`` into a piece of its own, so it is
one token that never merges with the title's last word or the description's
first (SmolLM2: ``' Ledger', ' |', ' A'``), and a catalog-trained BPE learns it
from its first merges, since every line has one.
"""

from __future__ import annotations

import re

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
KNOWN_TYPES = ("Movie", "TV Show")

TITLE_SEPARATOR = " | "

MARKERS = re.compile(r"<\|(?:startoftext|endoftext)\|>")
_BRACKET = re.compile(r"\s*\[([^\[\]]{1,60})\]")
# What a weak model writes where it expects another tag: an empty tag "[]" or a stray "]".
_TAG_NOISE = re.compile(r"\s*(?:\[\s*\]|\])")
# The separator as a weak model may write it: a bar with or without spaces, never the bar of a marker.
_SEPARATOR = re.compile(r"\s*(?<!<)\|(?!>)\s*")
_SPACE = re.compile(r"\s+")


def control_prefix(kind: str, genre: str) -> str:
    """The conditioning prefix of the data contract: ``[<type>] [<main genre>] ``.

    Either part may be missing; both missing gives the empty string, so
    unconditioned text stays valid training text.
    """
    parts = [f"[{value}]" for value in (kind, genre) if value]
    return " ".join(parts) + " " if parts else ""


def split_control(text: str) -> tuple[str | None, str | None, str]:
    """Parse a leading control prefix; returns (type, genre, description).

    The prefix is the run of ``[...]`` tags before the description: the first
    ``[Movie]``/``[TV Show]`` is the type, the first other tag the genre. A weak
    model sometimes repeats or reorders tags (``[Movie] [Movie] [Dramas]``), or
    writes an empty tag or a stray ``]`` where it expects one more (``[Dramas] []
    The Secret``, ``[Dramas]] The Pip``); they are all prefix, never description
    or title. Brackets later in the text stay, for curate to judge.
    """
    kind = genre = None
    position = 0
    while True:
        match = _BRACKET.match(text, position)
        if match is None:
            noise = _TAG_NOISE.match(text, position) if position else None  # noise only after a tag
            if noise is None:
                break
            position = noise.end()
            continue
        tag = match.group(1).strip()
        if tag in KNOWN_TYPES:
            kind = kind or tag
        else:
            genre = genre or tag
        position = match.end()
    return kind, genre, text[position:].strip()


def is_condition(condition: str) -> bool:
    """Is ``condition`` a control prefix alone, such as ``[TV Show] [Comedies]`` or ``[Movie]``?"""
    kind, genre, rest = split_control(condition + " x")
    return rest == "x" and bool(kind or genre)


def clean_title(title: str) -> str:
    """A catalog title as training text writes it: no separator or brackets inside, one line.

    ``|`` becomes ``:`` ("Black Holes | The Edge of All We Know" -> "Black Holes: The Edge of
    All We Know"), so the first bar of a line is always the separator; square brackets become
    round ones ("[REC]" -> "(REC)"), so a title never reads as a control tag.
    """
    title = _SEPARATOR.sub(": ", MARKERS.sub(" ", title)).translate(str.maketrans("[]", "()"))
    return _SPACE.sub(" ", title).strip(" :")


def titled_body(title: str, description: str) -> str:
    """A line's body: ``<title> | <description>``, or the description alone without a title."""
    return f"{title}{TITLE_SEPARATOR}{description}" if title else description


def split_title(body: str) -> tuple[str, str]:
    """(title, description) of a body; the title is "" when the body has no separator.

    The body is cut at its first separator (``|`` with or without spaces); a second
    one stays in the description, for curate to judge (``title-malformed``).
    """
    match = _SEPARATOR.search(body)
    if match is None:
        return "", body.strip()
    return body[:match.start()].strip(), body[match.end():].strip()


def has_title(body: str) -> bool:
    """Does a line's body carry a title separator?"""
    return _SEPARATOR.search(body) is not None


def training_line(description: str, kind: str = "", genre: str = "", conditional: bool = True,
                  title: str = "") -> str:
    """One line of training text: ``<|startoftext|> [<type>] [<genre>] <title> | <description><|endoftext|>``.

    ``title`` empty: the description alone (today's text for a catalog without titles).

    The space after the start marker is deliberate: GPT-2's pre-tokenizer glues
    runs of punctuation together, so ``|>[`` would become one BPE token in
    training while a generation prefix ending in ``|>`` cannot produce it, and
    the model would answer the prefix with a fresh ``<|startoftext|>``. With the
    space, ``|>`` is a token of its own in both places.
    """
    prefix = control_prefix(kind, genre) if conditional else ""
    return f"{START_TOKEN}{' ' + prefix if prefix else ''}{titled_body(title, description)}{END_TOKEN}\n"


def generation_prefix(condition: str = "") -> str:
    """The text generation starts from: the start marker, then the condition if any.

    No trailing space: in training text the space belongs to the next word's token.
    """
    condition = condition.strip()
    return START_TOKEN + (" " + condition if condition else "")


def parse_training_line(line: str) -> tuple[str | None, str | None, str] | None:
    """(type, genre, body) of a training line, or None for a line that is not one.

    The body is everything after the control prefix: ``<title> | <description>`` in titled
    text (:func:`split_title` parts them), the description alone otherwise.
    """
    if not line.startswith(START_TOKEN):
        return None
    return split_control(line[len(START_TOKEN):].replace(END_TOKEN, ""))


def titled_lines(lines) -> bool:
    """Is this training text titled: does every training line's body carry a title separator?"""
    bodies = [parsed[2] for parsed in map(parse_training_line, lines) if parsed is not None]
    return bool(bodies) and all(map(has_title, bodies))


def parse_sample(raw: str, prefix: str, titled: bool = False) -> dict:
    """Turn raw decoded text (prefix + continuation) into a samples-JSONL record.

    ``titled`` (a model trained on titled text): the record also has ``title``, the text
    before the first separator ("" when the model wrote none: curate rejects it), and
    ``text`` is what follows it. Untitled records have no ``title`` field.
    """
    body = raw[len(prefix):] if raw.startswith(prefix) else raw
    end = body.find(END_TOKEN)
    terminated = end >= 0
    if terminated:
        body = body[:end]
    # A model that opens a new description without closing this one did not finish it:
    # the text stops there, unterminated, and never carries a marker.
    restart = body.find(START_TOKEN)
    if restart >= 0:
        body, terminated = body[:restart], False
    condition = prefix[len(START_TOKEN):] if prefix.startswith(START_TOKEN) else ""
    kind, genre, text = split_control(condition + body)
    if not titled:
        return {"text": text, "terminated": terminated, "type": kind, "genre": genre}
    title, text = split_title(text)
    return {"text": text, "title": title, "terminated": terminated, "type": kind, "genre": genre}


# --- the Llama family's rendering of the same text -------------------------------------------------
# A chat-tuned base (SmolLM2-Instruct) already knows turns: a user asks, the assistant answers and
# closes its turn with ``<|im_end|>``. The Llama family therefore trains on, and generates from, each
# training line rendered as one exchange: the control prefix becomes the request, everything after it
# (the description, and whatever else the format carries there) is the reply verbatim. The markers
# map to tokens the tokenizer keeps whole: the start marker opens the user turn, the end marker is
# the reply's ``<|im_end|>``. So the untrained base already ends its samples where the format does,
# and fine-tuning only has to teach the catalog's voice.
CHAT_OPEN, CHAT_CLOSE = "<|im_start|>", "<|im_end|>"
CHAT_REPLY = f"{CHAT_CLOSE}\n{CHAT_OPEN}assistant\n"


def chat_request(kind: str | None, genre: str | None) -> str:
    """The user turn's words for a control prefix (either part may be missing)."""
    what = {"Movie": "film", "TV Show": "TV series"}.get(kind or "", "film or TV series")
    genre_words = f" in the genre {genre}" if genre else ""
    return f"Write the Netflix catalog description of a new {what}{genre_words}."


def chat_prompt(prefix: str) -> str:
    """A generation prefix (:func:`generation_prefix`) rendered as the chat text a reply follows."""
    kind, genre, rest = split_control(prefix[len(START_TOKEN):] if prefix.startswith(START_TOKEN) else prefix)
    return f"{CHAT_OPEN}user\n{chat_request(kind, genre)}{CHAT_REPLY}{rest}"


def chat_training_text(line: str) -> str | None:
    """A training line rendered as one exchange ending in ``<|im_end|>`` (None for a non-line)."""
    parsed = parse_training_line(line.strip())
    if parsed is None:
        return None
    kind, genre, body = parsed
    return f"{CHAT_OPEN}user\n{chat_request(kind, genre)}{CHAT_REPLY}{body}{CHAT_CLOSE}"
