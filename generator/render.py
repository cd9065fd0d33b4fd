"""Render: kept descriptions (+ the night's report) -> a static gallery site.

``render(samples, out_dir)`` turns curate's kept JSONL into a small static site
with Jinja2 (autoescape on) and the templates and assets in ``site_templates/``:

  index.html                  home: the newest night's picks, what this is, ways to browse
  all/index.html, page-N.html every description of the newest night, paginated
  genre/index.html            the newest night's types and genres, linking to their pages
  d/<id>.html                 permalink per description (stable across nights: the id comes from the text)
  random/<k>.html             pre-rendered redirects to a description (the no-JavaScript "random" link);
                              random/ids.js feeds the JavaScript pick among all of them
  search/index.html           client-side search over a compact prebuilt index (assets/search-index.*.js)
  about/index.html            model card: catalog snapshot, model, training, loss curve, curation chart
  nights/index.html           the archive
  nights/<date>/              each night's gallery: its listing, type/<slug>/ and genre/<slug>/ pages,
                              genre/index.html and about.html (its model card)
  feed.xml, sitemap.xml, robots.txt, 404.html, assets/<name>.<hash8>.<ext> (fingerprinted)

A render without a date ("undated", no archive) puts its type and genre pages at the root.

Every link is relative and names a file (``…/index.html``), so the same tree works
from a file:// path, under an S3 prefix and behind any static HTTP server. Absolute
URLs (feed, sitemap, OpenGraph, canonical) need ``base_url`` and are left out without it.

Output is deterministic (no render-time clock anywhere) and incremental. A new site is
built in a staging folder and swapped in with one rename; an existing one is updated in
place, each file compared with what is on disk and replaced atomically only when its
bytes differ, and files no longer produced removed. So an unchanged night rewrites
nothing and the publisher uploads only what changed. Pages of a past night link only
within its own folder and to paths that never change, so they stay byte-identical when
new nights arrive.

With ``archive_dir`` (a directory kept across nights) the night's kept samples and
report are stored as ``<archive_dir>/<night>/kept.jsonl`` and ``report.json``, and
every archived night is rendered under ``nights/<night>/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import escape as xml_escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from .artifacts import (atomic_write_bytes, atomic_write_json, manifest_path, read_jsonl, read_manifest,
                        replace_directory, sha256_text, write_manifest)
from .errors import UserError

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "site_templates"
NIGHT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SITEMAP_LIMIT = 50_000  # URLs per sitemap file (sitemaps.org protocol)
RANDOM_IDS = "random/ids.js"  # the newest night's ids, for the client-side random pick
PER_WORKER_MIN = 5000  # permalinks per extra worker process (below that, forking costs more than it saves)
ROOT_MARK = "\ue000"  # private-use character standing for a card's root prefix until it is known
TYPE_LABELS = {"Movie": "Movies", "TV Show": "TV Shows"}


@dataclasses.dataclass
class RenderSettings:
    # Site name in headers, titles and the feed.
    site_title: str = "Netflix-ish: descriptions nobody wrote"
    # One line under the title on the home page and in meta descriptions.
    tagline: str = "Made-up film and series descriptions, written every night by GPT-2 fine-tuned on Netflix's catalog."
    # Descriptions per listing page (all, per type, per genre, per night).
    page_size: int = 48
    # Absolute URL the site is served from (https://example.org/gallery); used for the feed,
    # sitemap, canonical and OpenGraph URLs. Empty: relative links only, no sitemap.
    base_url: str = ""
    # Descriptions featured on the home page (the newest night's best-ranked).
    home_picks: int = 12
    # Nights linked from the home page (the archive page lists them all).
    archive_nights: int = 7
    # Pre-rendered random redirect pages for the no-JavaScript "random description" link.
    random_pages: int = 64
    # Entries in the Atom feed (the newest night's first descriptions).
    feed_entries: int = 50
    # Jinja2 templates and assets; empty = the shipped site_templates/.
    templates_dir: str = ""
    # Processes rendering permalink pages (forked; used from 5,000 pages per process); 0 = one per CPU core.
    workers: int = 0

    def validate(self) -> None:
        positive = {"page_size": self.page_size, "random_pages": self.random_pages, "feed_entries": self.feed_entries}
        for key, value in positive.items():
            if value < 1:
                raise UserError(f"render.{key} must be at least 1, got {value}", f"set render.{key} to 1 or more")
        for key in ("home_picks", "archive_nights", "workers"):
            if getattr(self, key) < 0:
                raise UserError(f"render.{key} must be 0 or more, got {getattr(self, key)}", f"set render.{key} >= 0")
        if self.base_url and not re.match(r"^https?://[^\s/]+", self.base_url):
            raise UserError(f"render.base_url must be an http(s) URL, got {self.base_url!r}",
                            "use e.g. https://example.org/gallery, or leave it empty")
        if self.templates_dir and not Path(self.templates_dir).is_dir():
            raise UserError(f"render.templates_dir {self.templates_dir} is not a directory",
                            "point it at a copy of site_templates/ or leave it empty")


@dataclasses.dataclass
class Item:
    """One description as the site shows it."""
    id: str
    text: str
    type: str | None
    genre: str | None
    night: str
    number: int  # 1-based position in its night (the curated rank order)


@dataclasses.dataclass
class Night:
    date: str
    items: list[Item]
    report: dict

    @property
    def prefix(self) -> str:
        return f"nights/{self.date}/"


# --- inputs ---------------------------------------------------------------------------------------

def _clean_label(value) -> str | None:
    """A type or genre as shown: a non-empty single-line string, else None."""
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def load_items(records: Iterable[dict], night: str, source: str) -> tuple[list[Item], int]:
    """Records -> items in file order; drops repeated ids. Returns (items, duplicates)."""
    items, seen, duplicates = [], set(), 0
    for record in records:
        text = record["text"].strip()
        key = record.get("id")
        if key is None or key == "":
            key = sha256_text(record["text"])[:12]
        key = str(key)
        if not SAFE_ID.match(key):
            raise UserError(f"{source}: id {key!r} is not a safe permalink name",
                            "use ids of letters, digits, '-' and '_' (curate writes 12 hex digits), or omit id")
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        items.append(Item(key, text, _clean_label(record.get("type")), _clean_label(record.get("genre")),
                          night, len(items) + 1))
    return items, duplicates


def check_night(night: str) -> str:
    if night == "undated":
        return night
    try:
        if NIGHT_RE.match(night) and dt.date.fromisoformat(night):
            return night
    except ValueError:
        pass
    raise UserError(f"bad night {night!r}", "pass the night's date as YYYY-MM-DD")


def read_report(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"report file not found: {path}", "pass the night's report.json, or leave --report out") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"report {path} is not valid JSON: {exc}", "pass the report.json the pipeline wrote") from None
    if not isinstance(report, dict):
        raise UserError(f"report {path} must be a JSON object", "pass the report.json the pipeline wrote")
    return report


def archive_night(archive_dir: Path, night: str, samples_path: Path, report: dict | None) -> None:
    """Keep this night's kept samples (and report) in the archive, atomically, unless already identical."""
    night_dir = archive_dir / night
    kept = night_dir / "kept.jsonl"
    data = samples_path.read_bytes()  # already validated line by line by the caller
    if not kept.is_file() or kept.read_bytes() != data:
        atomic_write_bytes(kept, data)
    if report is not None:
        report_path = night_dir / "report.json"
        new = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if not report_path.is_file() or report_path.read_text(encoding="utf-8") != new:
            atomic_write_json(report_path, report)


