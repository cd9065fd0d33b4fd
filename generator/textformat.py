"""The training-text format: one home for the markers, the control prefix, and parsing samples back.

A training line is::

    <|startoftext|> [<type>] [<main genre>] <description><|endoftext|>

Generation starts from the same prefix (``<|startoftext|>`` plus an optional
control prefix) and cuts the continuation at ``<|endoftext|>``. Ingest builds
lines with :func:`training_line`, generate builds prefixes with
:func:`generation_prefix` and turns raw decoded text into a record with
:func:`parse_sample`; nothing else spells the format out.
"""

from __future__ import annotations

import re

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
KNOWN_TYPES = ("Movie", "TV Show")

MARKERS = re.compile(r"<\|(?:startoftext|endoftext)\|>")
_BRACKET = re.compile(r"\s*\[([^\[\]]{1,60})\]")


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
    model sometimes repeats or reorders tags (``[Movie] [Movie] [Dramas]``); they
    are all prefix, never description. Brackets later in the text stay, for
    curate to judge.
    """
    kind = genre = None
    position = 0
    while (match := _BRACKET.match(text, position)) is not None:
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


def training_line(description: str, kind: str = "", genre: str = "", conditional: bool = True) -> str:
    """One line of training text: ``<|startoftext|> [<type>] [<genre>] <description><|endoftext|>``.

    The space after the start marker is deliberate: GPT-2's pre-tokenizer glues
    runs of punctuation together, so ``|>[`` would become one BPE token in
    training while a generation prefix ending in ``|>`` cannot produce it, and
    the model would answer the prefix with a fresh ``<|startoftext|>``. With the
    space, ``|>`` is a token of its own in both places.
    """
    prefix = control_prefix(kind, genre) if conditional else ""
    return f"{START_TOKEN}{' ' + prefix if prefix else ''}{description}{END_TOKEN}\n"


def generation_prefix(condition: str = "") -> str:
    """The text generation starts from: the start marker, then the condition if any.

    No trailing space: in training text the space belongs to the next word's token.
    """
    condition = condition.strip()
    return START_TOKEN + (" " + condition if condition else "")


def parse_training_line(line: str) -> tuple[str | None, str | None, str] | None:
    """(type, genre, description) of a training line, or None for a line that is not one."""
    if not line.startswith(START_TOKEN):
        return None
    return split_control(line[len(START_TOKEN):].replace(END_TOKEN, ""))


def parse_sample(raw: str, prefix: str) -> dict:
    """Turn raw decoded text (prefix + continuation) into a samples-JSONL record."""
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
    return {"text": text, "terminated": terminated, "type": kind, "genre": genre}


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
