"""Ingest: a catalog CSV (local path, http(s) URL or s3:// URI) -> training text.

Outputs, in the ingest directory:
  catalog.jsonl  every kept title: show_id, type, title, genres, description, split, control
  train.txt      gpt-2-simple training text, one ``<|startoftext|>…<|endoftext|>`` per line
  val.txt        the held-out descriptions in the same format
  source.csv     the exact catalog bytes read (the night's snapshot)
and ``ingest.manifest.json`` beside it with counts and the catalog's content hash.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import END_TOKEN, START_TOKEN
from .artifacts import atomic_write_bytes, atomic_write_text, sha256_text, write_jsonl, write_manifest
from .errors import UserError

REQUIRED_COLUMN = "description"
_SPACE = re.compile(r"\s+")
_MARKERS = re.compile(r"<\|(?:startoftext|endoftext)\|>")


@dataclasses.dataclass
class IngestSettings:
    description_column: str = "description"
    validation_fraction: float = 0.05
    conditional: bool = True
    min_words: int = 3

    def validate(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise UserError(
                f"ingest.validation_fraction must be in [0, 1), got {self.validation_fraction}",
                "set it to a fraction such as 0.05",
            )


@dataclasses.dataclass
class CatalogEntry:
    show_id: str
    type: str
    title: str
    genres: list[str]
    description: str

    @property
    def main_genre(self) -> str:
        return self.genres[0] if self.genres else ""


def control_prefix(kind: str, genre: str) -> str:
    """The conditioning prefix of the data contract: ``[<type>] [<main genre>] ``.

    Either part may be missing; both missing gives the empty string, so
    unconditioned text stays valid training text.
    """
    parts = [f"[{value}]" for value in (kind, genre) if value]
    return " ".join(parts) + " " if parts else ""


_BRACKET = re.compile(r"\s*\[([^\[\]]{1,60})\]")
KNOWN_TYPES = ("Movie", "TV Show")


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


def clean_text(value: str) -> str:
    """Normalise Unicode (NFC), drop control characters, collapse whitespace."""
    value = unicodedata.normalize("NFC", value)
    value = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in value)
    return _SPACE.sub(" ", value).strip()


def fetch_catalog_bytes(source: str) -> bytes:
    """Read the raw CSV bytes from a local path, an http(s) URL or an s3:// URI."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(source, timeout=60) as response:
                return response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise UserError(f"could not download catalog {source}: {exc}", "check the URL and the network") from None
    if parsed.scheme == "s3":
        from .s3 import s3_client, s3_failure

        if not parsed.netloc or not parsed.path.strip("/"):
            raise UserError(f"bad catalog URI {source!r}", "use s3://bucket/key.csv")
        try:
            response = s3_client().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
            return response["Body"].read()
        except Exception as exc:  # botocore raises many types; name the problem clearly
            problem, fix = s3_failure(exc, parsed.netloc)
            raise UserError(f"could not read catalog {source}: {problem}", fix) from None
    if parsed.scheme == "file":
        source = urllib.parse.unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise UserError(f"unsupported catalog source {source!r}", "use a local path, http(s):// URL or s3:// URI")
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"catalog not found: {path}", "pass the path of a CSV such as sample_data/catalog.csv")
    return path.read_bytes()


def decode_catalog(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"catalog {source} is not UTF-8 text (byte {exc.start})",
            "re-save the CSV as UTF-8",
        ) from None


def parse_catalog(text: str, source: str, settings: IngestSettings | None = None) -> tuple[list[CatalogEntry], dict]:
    """Parse catalog CSV text into entries; returns (entries, drop counts)."""
    settings = settings or IngestSettings()
    column = settings.description_column
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"catalog {source} is empty", "pass a CSV with a header row and at least one description") from None
    except csv.Error as exc:
        raise UserError(f"catalog {source} is not valid CSV: {exc}", "check the file's quoting") from None
    # Tolerate real-world headers: BOMs (stripped on decode), spaces, any case.
    names = [name.strip().lower() for name in header]
    if column.lower() not in names:
        raise UserError(
            f"catalog {source} has no {column!r} column (columns: {', '.join(n for n in names if n) or 'none'})",
            f"use a CSV like Kaggle's netflix_titles.csv with a {column!r} column",
        )
    index = {name: position for position, name in enumerate(names)}

    def field(row: list[str], name: str) -> str:
        position = index.get(name)
        return row[position] if position is not None and position < len(row) else ""

    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    drops = {"empty": 0, "too_short": 0, "duplicate": 0}
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            description = _MARKERS.sub(" ", clean_text(field(row, column.lower())))
            description = _SPACE.sub(" ", description).strip()
            if not description:
                drops["empty"] += 1
                continue
            if len(description.split()) < settings.min_words:
                drops["too_short"] += 1
                continue
            key = description.casefold()
            if key in seen:
                drops["duplicate"] += 1
                continue
            seen.add(key)
            genres = [clean_text(g) for g in field(row, "listed_in").split(",") if clean_text(g)]
            entries.append(
                CatalogEntry(
                    show_id=clean_text(field(row, "show_id")),
                    type=clean_text(field(row, "type")),
                    title=clean_text(field(row, "title")),
                    genres=genres,
                    description=description,
                )
            )
    except csv.Error as exc:
        raise UserError(f"catalog {source} is not valid CSV: {exc}", "check the file's quoting") from None
    if not entries:
        raise UserError(f"catalog {source} has no usable descriptions", "pass a catalog with non-empty descriptions")
    return entries, drops


