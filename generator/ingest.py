"""Ingest: a catalog CSV (local path, http(s) URL or s3:// URI) -> training text.

Outputs, in the ingest directory:
  catalog.jsonl  every kept title: show_id, type, title, genres, description, split, control
  train.txt      gpt-2-simple training text, one ``<|startoftext|>…<|endoftext|>`` per line
                 (with ``titles``, each line carries its title: generator/textformat.py)
  val.txt        the held-out descriptions in the same format
  source.csv     the exact catalog bytes read (the night's snapshot)
and ``ingest.manifest.json`` beside it with counts and the catalog's content hash.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import re
import unicodedata
import urllib.parse
from pathlib import Path

from .artifacts import (atomic_write_bytes, atomic_write_text, check_output_dir, read_jsonl, sha256_text, write_jsonl,
                        write_manifest)
from .errors import UserError
from .redact import public_label, split_url
from .settings import setting
from .textformat import MARKERS, clean_title, control_prefix, training_line

log = logging.getLogger(__name__)

CATALOG_RECORDS = "catalog.jsonl"
# The longest field a catalog may hold, in characters (Python's csv default is 131,072):
# a real description is under 1,000; a longer field is more likely an unclosed quote.
CSV_FIELD_LIMIT = 1 << 20
_SPACE = re.compile(r"\s+")


@dataclasses.dataclass
class IngestSettings:
    description_column: str = setting("description", "CSV column holding the description text (required)")
    validation_fraction: float = setting(0.05, "share of descriptions held out for validation loss; split by a "
                                         "hash of the text, so a description keeps its side across refreshes",
                                         at_least=0, below=1)
    conditional: bool = setting(True, 'prefix each training description with "[<type>] [<main genre>] " so '
                                "generation can be steered by type and genre")
    titles: bool = setting(True, "each training line carries its title (\"[Movie] [Dramas] The Salt Ledger | A "
                           "widowed ...\"), so the model names what it describes; rows without a title are left "
                           "out of the training text; false (or a catalog where under half the rows have a "
                           "title): descriptions only")
    min_words: int = setting(3, "rows with descriptions shorter than this many words are dropped as noise",
                             at_least=0)
    fetch_timeout_seconds: float = setting(600.0, "an http(s) catalog must arrive whole within this many seconds "
                                           "(connect, headers and body), however slowly its server sends it",
                                           above=0)


@dataclasses.dataclass
class CatalogEntry:
    show_id: str
    type: str
    title: str
    genres: list[str]
    description: str
    split: str = ""  # "train" or "val": the held-out side, by a hash of the description

    @property
    def main_genre(self) -> str:
        return self.genres[0] if self.genres else ""


def clean_text(value: str) -> str:
    """Normalise Unicode (NFC), drop control characters, collapse whitespace."""
    value = unicodedata.normalize("NFC", value)
    value = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in value)
    return _SPACE.sub(" ", value).strip()


def fetch_catalog_bytes(source: str, fetch_timeout_seconds: float = 600.0) -> bytes:
    """Read the raw CSV bytes from a local path, an http(s) URL or an s3:// URI."""
    parsed = split_url(source, "catalog URL", "pass a path or an http(s)://host/path URL")
    if parsed.scheme in ("http", "https"):
        from .catalog_http import fetch_http

        return fetch_http(source, parsed, fetch_timeout_seconds)
    if parsed.scheme == "s3":
        from .s3 import s3_client, s3_failure

        if not parsed.netloc or not parsed.path.strip("/"):
            raise UserError(f"bad catalog URI {public_label(source)!r}", "use s3://bucket/key.csv")
        try:
            response = s3_client().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
            return response["Body"].read()
        except UserError:
            raise
        except Exception as exc:  # botocore raises many types; name the problem clearly
            problem, fix = s3_failure(exc, parsed.netloc)
            raise UserError(f"could not read catalog {public_label(source)}: {problem}", fix) from None
    if parsed.scheme == "file":
        source = urllib.parse.unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise UserError(f"unsupported catalog source {public_label(source)!r}",
                        "use a local path, http(s):// URL or s3:// URI")
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


