"""What every part of the render shares: its settings, the site model and the text helpers.

The settings (:class:`RenderSettings`), the site model (an :class:`Item` per description,
a :class:`Night` of items, a :class:`View` of a night at a folder) and the small helpers
that turn labels into slugs and values into text. The writer, the pages, the charts and
the model card import this module; it imports none of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from ..errors import UserError
from ..settings import check_declared, setting

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "site_templates"
NIGHT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TYPE_LABELS = {"Movie": "Movies", "TV Show": "TV Shows"}
# The Content-Security-Policy every HTML page declares in a <meta http-equiv> (publish may send it as a
# header too). The site satisfies it: scripts and styles are files under assets/, no inline script,
# <style> or style="" anywhere (the charts are styled by class), nothing from another origin.
# No base-uri: the 404 page's <base> is render.base_url, another origin when served elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "object-src 'none'; form-action 'self'")


@dataclasses.dataclass
class RenderSettings:
    site_title: str = setting("Netflix-ish: descriptions nobody wrote",
                              "Site name in headers, page titles and the feed.")
    tagline: str = setting("Made-up film and series descriptions, written every night by a language model "
                           "fine-tuned on Netflix's catalog.",
                           "One line under the title on the home page; also the default meta/OpenGraph description.")
    page_size: int = setting(48, "Descriptions per listing page (all, per type, per genre, per archived night).",
                             at_least=1)
    base_url: str = setting("", "Absolute URL the site is served from, e.g. \"https://example.org/gallery\". Used "
                            "for the feed, sitemap.xml, canonical and OpenGraph URLs; empty = relative links only "
                            "and no sitemap (sitemaps need absolute URLs). Pages always link relatively, so file:// "
                            "and S3 prefixes work.")
    home_picks: int = setting(12, "Descriptions featured on the home page (the newest night's best-ranked).",
                              at_least=0)
    archive_nights: int = setting(7, "Nights linked from the home page (nights/index.html lists every archived night).",
                                  at_least=0)
    random_pages: int = setting(64, "Pre-rendered random redirect pages behind the no-JavaScript \"Random\" link "
                                "(with JavaScript the link picks among all of the night's descriptions).", at_least=1)
    feed_entries: int = setting(50, "Entries in the Atom feed (feed.xml): the newest night's first descriptions.",
                                at_least=1)
    templates_dir: str = setting("", "Jinja2 templates and assets; empty = the shipped site_templates/.")
    workers: int = setting(0, "Processes rendering the permalink pages (forked, each from 5,000 pages on); "
                           "0 = one per CPU core.", at_least=0)

    def validate(self) -> None:
        check_declared(self, "render")  # the loader checked a loaded config; this guards direct callers
        problem = base_url_problem(self.base_url) if self.base_url else None
        if problem:
            raise UserError(f"render.base_url {problem}, got {self.base_url!r}",
                            "use an absolute URL such as https://example.org/gallery, or leave it empty")
        if self.templates_dir and not Path(self.templates_dir).is_dir():
            raise UserError(f"render.templates_dir {self.templates_dir} is not a directory",
                            "point it at a copy of site_templates/ or leave it empty")


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the site's base URL, or None.

    It goes verbatim into robots.txt, the sitemap, the feed and <base>/canonical links, so it
    must be one absolute http(s) URL: a newline would add lines to robots.txt.
    """
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        return "must be an absolute http:// or https:// URL"
    if not parts.hostname or parts.username is not None:
        return "must name a host (and no user name)"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not have a ?query or #fragment (pages are appended to it)"
    return None


@dataclasses.dataclass
class Item:
    """One description as the site shows it."""
    id: str
    text: str
    type: str | None
    genre: str | None
    night: str
    number: int  # 1-based position in its night (the curated rank order)
    title: str | None = None  # the made-up title; None for records without one (an archived night's)

    def name(self, limit: int) -> str:
        """What names the description in a page title, a feed entry or a link: its title, else its first words."""
        return self.title or excerpt(self.text, limit)


@dataclasses.dataclass
class Night:
    date: str
    items: list[Item]
    report: dict

    @property
    def prefix(self) -> str:
        return f"nights/{self.date}/"


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


# --- text helpers ---------------------------------------------------------------------------------

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


def finite_number(value) -> float | None:
    """A report value as a float if it is a finite number (not a bool), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None