def load_archive(archive_dir: Path) -> list[Night]:
    nights = []
    if not archive_dir.is_dir():
        return nights
    for night_dir in sorted(archive_dir.iterdir()):
        kept = night_dir / "kept.jsonl"
        if not (NIGHT_RE.match(night_dir.name) and kept.is_file()):
            continue
        items, _ = load_items(read_jsonl(kept), night_dir.name, str(kept))
        report_path = night_dir / "report.json"
        report = read_report(report_path) if report_path.is_file() else {}
        nights.append(Night(night_dir.name, items, report))
    return nights


# --- output: write only what changed ----------------------------------------------------------------

class SiteWriter:
    """Writes the site's files atomically and only when their bytes change.

    A new site (missing or empty folder) is built in a staging folder beside it and swapped
    into place in one rename. An existing site is updated in place: each file is compared
    with what is on disk and replaced (temp file + rename) only when it differs; finish()
    removes the files not produced this time.
    """

    def __init__(self, target: Path):
        self.target = target
        self.fresh = not target.is_dir() or not any(target.iterdir())
        staging = target.with_name(f".{target.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)  # left by a crashed render
        self.root = staging if self.fresh else target
        self.root.mkdir(parents=True, exist_ok=True)
        self.produced: set[str] = set()
        self.sitemap: list[str] = []
        self.written = self.unchanged = self.bytes = 0
        self._root = str(self.root)
        self._dirs: set[str] = {self._root}

    def write(self, rel: str, data: str | bytes, indexable: bool = False) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if rel in self.produced:
            raise AssertionError(f"render produced {rel} twice")
        self.produced.add(rel)
        self.bytes += len(data)
        if indexable:
            self.sitemap.append(rel)
        path = f"{self._root}/{rel}"  # plain strings: pathlib costs more than the write on 100k files
        parent, _, name = path.rpartition("/")
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        if self.fresh:  # nobody reads the staging folder: write straight in
            with open(path, "wb") as handle:
                handle.write(data)
            self.written += 1
            return
        try:
            if os.stat(path).st_size == len(data):
                with open(path, "rb") as handle:
                    if handle.read() == data:
                        self.unchanged += 1
                        return
        except FileNotFoundError:
            pass
        # Temp file + rename: a reader (or a crash) sees the old file or the new one, never half.
        # No fsync per file (100k fsyncs would dominate the render); finish() syncs once.
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.written += 1

    def finish(self) -> int:
        """Put the site in place; returns how many stale files were removed."""
        if self.fresh:
            _syncfs(self.root)
            replace_directory(self.root, self.target)
            return 0
        removed, cut = 0, len(self._root) + 1
        for dirpath, dirnames, filenames in os.walk(self._root, topdown=False):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if path[cut:] not in self.produced:
                    os.unlink(path)
                    removed += 1
            if dirpath != self._root and not os.listdir(dirpath):
                os.rmdir(dirpath)
        if self.written or removed:
            _syncfs(self.root)  # one flush for every rename above
        return removed


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux syncfs), else everything (os.sync)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