def parse_catalog(text: str, source: str, settings: IngestSettings) -> tuple[list[CatalogEntry], dict]:
    """Parse catalog CSV text into entries; returns (entries, drop counts)."""
    column = settings.description_column
    csv.field_size_limit(CSV_FIELD_LIMIT)
    # newline="": rows end at \n, \r\n or a lone \r (old Mac exports), as csv wants its input split.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"catalog {source} is empty", "pass a CSV with a header row and at least one description") from None
    except csv.Error as exc:
        raise _csv_error(exc, source, reader.line_num) from None
    # Tolerate real-world headers: BOMs (stripped on decode), spaces, any case.
    names = [name.strip().lower() for name in header]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise UserError(f"catalog {source}: the header names column {repeated[0]!r} {names.count(repeated[0])} times",
                        "give every column its own name (which one holds the data would be a guess)")
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
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num
            if line > start:  # a quoted field ran over several lines: legal, unless it swallowed rows
                _check_swallowed_rows(row, len(names), source, start)
            if len(row) > len(names) and any(cell.strip() for cell in row[len(names):]):
                # Cells beyond the header shift every column: the description would be another cell.
                raise UserError(f"catalog {source}: line {start} has {len(row)} cells but the header names {len(names)}",
                                f"quote the cells of line {start} that contain commas (\"a, b\")")
            if not any(cell.strip() for cell in row):
                continue
            description = MARKERS.sub(" ", clean_text(field(row, column.lower())))
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
                    split="val" if is_validation(description, settings.validation_fraction) else "train",
                )
            )
    except csv.Error as exc:
        raise _csv_error(exc, source, reader.line_num) from None
    if not entries:
        raise UserError(f"catalog {source} has no usable descriptions", "pass a catalog with non-empty descriptions")
    return entries, drops


def _csv_error(exc: csv.Error, source: str, line: int) -> UserError:
    if "field larger than field limit" in str(exc):
        return UserError(f"catalog {source}: line {line}: a field is longer than {CSV_FIELD_LIMIT:,} characters, "
                         "the most one field may hold",
                         f"close the quote that opens before line {line} (a quote inside a field is written \"\"), "
                         "or shorten that field")
    return UserError(f"catalog {source} is not valid CSV (line {line}): {exc}", "check the file's quoting")


def _check_swallowed_rows(row: list[str], columns: int, source: str, start: int) -> None:
    """Refuse a field that swallowed the following rows through an unclosed quote.

    Python's csv reports an unclosed quote only at the end of the file, if at all: until a
    later quote closes it, every following line is one field's text, so rows vanish and CSV
    text enters the training data. A row running over several lines is such a swallow when its
    width differs from the header's (the quote closed inside a later row and shifted its
    cells), or when a field's line (after its first) reads as a whole row of the header's
    width or holds the ``","`` of quoted cells.
    """
    if columns >= 2 and len(row) != columns:
        raise UserError(
            f"catalog {source}: line {start}: a quoted field runs over several lines and leaves the row with "
            f"{len(row)} cells instead of {columns}: an unclosed quote swallowed the rows after it",
            f"close the quote on line {start} (a quote inside a field is written \"\")")
    for cell in row:
        if "\n" not in cell and "\r" not in cell:
            continue
        for offset, text in enumerate(cell.splitlines()[1:], start=1):
            try:
                fields = next(csv.reader([text]), [])
            except csv.Error:
                fields = []
            if (columns >= 3 and len(fields) == columns) or '","' in text:
                raise UserError(
                    f"catalog {source}: line {start}: a quoted field never closes and swallows the row on line "
                    f"{start + offset} (and maybe more)",
                    f"close the quote on line {start} (a quote inside a field is written \"\")")


def load_catalog(source: str, settings: IngestSettings) -> list[CatalogEntry]:
    """Every usable entry of a catalog CSV, parsed with the given ingest settings."""
    label = public_label(source)
    raw = fetch_catalog_bytes(source, settings.fetch_timeout_seconds)
    return parse_catalog(decode_catalog(raw, label), label, settings)[0]


def read_catalog(ingest_dir: str | Path) -> list[CatalogEntry]:
    """The entries an ingest stage declared (``catalog.jsonl``): what later stages judge against."""
    path = Path(ingest_dir) / CATALOG_RECORDS
    if not path.is_file():
        raise UserError(f"no ingested catalog at {path}", "run the ingest stage first (or pass its --out folder)")
    fields = {f.name for f in dataclasses.fields(CatalogEntry)}
    return [CatalogEntry(**{k: v for k, v in record.items() if k in fields})
            for record in read_jsonl(path, require_text=False)]


def is_validation(description: str, fraction: float) -> bool:
    """Deterministic split by content hash: stable across runs and catalog refreshes."""
    bucket = int.from_bytes(hashlib.sha256(description.encode("utf-8")).digest()[:8], "big")
    return bucket / 2**64 < fraction