def load_catalog(source: str, settings: IngestSettings | None = None) -> list[CatalogEntry]:
    """Every usable entry of a catalog (used by curate's copy check too)."""
    return parse_catalog(decode_catalog(fetch_catalog_bytes(source), source), source, settings)[0]


def is_validation(description: str, fraction: float) -> bool:
    """Deterministic split by content hash: stable across runs and catalog refreshes."""
    bucket = int.from_bytes(hashlib.sha256(description.encode("utf-8")).digest()[:8], "big")
    return bucket / 2**64 < fraction


def training_line(entry: CatalogEntry, conditional: bool) -> str:
    """One line of training text: ``<|startoftext|> [<type>] [<genre>] <description><|endoftext|>``.

    The space after the start marker is deliberate: GPT-2's pre-tokenizer glues
    runs of punctuation together, so ``|>[`` would become one BPE token in
    training while a generation prefix ending in ``|>`` cannot produce it, and
    the model would answer the prefix with a fresh ``<|startoftext|>``. With the
    space, ``|>`` is a token of its own in both places.
    """
    prefix = control_prefix(entry.type, entry.main_genre) if conditional else ""
    return f"{START_TOKEN}{' ' + prefix if prefix else ''}{entry.description}{END_TOKEN}\n"


def ingest(source: str, out_dir: str | Path, settings: IngestSettings | None = None) -> dict:
    """Run the ingest stage; returns its manifest (also written beside ``out_dir``)."""
    settings = settings or IngestSettings()
    out_dir = Path(out_dir)
    raw = fetch_catalog_bytes(source)
    text = decode_catalog(raw, source)
    entries, drops = parse_catalog(text, source, settings)

    train_lines, val_lines, records = [], [], []
    for entry in entries:
        split = "val" if is_validation(entry.description, settings.validation_fraction) else "train"
        line = training_line(entry, settings.conditional)
        (val_lines if split == "val" else train_lines).append(line)
        records.append({**dataclasses.asdict(entry), "split": split,
                        "control": control_prefix(entry.type, entry.main_genre).strip()})
    if not train_lines:
        raise UserError(f"catalog {source} leaves no training descriptions", "lower ingest.validation_fraction")

    train_text = "".join(train_lines)
    # The hash covers what training sees (settings included), so an unchanged
    # catalog re-read from elsewhere still counts as unchanged.
    training_hash = sha256_text(f"conditional={settings.conditional}\n" + train_text)
    # Keep the exact bytes read: later stages (curate's copy check) and re-runs use
    # this snapshot, not a source that may have changed since.
    atomic_write_bytes(out_dir / "source.csv", raw)
    atomic_write_text(out_dir / "train.txt", train_text)
    atomic_write_text(out_dir / "val.txt", "".join(val_lines))
    write_jsonl(out_dir / "catalog.jsonl", records)

    words = [len(e.description.split()) for e in entries]
    chars = [len(e.description) for e in entries]
    genres = sorted({g for e in entries for g in e.genres})
    return write_manifest(
        out_dir,
        "ingest",
        source=source,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        catalog_hash=training_hash,
        rows=len(entries) + sum(drops.values()),
        kept=len(entries),
        dropped=drops,
        train_count=len(train_lines),
        val_count=len(val_lines),
        conditional=settings.conditional,
        max_words=max(words),
        max_chars=max(chars),
        median_words=sorted(words)[len(words) // 2],
        types=sorted({e.type for e in entries if e.type}),
        genres=genres,
        outputs={"snapshot": str(out_dir / "source.csv"), "train": str(out_dir / "train.txt"), "val": str(out_dir / "val.txt"),
                 "catalog": str(out_dir / "catalog.jsonl")},
    )


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest", parents=[subparsers.common],
        help="read a catalog CSV and write gpt-2-simple training text",
        description="Read a catalog CSV (path, http(s):// URL or s3:// URI) and write train.txt, val.txt, "
        "catalog.jsonl into --out, with ingest.manifest.json beside it.",
    )
    parser.add_argument("--catalog", required=True, metavar="SRC", help="catalog CSV: path, http(s):// URL or s3:// URI")
    parser.add_argument("--out", required=True, metavar="DIR", help="ingest output directory")
    parser.add_argument("--validation-fraction", type=float, help="held-out share (default from config)")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .config import with_overrides

    config = with_overrides(config, ingest={"validation_fraction": args.validation_fraction})
    config.ingest.validate()
    manifest = ingest(args.catalog, args.out, config.ingest)
    print(f"ingested {manifest['kept']} descriptions ({manifest['train_count']} train, "
          f"{manifest['val_count']} validation) -> {args.out}")
    return 0