# --- presentation helpers -------------------------------------------------------------------------

def slugify(label: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")
    return slug or "x-" + hashlib.sha256(label.encode("utf-8")).hexdigest()[:8]


def unique_slugs(labels: Iterable[str]) -> dict[str, str]:
    """Label -> slug, unique and deterministic (sorted labels claim slugs first)."""
    slugs, used = {}, set()
    for label in sorted(set(labels)):
        slug = base = slugify(label)
        number = 2
        while slug in used:
            slug, number = f"{base}-{number}", number + 1
        used.add(slug)
        slugs[label] = slug
    return slugs


def root_of(rel: str) -> str:
    """Relative prefix from a page at ``rel`` back to the site root."""
    return "../" * rel.count("/")


def fmt_number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"


@functools.lru_cache(maxsize=None)
def night_label(date: str) -> str:
    """2026-11-25 -> "Wednesday 25 November 2026" (English names whatever the locale)."""
    if not NIGHT_RE.match(date):
        return date
    day = dt.date.fromisoformat(date)
    weekdays = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    months = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")
    return f"{weekdays[day.weekday()]} {day.day} {months[day.month - 1]} {day.year}"


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value) -> str:
    """Drop the characters XML 1.0 forbids (the feed must parse); escaping is left to autoescape."""
    return _XML_INVALID.sub("", str(value))


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def loss_curve_svg(points) -> str | None:
    """Inline SVG line chart of [[step, loss], …]; None without at least two valid points."""
    clean = []
    for point in points or []:
        if isinstance(point, (list, tuple)) and len(point) >= 2 and _num(point[0]) is not None and _num(point[1]) is not None:
            clean.append((_num(point[0]), _num(point[1])))
    if len(clean) < 2:
        return None
    clean.sort()
    width, height, left, right, top, bottom = 640, 260, 56, 16, 16, 40
    xs, ys = [p[0] for p in clean], [p[1] for p in clean]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in clean)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="loss-title loss-desc">',
             '<title id="loss-title">Training loss by step</title>',
             f'<desc id="loss-desc">{len(clean)} points from step {fmt_number(int(xs[0]))} (loss {ys[0]:.3f}) '
             f'to step {fmt_number(int(xs[-1]))} (loss {ys[-1]:.3f}).</desc>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                     f'{int(round(x)):,}</text>')
    parts.append(f'<text class="axis-label" x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                 f'text-anchor="middle">step</text>')
    parts.append(f'<polyline class="line" points="{path}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rejection_chart_svg(rejected: dict, kept) -> str | None:
    """Inline SVG horizontal bars: kept and each rejection reason, with counts."""
    rows = [("kept", int(kept), "bar-kept")] if _num(kept) is not None else []
    counts = [(str(reason), int(count)) for reason, count in (rejected or {}).items() if _num(count) is not None]
    rows += [(reason, count, "bar") for reason, count in sorted(counts, key=lambda rc: (-rc[1], rc[0]))]
    if not rows:
        return None
    width, label_w, row_h = 640, 180, 30
    height = row_h * len(rows) + 8
    top = max(count for _, count, _ in rows) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="rej-title">',
             '<title id="rej-title">Kept samples and rejections by reason</title>']
    for i, (label, count, cls) in enumerate(rows):
        y = 4 + i * row_h
        bar = (width - label_w - 70) * count / top
        parts.append(f'<text class="tick" x="{label_w - 8}" y="{y + 19}" text-anchor="end">{escape(excerpt(label, 20))}</text>')
        parts.append(f'<rect class="{cls}" x="{label_w}" y="{y + 4}" width="{max(bar, 1):.1f}" height="{row_h - 10}" rx="3"/>')
        parts.append(f'<text class="value" x="{label_w + max(bar, 1) + 6:.1f}" y="{y + 19}">{count:,}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def model_card(report: dict, night: Night) -> dict:
    """The report, flattened into labelled rows for the template; absent keys are skipped."""
    def section(data, fields):
        rows = []
        for key, label in fields:
            value = (data or {}).get(key)
            if value is None or value == "" or value == []:
                continue
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            rows.append((label, fmt_number(value) if not isinstance(value, str) else value))
        return rows

    report = report if isinstance(report, dict) else {}
    get = lambda key: report.get(key) if isinstance(report.get(key), dict) else {}  # noqa: E731
    catalog, model, train, generate, curate = (get(k) for k in ("catalog", "model", "train", "generate", "curate"))
    catalog_rows = section(catalog, [("source", "Source"), ("rows", "Rows read"), ("kept", "Descriptions used"),
                                     ("train_count", "Training"), ("val_count", "Validation"),
                                     ("catalog_hash", "Content hash (SHA-256)"), ("changed", "Changed since last night")])
    model_rows = section({**model, "profile": report.get("profile")},
                         [("name", "Base model"), ("source", "Source"), ("profile", "Profile"),
                          ("live_release", "Live release"), ("live_step", "Live checkpoint step")])
    train_rows = []
    if train.get("skipped"):
        train_rows.append(("This night", f"no training ({train.get('reason') or 'skipped'})"))
    elif train.get("reason"):
        train_rows.append(("Decision", str(train["reason"])))
    train_rows += section(train, [("steps", "Steps this night"), ("total_steps", "Total steps"),
                                  ("train_loss", "Training loss"), ("val_loss", "Validation loss"),
                                  ("live_val_loss", "Previous live validation loss"), ("promoted", "Promoted")])
    generate_rows = section(generate, [("samples", "Samples generated"), ("terminated", "Finished (end token)"),
                                       ("length", "Max new tokens"), ("temperature", "Temperature"),
                                       ("top_k", "Top-k"), ("top_p", "Top-p"), ("seed", "Seed"),
                                       ("backend", "Sampler"), ("conditions", "Conditions")])
    kept = curate.get("kept")
    if _num(kept) is None:
        kept = len(night.items)  # what the gallery itself shows
    curate_rows = section({**curate, "kept": kept}, [("input", "Samples checked"), ("kept", "Kept")])
    if _num(curate.get("kept_rate")) is not None:
        curate_rows.append(("Kept rate", f"{curate['kept_rate']:.1%}"))
    rejected = curate.get("rejected") if isinstance(curate.get("rejected"), dict) else {}
    return {
        "catalog": catalog_rows, "model": model_rows, "train": train_rows, "generate": generate_rows,
        "curate": curate_rows,
        "rejected": sorted(((str(k), v) for k, v in rejected.items() if _num(v) is not None), key=lambda kv: (-kv[1], kv[0])),
        "loss_svg": loss_curve_svg(train.get("loss_curve")),
        "rejection_svg": rejection_chart_svg(rejected, kept) if rejected else None,
        "has_report": bool(report),
    }


# --- the site -------------------------------------------------------------------------------------

@dataclasses.dataclass
class View:
    """One night's gallery at a base folder: "" for the newest night, "nights/<date>/" for every dated night."""
    night: Night
    base: str
    all_base: str  # where the paginated listing of every description lives
    type_slugs: dict[str, str]
    genre_slugs: dict[str, str]
    type_counts: Counter
    genre_counts: Counter

    @classmethod
    def of(cls, night: Night, base: str, all_base: str) -> "View":
        items = night.items
        return cls(night, base, all_base,
                   unique_slugs(i.type for i in items if i.type), unique_slugs(i.genre for i in items if i.genre),
                   Counter(i.type for i in items if i.type), Counter(i.genre for i in items if i.genre))

    def type_href(self, label: str | None) -> str:
        return f"{self.base}type/{self.type_slugs[label]}/index.html" if label in self.type_slugs else ""

    def genre_href(self, label: str | None) -> str:
        return f"{self.base}genre/{self.genre_slugs[label]}/index.html" if label in self.genre_slugs else ""

    def types(self, root: str):
        return [(TYPE_LABELS.get(label, label), root + self.type_href(label), self.type_counts[label])
                for label in sorted(self.type_slugs, key=lambda l: (-self.type_counts[l], l))]

    def genres(self, root: str):
        return [(label, root + self.genre_href(label), self.genre_counts[label])
                for label in sorted(self.genre_slugs, key=lambda l: (-self.genre_counts[l], l))]


class Site:
    """Builds every file of the site through a SiteWriter.

    Pages of past nights must not change when a new night arrives (so the publisher
    re-uploads only what is new): a dated night's pages link only to its own folder,
    shared static assets and pages whose paths never change.
    """

    def __init__(self, settings: RenderSettings, writer: SiteWriter, nights: list[Night]):
        self.settings = settings
        self.writer = writer
        self.nights = nights
        self.current = nights[-1]
        self.base_url = settings.base_url.rstrip("/")
        templates = Path(settings.templates_dir) if settings.templates_dir else TEMPLATES_DIR
        if not (templates / "base.html").is_file():
            raise UserError(f"no site templates in {templates}", "restore site_templates/ or set render.templates_dir")
        self.templates = templates
        self.env = Environment(loader=FileSystemLoader(str(templates)), autoescape=True, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined,
                               auto_reload=False)  # no stat() of the template per page
        self.env.filters["num"] = fmt_number
        self.env.filters["excerpt"] = excerpt
        self.env.filters["night"] = night_label
        self.env.filters["xmltext"] = xml_text
        self.dated_views = {n.date: View.of(n, n.prefix, n.prefix) for n in nights if n.date != "undated"}
        # The newest night's type and genre pages are its dated ones (one copy, not two); only an
        # undated night (no archive) gets them at the root.
        dated = self.current.date != "undated"
        self.root_view = View.of(self.current, self.current.prefix if dated else "", "all/")
        self.assets: dict[str, str] = {}
        self._cards: dict[tuple[str, str], str] = {}
        self._chrome: dict[tuple, Markup] = {}
        self.card_template = self.env.get_template("_card.html")
        self._head, self._header, self._footer = (self.env.get_template(f"_{name}.html")
                                                  for name in ("head", "header", "footer"))

    # links ---------------------------------------------------------------------------------------
    def absolute(self, rel: str) -> str:
        return f"{self.base_url}/{rel}" if self.base_url else ""

    def home_view(self, night: Night) -> View:
        """The view a night's permalinks link back to: its dated folder, else the root."""
        return self.dated_views.get(night.date, self.root_view)

    def random_href(self, rel: str) -> str:
        # Depends only on the page's path and the setting, so it never changes a page from night to night.
        return f"random/{zlib.crc32(rel.encode()) % self.settings.random_pages}.html"

    # assets --------------------------------------------------------------------------------------
    def add_asset(self, name: str, data: bytes) -> str:
        stem, ext = name.rsplit(".", 1)
        rel = f"assets/{stem}.{hashlib.sha256(data).hexdigest()[:8]}.{ext}"
        self.writer.write(rel, data)
        self.assets[name] = rel
        return rel

    def build_assets(self) -> None:
        for path in sorted((self.templates / "assets").iterdir()):
            if path.is_file() and not path.name.startswith("."):
                self.add_asset(path.name, path.read_bytes())
        view = self.root_view
        types, genres = sorted(view.type_slugs), sorted(view.genre_slugs)
        type_index = {label: i for i, label in enumerate(types)}
        genre_index = {label: i for i, label in enumerate(genres)}
        index = {
            "types": [[label, view.type_href(label)] for label in types],
            "genres": [[label, view.genre_href(label)] for label in genres],
            "items": [[i.id, i.text, type_index.get(i.type, -1), genre_index.get(i.genre, -1)]
                      for i in self.current.items],
        }
        self.add_asset("search-index.js", ("window.gallerySearch=" + _js_json(index) + ";\n").encode())
        # Every page points at the ids for client-side random picks, so that file keeps one path
        # (not fingerprinted): a new night then changes this file, not every page.
        ids = [item.id for item in self.current.items]
        self.writer.write(RANDOM_IDS, "window.galleryIds=" + _js_json(ids) + ";\n")

    # pages ---------------------------------------------------------------------------------------
    def chrome(self, root: str, nav: str, random_href: str) -> dict:
        """Head links, header and footer: the same for every page at one depth, so rendered once each."""
        head = self._chrome.get(("head", root))
        if head is None:
            head = self._chrome[("head", root)] = Markup(self._head.render(site=self.settings, root=root, assets=self.assets))
        footer = self._chrome.get(("footer", root))
        if footer is None:
            footer = self._chrome[("footer", root)] = Markup(self._footer.render(root=root, assets=self.assets))
        header = self._chrome.get(("header", root, nav, random_href))
        if header is None:
            header = self._chrome[("header", root, nav, random_href)] = Markup(self._header.render(
                site=self.settings, root=root, assets=self.assets, nav=nav, random_href=random_href))
        return {"head": head, "header": header, "footer": footer}

    def page(self, rel: str, template: str, indexable: bool = True, **context) -> None:
        root = root_of(rel)
        context.setdefault("description", self.settings.tagline)
        random_href = root + self.random_href(rel)
        html = self.env.get_template(template).render(
            site=self.settings, root=root, rel=rel, assets=self.assets, canonical=self.absolute(rel),
            base_url=self.base_url, random_href=random_href, ids_src=root + RANDOM_IDS,
            chrome=self.chrome(root, context.get("nav", ""), random_href), **context)
        self.writer.write(rel, html, indexable=indexable)

    def card(self, item: Item, root: str, view: View) -> str:
        """A description's card: rendered once per view with a placeholder root, then re-rooted per depth."""
        html = self._cards.get((item.id, view.base))
        if html is None:
            html = self.card_template.render(item=item, root=ROOT_MARK, type_href=view.type_href(item.type),
                                             genre_href=view.genre_href(item.genre))
            if html.count(ROOT_MARK) != 1 + bool(view.type_href(item.type)) + bool(view.genre_href(item.genre)):
                # The text itself holds the placeholder character: render this card for each depth instead.
                return Markup(self.card_template.render(item=item, root=root, type_href=view.type_href(item.type),
                                                        genre_href=view.genre_href(item.genre)))
            self._cards[(item.id, view.base)] = html
        return Markup(html.replace(ROOT_MARK, root))

    def listing(self, view: View, base: str, items: list[Item], title: str, intro: str, nav: str, **extra) -> None:
        """A paginated listing at ``<base>index.html``, ``<base>page-N.html``."""
        size = self.settings.page_size
        pages = max(1, math.ceil(len(items) / size))

        def name(number: int) -> str:  # pages of a listing share its folder, so they link by file name
            return "index.html" if number == 1 else f"page-{number}.html"

        for number in range(1, pages + 1):
            rel = base + name(number)
            root = root_of(rel)
            chunk = items[(number - 1) * size: number * size]
            window = sorted({1, pages, *range(max(1, number - 2), min(pages, number + 2) + 1)})
            links, previous = [], 0
            for n in window:
                if n - previous > 1:
                    links.append(None)  # a gap: "…"
                links.append((n, name(n)))
                previous = n
            pager = {"page": number, "pages": pages, "links": links,
                     "prev": name(number - 1) if number > 1 else "",
                     "next": name(number + 1) if number < pages else ""}
            cards = Markup("".join([self.card(i, root, view) for i in chunk]))
            self.page(rel, "listing.html", title=title if number == 1 else f"{title}, page {number}",
                      heading=title, intro=intro, cards=cards, count=len(chunk), pager=pager,
                      first=(number - 1) * size + 1, total=len(items), nav=nav,
                      browse_href=root + view.base + "genre/index.html", **extra)

    def gallery(self, view: View, nav: str, **extra) -> None:
        """A night's listing of everything, its type and genre pages and its browse page."""
        night, items = view.night, view.night.items
        when = f" from the night of {night_label(night.date)}" if night.date != "undated" else ""
        at_root = view.all_base == "all/"
        title = "All descriptions" if at_root else f"Night of {night_label(night.date)}"
        intro = f"{len(items):,} descriptions{when}." if at_root else f"{len(items):,} descriptions kept that night."
        self.listing(view, view.all_base, items, title, intro, nav=nav, **extra)
        rel = "genre/index.html" if at_root else f"{view.base}genre/index.html"
        self.page(rel, "browse.html", title="Browse by type and genre" + ("" if at_root else f", {night.date}"),
                  nav="browse", types=view.types(root_of(rel)), genres=view.genres(root_of(rel)), count=len(items),
                  night=night, dated=not at_root)
        if at_root and view.base:
            return  # the newest night's type and genre pages are its dated ones
        for label, slug in view.type_slugs.items():
            chosen = [i for i in items if i.type == label]
            plural = TYPE_LABELS.get(label, label)
            self.listing(view, f"{view.base}type/{slug}/", chosen, plural,
                         f"{len(chosen):,} made-up {plural.lower() if label in TYPE_LABELS else plural}{when}.",
                         nav="browse", **extra)
        for label, slug in view.genre_slugs.items():
            chosen = [i for i in items if i.genre == label]
            self.listing(view, f"{view.base}genre/{slug}/", chosen, label,
                         f"{len(chosen):,} made-up descriptions in this genre{when}.", nav="browse", **extra)

    def permalinks(self) -> int:
        """One page per description; a description on several nights belongs to the newest.

        Nine pages in ten are permalinks, so with enough of them they are rendered by forked
        worker processes (``workers``), each writing its own contiguous share.
        """
        owner: dict[str, Night] = {}
        for night in self.nights:
            for item in night.items:
                owner[item.id] = night
        tasks = [(night, index) for night in self.nights for index, item in enumerate(night.items)
                 if owner[item.id] is night]
        workers = min(self.settings.workers or os.cpu_count() or 1, max(1, len(tasks) // PER_WORKER_MIN))
        # A daemonic process (e.g. a Celery prefork child) may not have children: render here instead.
        if (workers <= 1 or "fork" not in multiprocessing.get_all_start_methods()
                or multiprocessing.current_process().daemon):
            self.render_permalinks(tasks)
            return len(tasks)
        global _FORKED
        _FORKED = (self, tasks)
        os.makedirs(os.path.join(self.writer._root, "d"), exist_ok=True)
        self.writer._dirs.add(os.path.join(self.writer._root, "d"))
        bounds = [(len(tasks) * k // workers, len(tasks) * (k + 1) // workers) for k in range(workers)]
        try:
            with multiprocessing.get_context("fork").Pool(workers - 1) as pool:
                shares = pool.map_async(_render_share, bounds[1:])
                self.render_permalinks(tasks[: bounds[0][1]])  # this process takes the first share
                counts = shares.get()
        finally:
            _FORKED = None
        for night, index in tasks[bounds[0][1]:]:  # what the workers wrote, as if written here
            rel = f"d/{night.items[index].id}.html"
            self.writer.produced.add(rel)
            self.writer.sitemap.append(rel)
        for written, unchanged, size in counts:
            self.writer.written += written
            self.writer.unchanged += unchanged
            self.writer.bytes += size
        return len(tasks)

    def render_permalinks(self, tasks) -> None:
        root = "../"
        for night, index in tasks:
            items = night.items
            item, view = items[index], self.home_view(night)
            prev_item = items[index - 1] if index > 0 else None
            next_item = items[index + 1] if index + 1 < len(items) else None
            type_href, genre_href = view.type_href(item.type), view.genre_href(item.genre)
            self.page(f"d/{item.id}.html", "description.html", title=excerpt(item.text, 60),
                      description=excerpt(item.text, 200), item=item, night=night, og_type="article",
                      type_href=root + type_href if type_href else "",
                      genre_href=root + genre_href if genre_href else "",
                      night_href=root + view.all_base + "index.html",
                      prev_href=f"{prev_item.id}.html" if prev_item else "",
                      next_href=f"{next_item.id}.html" if next_item else "",
                      prev_text=excerpt(prev_item.text, 70) if prev_item else "",
                      next_text=excerpt(next_item.text, 70) if next_item else "")

    def random_pages(self) -> None:
        """random/<k>.html: redirects to descriptions spread over the whole night, in an order seeded by
        the night (never the clock); with fewer descriptions than pages, they repeat."""
        items = self.current.items
        order = random.Random(self.current.date).sample(range(len(items)), len(items))
        for k in range(self.settings.random_pages):
            target = f"../d/{items[order[k % len(order)]].id}.html" if items else "../index.html"
            self.page(f"random/{k}.html", "redirect.html", indexable=False, title="A random description",
                      target=target)

    def home(self) -> None:
        view, items = self.root_view, self.current.items
        recent = [n for n in reversed(self.nights) if n.date != "undated"][: self.settings.archive_nights]
        self.page("index.html", "index.html", title="", current=self.current,
                  picks=[self.card(i, "", view) for i in items[: self.settings.home_picks]],
                  count=len(items), pages=max(1, math.ceil(len(items) / self.settings.page_size)),
                  types=view.types(""), genres=view.genres("")[:12], genre_total=len(view.genre_slugs),
                  recent=recent, nav="home")

    def search(self) -> None:
        self.page("search/index.html", "search.html", title="Search", nav="search", count=len(self.current.items),
                  index_src="../" + self.assets["search-index.js"], search_src="../" + self.assets["search.js"])

    def about(self) -> None:
        for night in self.nights:
            card = model_card(night.report, night)
            context = dict(card=card, night=night, count=len(night.items), nav="about",
                           types=Counter(i.type or "untyped" for i in night.items).most_common(),
                           genres=Counter(i.genre or "no genre" for i in night.items).most_common(12))
            if night is self.current:
                self.page("about/index.html", "about.html", title="About the model", **context)
            if night.date != "undated":
                self.page(f"{night.prefix}about.html", "about.html", title=f"Model card, {night.date}", **context)

    def archive(self) -> None:
        dated = [n for n in reversed(self.nights) if n.date != "undated"]
        for night in dated:
            # Nothing on these pages may depend on which night is the newest: they must not change later.
            self.gallery(self.dated_views[night.date], nav="archive", night_about=f"{night.prefix}about.html")
        self.page("nights/index.html", "nights.html", title="Archive", nav="archive",
                  nights=[(n, f"{n.date}/index.html", len(n.items)) for n in dated])

    def not_found(self) -> None:
        # Served at any depth, so its links resolve from the root: through <base> when the site's URL is known.
        self.page("404.html", "404.html", indexable=False, title="Page not found", robots="noindex",
                  base_href=f"{self.base_url}/" if self.base_url else "")

    def feed(self) -> None:
        items = self.current.items[: self.settings.feed_entries]
        updated = f"{self.current.date}T00:00:00Z" if self.current.date != "undated" else "1970-01-01T00:00:00Z"
        entries = [{"item": i, "title": excerpt(i.text, 70), "href": f"d/{i.id}.html", "abs": self.absolute(f"d/{i.id}.html"),
                    "urn": uuid.uuid5(uuid.NAMESPACE_URL, f"netflixish:description:{i.id}").urn} for i in items]
        xml = self.env.get_template("feed.xml").render(
            site=self.settings, base_url=self.base_url, updated=updated, entries=entries,
            feed_id=uuid.uuid5(uuid.NAMESPACE_URL, f"netflixish:feed:{self.settings.site_title}").urn)
        self.writer.write("feed.xml", xml)

    def sitemap_and_robots(self) -> None:
        robots = "User-agent: *\nAllow: /\nDisallow: /random/\n"
        if self.base_url:
            urls = sorted(self.writer.sitemap)
            chunks = [urls[i: i + SITEMAP_LIMIT] for i in range(0, len(urls), SITEMAP_LIMIT)] or [[]]
            if len(chunks) == 1:
                self.writer.write("sitemap.xml", _urlset(self.base_url, chunks[0]))
            else:
                lines = ['<?xml version="1.0" encoding="UTF-8"?>',
                         '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
                for number, chunk in enumerate(chunks, start=1):
                    self.writer.write(f"sitemaps/sitemap-{number}.xml", _urlset(self.base_url, chunk))
                    lines.append(f"<sitemap><loc>{xml_escape(self.base_url)}/sitemaps/sitemap-{number}.xml</loc></sitemap>")
                lines.append("</sitemapindex>\n")
                self.writer.write("sitemap.xml", "\n".join(lines))
            robots += f"Sitemap: {self.base_url}/sitemap.xml\n"
        self.writer.write("robots.txt", robots)

    def build(self) -> dict:
        self.build_assets()
        self.home()
        self.gallery(self.root_view, nav="all")
        count = self.permalinks()
        self.random_pages()
        self.search()
        self.about()
        self.archive()
        self.not_found()
        self.feed()
        self.sitemap_and_robots()
        return {"permalinks": count}


_FORKED: tuple | None = None  # (site, permalink tasks), inherited by forked workers


def _render_share(bounds: tuple[int, int]) -> tuple[int, int, int]:
    """Worker: render permalink tasks[start:end]; returns (written, unchanged, bytes)."""
    site, tasks = _FORKED
    writer = site.writer
    writer.produced, writer.sitemap = set(), []
    writer.written = writer.unchanged = writer.bytes = 0
    site.render_permalinks(tasks[bounds[0]:bounds[1]])
    return writer.written, writer.unchanged, writer.bytes


def _js_json(value) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Valid JSON, but older JS engines end a string at these two characters.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _urlset(base_url: str, rels: list[str]) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    lines += [f"<url><loc>{xml_escape(base_url)}/{xml_escape(rel)}</loc></url>" for rel in rels]
    lines.append("</urlset>\n")
    return "\n".join(lines)


def _check_out_dir(out_dir: Path) -> None:
    """Render removes files it did not produce, so it only works in an empty folder or its own site."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file", "pass a directory for the site")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            previous = read_manifest(out_dir)
        except (UserError, ValueError):
            previous = {}
        if previous.get("stage") != "render":
            raise UserError(f"{out_dir} is not empty and holds no site rendered before (no {manifest_path(out_dir).name})",
                            "pass a new or empty directory: render deletes files it did not produce")


def render(samples_path, out_dir, settings: RenderSettings | None = None, night: str | None = None,
           report: dict | None = None, archive_dir=None) -> dict:
    """Render the gallery for ``samples_path`` (curated kept JSONL) into ``out_dir``; returns the manifest."""
    started = time.perf_counter()
    settings = settings or RenderSettings()
    settings.validate()
    samples_path, out_dir = Path(samples_path), Path(out_dir)
    if report is not None and not isinstance(report, dict):
        raise UserError("the report must be a JSON object", "pass the report.json the pipeline wrote")
    night = check_night(night or (report or {}).get("night") or "undated")
    items, duplicates = load_items(read_jsonl(samples_path), night, str(samples_path))
    _check_out_dir(out_dir)

    if archive_dir is not None:
        if night == "undated":
            raise UserError("archiving a night needs its date", "pass --night YYYY-MM-DD (or a report with \"night\")")
        archive_dir = Path(archive_dir)
        archive_night(archive_dir, night, samples_path, report)
        nights = load_archive(archive_dir)
    else:
        nights = [Night(night, items, report or {})]

    writer = SiteWriter(out_dir)
    site = Site(settings, writer, nights)
    built = site.build()
    removed = writer.finish()
    seconds = time.perf_counter() - started
    current = site.current
    log.info("rendered %d pages (%d written, %d unchanged, %d removed) in %.1fs -> %s",
             len(writer.produced), writer.written, writer.unchanged, removed, seconds, out_dir)
    return write_manifest(
        out_dir, "render",
        night=current.date,
        rendered_night=night,
        descriptions=len(current.items),
        duplicates_dropped=duplicates,
        permalinks=built["permalinks"],
        nights=[n.date for n in nights],
        pages=len(writer.produced),
        written=writer.written,
        unchanged=writer.unchanged,
        removed=removed,
        bytes=writer.bytes,
        types=dict(sorted(site.root_view.type_counts.items())),
        genres=dict(sorted(site.root_view.genre_counts.items())),
        base_url=site.base_url,
        seconds=round(seconds, 2),
        outputs={"site": str(out_dir), "home": str(out_dir / "index.html"),
                 "model_card": str(out_dir / "about" / "index.html")},
    )


# --- CLI ------------------------------------------------------------------------------------------

def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", parents=[subparsers.common],
        help="render the static gallery",
        description="Render curated kept samples into a static gallery site in --out: home, pages, a permalink "
        "per description, type and genre pages, search, model card, archive, feed, sitemap. Only files whose "
        "bytes changed are written; files no longer produced are removed. Writes <out>.manifest.json beside it.",
    )
    parser.add_argument("--samples", required=True, metavar="KEPT.jsonl", help="kept samples JSONL from curate")
    parser.add_argument("--out", required=True, metavar="DIR", help="site directory (new, empty, or rendered before)")
    parser.add_argument("--night", metavar="YYYY-MM-DD", help="the night's date (default: the report's, else undated)")
    parser.add_argument("--report", metavar="FILE", help="the night's report.json for the model card")
    parser.add_argument("--archive", metavar="DIR",
                        help="archive kept across nights: stores this night there and renders every archived night")
    parser.add_argument("--base-url", metavar="URL", help="absolute URL the site is served from (feed, sitemap, og tags)")
    parser.add_argument("--page-size", type=int, metavar="N", help="descriptions per listing page")
    parser.add_argument("--site-title", metavar="TEXT", help="site name")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .config import with_overrides

    config = with_overrides(config, render={"base_url": args.base_url, "page_size": args.page_size,
                                            "site_title": args.site_title})
    report = read_report(args.report) if args.report else None
    manifest = render(args.samples, args.out, config.render, night=args.night, report=report, archive_dir=args.archive)
    print(f"rendered {manifest['descriptions']} descriptions of night {manifest['night']}: {manifest['pages']} files "
          f"({manifest['written']} written, {manifest['unchanged']} unchanged, {manifest['removed']} removed) "
          f"-> {Path(args.out) / 'index.html'}")
    return 0