def titled_catalog(entries: list[CatalogEntry], settings: IngestSettings, label: str) -> bool:
    """Does the training text carry titles: ``ingest.titles`` on and at least half the entries have one.

    A catalog mostly without titles trains on descriptions only (with a warning) rather than
    on the few titled rows.
    """
    if not settings.titles:
        return False
    titled = sum(1 for entry in entries if clean_title(entry.title))
    if titled * 2 < len(entries):
        log.warning("catalog %s: only %d of %d descriptions have a title: training on descriptions only "
                    "(set ingest.titles = false to say so)", label, titled, len(entries))
        return False
    return True


def ingest(source: str, out_dir: str | Path, settings: IngestSettings) -> dict:
    """Run the ingest stage; returns its manifest (also written beside ``out_dir``).

    The manifest, logs and errors name the catalog by :func:`generator.redact.public_label`
    only: a presigned URL's signature, a ``user:pass@`` or a local folder never leave here.
    """
    from .lock import exclusive

    out_dir = check_output_dir(out_dir)
    with exclusive(out_dir, "ingest folder"):
        return _ingest(source, out_dir, settings)


def _ingest(source: str, out_dir: Path, settings: IngestSettings) -> dict:
    label = public_label(source)
    raw = fetch_catalog_bytes(source, settings.fetch_timeout_seconds)
    text = decode_catalog(raw, label)
    entries, drops = parse_catalog(text, label, settings)

    titled = titled_catalog(entries, settings, label)
    train_lines, val_lines, records, untitled = [], [], [], 0
    for entry in entries:
        records.append({**dataclasses.asdict(entry), "control": control_prefix(entry.type, entry.main_genre).strip()})
        title = clean_title(entry.title) if titled else ""
        if titled and not title:
            untitled += 1  # in catalog.jsonl (curate judges against it), not in the titled training text
            continue
        line = training_line(entry.description, entry.type, entry.main_genre, settings.conditional, title)
        (val_lines if entry.split == "val" else train_lines).append(line)
    if not train_lines:
        raise UserError(f"catalog {label} leaves no training descriptions", "lower ingest.validation_fraction")

    train_text = "".join(train_lines)
    # The hash covers what training sees (settings included), so an unchanged
    # catalog re-read from elsewhere still counts as unchanged; untitled text hashes as it always did.
    training_hash = sha256_text(f"conditional={settings.conditional}\n" + ("titles=true\n" if titled else "")
                                + train_text)
    # Keep the exact bytes read: later stages (curate's copy check) and re-runs use
    # this snapshot, not a source that may have changed since.
    atomic_write_bytes(out_dir / "source.csv", raw)
    atomic_write_text(out_dir / "train.txt", train_text)
    atomic_write_text(out_dir / "val.txt", "".join(val_lines))
    write_jsonl(out_dir / CATALOG_RECORDS, records)

    words = [len(e.description.split()) for e in entries]
    chars = [len(e.description) for e in entries]
    genres = sorted({g for e in entries for g in e.genres})
    return write_manifest(
        out_dir,
        "ingest",
        source=label,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        catalog_hash=training_hash,
        rows=len(entries) + sum(drops.values()),
        kept=len(entries),
        dropped=drops,
        train_count=len(train_lines),
        val_count=len(val_lines),
        conditional=settings.conditional,
        titles=titled,
        untitled=untitled,
        max_words=max(words),
        max_chars=max(chars),
        median_words=sorted(words)[len(words) // 2],
        types=sorted({e.type for e in entries if e.type}),
        genres=genres,
        outputs={"snapshot": str(out_dir / "source.csv"), "train": str(out_dir / "train.txt"), "val": str(out_dir / "val.txt"),
                 "catalog": str(out_dir / CATALOG_RECORDS)},
    )


def add_cli(subparsers) -> None:
    from .config import add_setting_flag

    parser = subparsers.add_parser(
        "ingest", parents=[subparsers.common],
        help="read a catalog CSV and write gpt-2-simple training text",
        description="Read a catalog CSV (path, http(s):// URL or s3:// URI) and write train.txt, val.txt, "
        "catalog.jsonl into --out, with ingest.manifest.json beside it.",
    )
    parser.add_argument("--catalog", required=True, metavar="SRC", help="catalog CSV: path, http(s):// URL or s3:// URI")
    parser.add_argument("--out", required=True, metavar="DIR", help="ingest output directory")
    add_setting_flag(parser, "--validation-fraction", "ingest.validation_fraction")
    add_setting_flag(parser, "--description-column", "ingest.description_column")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    manifest = ingest(args.catalog, args.out, config.ingest)
    print(f"ingested {manifest['kept']} descriptions ({manifest['train_count']} train, "
          f"{manifest['val_count']} validation) -> {args.out}")
    return 0
