"""Render stage: escaping, determinism, incremental writes, links, archive, model card, feed, sitemap, errors."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import SAMPLE_CATALOG, assert_clean_error, run_cli, shared_csv
from generator import render as render_module
from generator.errors import UserError
from generator.render import RenderSettings, render

NIGHT = "2026-11-25"
HOSTILE = [
    {"id": "h0script0001", "type": "Movie", "genre": "Thrillers",
     "text": "<script>alert('pwned')</script> A spy & her \"handler\" trade secrets </textarea> in Paris."},
    {"id": "h0js00000002", "type": "TV Show", "genre": "\"><script>alert(1)</script>",
     "text": "javascript:alert(document.cookie) is what the hacker types, then <img src=x onerror=alert(1)>."},
    {"id": "h0rtl0000003", "type": "TV Show", "genre": "Comédies & Drames",
     "text": "שלום עולם — مرحبا بالعالم: a café owner in Zürich 🎬🍿 finds a ‘lost’ reel… naïvely."},
    {"id": "h0quote00004", "type": "Movie", "genre": "Dramas",
     "text": "It's the 'last' night & nobody says \"goodbye\" — or </p></article><h1>not</h1>."},
]


def catalog_samples(limit: int | None = None) -> list[dict]:
    """Kept-style samples from the bundled (fictional) catalog, with type and main genre."""
    with SAMPLE_CATALOG.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    return [{"text": row["description"], "type": row["type"], "genre": row["listed_in"].split(",")[0].strip(),
             "terminated": True} for row in rows]


def write_samples(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


REPORT = {
    "night": NIGHT, "profile": "tiny",
    "catalog": {"source": "s3://bucket/catalog.csv", "rows": 8807, "kept": 8790, "catalog_hash": "ab" * 32, "changed": True},
    "model": {"name": "tiny", "source": "bootstrap"},
    "train": {"steps": 300, "total_steps": 900, "train_loss": 3.25, "val_loss": 3.5, "skipped": False,
              "reason": "catalog changed", "loss_curve": [[step, 8.0 - step / 100] for step in range(0, 301, 10)]},
    "generate": {"samples": 96, "temperature": 0.8, "top_k": 0, "top_p": 0.9, "seed": 42, "backend": "fast", "length": 80},
    "curate": {"input": 96, "kept": 57, "kept_rate": 0.59375,
               "rejected": {"malformed": 22, "unterminated": 12, "<b>odd</b> reason": 3}},
}


# --- HTML inspection helpers -----------------------------------------------------------------------

class Page(HTMLParser):
    """Collects what the tests look at: links, scripts, headings, text by class, meta tags."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (tag/attr, url)
        self.scripts_inline = 0
        self.tags: list[tuple[str, dict]] = []
        self.h1 = 0
        self.text_by_class: dict[str, list[str]] = {}
        self.meta: dict[str, str] = {}
        self._capture: list[tuple[str, str, list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        for attr in ("href", "src"):
            if attrs.get(attr) is not None:
                self.links.append((f"{tag}.{attr}", attrs[attr]))
        if tag == "script" and not attrs.get("src"):
            self.scripts_inline += 1
        if tag == "h1":
            self.h1 += 1
        if tag == "meta":
            key = attrs.get("property") or attrs.get("name") or attrs.get("http-equiv")
            if key:
                self.meta[key] = attrs.get("content", "")
        for cls in (attrs.get("class") or "").split():
            if cls in ("feature-text", "card-text", "chip"):
                self._capture.append((tag, cls, []))
        for _, _, buffer in self._capture:
            buffer.append("")

    def handle_endtag(self, tag):
        if self._capture and self._capture[-1][0] == tag:
            _, cls, buffer = self._capture.pop()
            self.text_by_class.setdefault(cls, []).append("".join(buffer))

    def handle_data(self, data):
        for _, _, buffer in self._capture:
            buffer.append(data)


def parse(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def local_target(page: Path, url: str, site: Path) -> Path | None:
    """The file a relative link points to, or None for absolute/external/fragment-only links."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = (page.parent / unquote(parts.path)).resolve()
    assert site.resolve() in target.parents or target == site.resolve(), f"{page}: {url} leaves the site"
    return target


def broken_links(site: Path) -> list[str]:
    broken = []
    for page in html_files(site):
        parsed = parse(page)
        urls = [url for _, url in parsed.links]
        refresh = parsed.meta.get("refresh")
        if refresh:
            urls.append(refresh.split("url=", 1)[1])
        for url in urls:
            target = local_target(page, url, site)
            if target is not None and not target.is_file():
                broken.append(f"{page.relative_to(site)} -> {url}")
    return broken


def tree_bytes(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def search_index(site: Path) -> dict:
    [path] = site.glob("assets/search-index.*.js")
    text = path.read_text(encoding="utf-8")
    prefix = "window.gallerySearch="
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2])


@pytest.fixture
def hostile_site(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", HOSTILE + catalog_samples(20))
    site = tmp_path / "site"
    manifest = render(samples, site, RenderSettings(page_size=5, base_url="https://example.org/g"), night=NIGHT,
                      report=REPORT)
    return site, manifest


# --- escaping ---------------------------------------------------------------------------------------

def test_hostile_text_is_escaped_and_intact_on_every_page(hostile_site):
    site, _ = hostile_site
    for record in HOSTILE:
        page = parse(site / "d" / f"{record['id']}.html")
        assert page.text_by_class["feature-text"] == [record["text"]]
        assert page.scripts_inline == 0, "no script may come from the data"
        assert all(tag != "img" or attrs.get("src", "").startswith("../assets/") for tag, attrs in page.tags)
        assert page.meta["og:description"] == record["text"]
        assert page.meta["twitter:card"] == "summary"
    raw = (site / "d" / "h0js00000002.html").read_text(encoding="utf-8")
    assert "<img src=x" not in raw and "&lt;img src=x onerror=alert(1)&gt;" in raw
    assert "<script>alert" not in "".join(p.read_text(encoding="utf-8") for p in html_files(site))


def test_no_link_is_ever_built_from_text(hostile_site):
    site, _ = hostile_site
    for page in html_files(site):
        for _, url in parse(page).links:
            assert not url.lower().startswith("javascript:"), (page, url)
            assert "<" not in url and '"' not in url, (page, url)


def test_hostile_text_survives_listing_pages_search_index_and_feed(hostile_site):
    site, _ = hostile_site
    texts = []
    for page in sorted(site.glob("all/*.html")):
        texts += parse(page).text_by_class["card-text"]
    assert [t.strip() for t in texts[:4]] == [r["text"] for r in HOSTILE]
    index = search_index(site)
    assert [row[1] for row in index["items"][:4]] == [r["text"] for r in HOSTILE]
    assert index["genres"][index["items"][1][3]][0] == "\"><script>alert(1)</script>"
    feed = ET.parse(site / "feed.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    contents = [e.findtext("a:content", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert contents[:4] == [r["text"] for r in HOSTILE]


def test_hostile_genre_gets_a_safe_page_and_intact_chip(hostile_site):
    site, _ = hostile_site
    browse = parse(site / "genre" / "index.html")
    chips = [t.strip() for t in browse.text_by_class["chip"]]
    assert any(chip.startswith("\"><script>alert(1)</script>") for chip in chips)
    assert not (site / "type").exists(), "a dated night's type and genre pages live under nights/<date>/ only"
    genre_dirs = [p.name for p in (site / f"nights/{NIGHT}/genre").iterdir() if p.is_dir()]
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in genre_dirs), genre_dirs
    assert "comedies-drames" in genre_dirs


# --- structure --------------------------------------------------------------------------------------

def test_every_internal_link_resolves_to_a_file(hostile_site):
    site, _ = hostile_site
    assert broken_links(site) == []


def test_pages_have_landmarks_one_h1_and_no_third_party_requests(hostile_site):
    site, _ = hostile_site
    for page in html_files(site):
        html = page.read_text(encoding="utf-8")
        parsed = Page(html)
        assert '<html lang="en">' in html
        assert parsed.h1 == 1, page
        assert any(tag == "main" for tag, _ in parsed.tags), page
        for tag, url in parsed.links:
            if tag in ("script.src", "img.src") or tag == "link.href" and not url.startswith("https://example.org/g/"):
                assert not urlsplit(url).scheme, (page, tag, url)
        for tag, attrs in parsed.tags:
            if tag == "img":
                assert "alt" in attrs, page
    css = next(site.glob("assets/site.*.css")).read_text()
    assert "http" not in css and "@import" not in css


def test_assets_are_fingerprinted_by_content(hostile_site):
    site, _ = hostile_site
    assets = list((site / "assets").iterdir())
    assert {re.sub(r"\.[0-9a-f]{8}\.", ".", p.name) for p in assets} == {
        "site.css", "site.js", "search.js", "favicon.svg", "search-index.js"}
    for path in assets:
        digest = re.search(r"\.([0-9a-f]{8})\.", path.name).group(1)
        assert hashlib.sha256(path.read_bytes()).hexdigest()[:8] == digest


def test_pagination_covers_every_description_once_in_order(tmp_path):
    records = catalog_samples(53)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    render(samples, tmp_path / "site", RenderSettings(page_size=10), night=NIGHT)
    site = tmp_path / "site"
    pages = ["all/index.html"] + [f"all/page-{n}.html" for n in range(2, 7)]
    assert sorted(p.relative_to(site).as_posix() for p in site.glob("all/*.html")) == sorted(pages)
    seen = []
    for rel in pages:
        seen += [t.strip() for t in parse(site / rel).text_by_class["card-text"]]
    assert seen == [r["text"] for r in records]
    last = (site / "all/page-6.html").read_text()
    assert 'rel="prev" href="page-5.html"' in last and 'rel="next"' not in last


def test_permalinks_chain_through_the_night_with_prev_and_next(tmp_path):
    records = catalog_samples(12)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    site = tmp_path / "site"
    ids = [hashlib.sha256(r["text"].encode()).hexdigest()[:12] for r in records]
    assert sorted(p.stem for p in (site / "d").iterdir()) == sorted(ids)
    for index, key in enumerate(ids):
        html = (site / "d" / f"{key}.html").read_text()
        if index + 1 < len(ids):
            assert f'rel="next" href="{ids[index + 1]}.html"' in html
        else:
            assert 'rel="next"' not in html
        if index:
            assert f'rel="prev" href="{ids[index - 1]}.html"' in html


def test_type_and_genre_pages_list_exactly_their_descriptions(tmp_path):
    records = catalog_samples(60)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    manifest = render(samples, tmp_path / "site", RenderSettings(page_size=1000), night=NIGHT)
    site = tmp_path / "site"
    movies = [r["text"] for r in records if r["type"] == "Movie"]
    night = site / "nights" / NIGHT
    assert [t.strip() for t in parse(night / "type/movie/index.html").text_by_class["card-text"]] == movies
    assert manifest["types"]["Movie"] == len(movies)
    for genre, count in manifest["genres"].items():
        slug = render_module.slugify(genre)
        cards = parse(night / "genre" / slug / "index.html").text_by_class["card-text"]
        assert [t.strip() for t in cards] == [r["text"] for r in records if r["genre"] == genre]
        assert len(cards) == count


def test_undated_night_has_its_type_and_genre_pages_at_the_root(tmp_path):
    records = catalog_samples(20)
    manifest = render(write_samples(tmp_path / "kept.jsonl", records), tmp_path / "site", RenderSettings())
    site = tmp_path / "site"
    assert manifest["night"] == "undated" and not (site / "nights" / "undated").exists()
    movies = [r["text"] for r in records if r["type"] == "Movie"]
    assert [t.strip() for t in parse(site / "type/movie/index.html").text_by_class["card-text"]] == movies
    assert broken_links(site) == []


def test_random_redirects_without_javascript_and_ids_for_javascript(tmp_path):
    records = catalog_samples(30)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    render(samples, tmp_path / "site", RenderSettings(random_pages=8), night=NIGHT)
    site = tmp_path / "site"
    redirects = sorted(site.glob("random/*.html"))
    assert len(redirects) == 8
    targets = {parse(p).meta["refresh"].split("url=")[1] for p in redirects}
    assert len(targets) == 8 and all(re.fullmatch(r"\.\./d/[0-9a-f]{12}\.html", t) for t in targets)
    home = (site / "index.html").read_text()
    assert re.search(r'href="random/\d\.html" data-random', home)
    assert 'data-ids="random/ids.js"' in home
    ids = json.loads((site / "random/ids.js").read_text()[len("window.galleryIds="):-2])
    assert ids == [hashlib.sha256(r["text"].encode()).hexdigest()[:12] for r in records]


def test_search_page_works_without_javascript_as_a_message_and_ships_the_index(tmp_path):
    records = catalog_samples(10)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    site = tmp_path / "site"
    html = (site / "search/index.html").read_text()
    assert "<noscript>" in html and "Search needs JavaScript" in html
    page = parse(site / "search/index.html")
    scripts = [url for tag, url in page.links if tag == "script.src"]
    assert any(re.search(r"assets/search-index\.[0-9a-f]{8}\.js$", s) for s in scripts)
    assert [row[1] for row in search_index(site)["items"]] == [r["text"] for r in records]


def test_model_card_renders_the_report_with_charts(hostile_site):
    site, _ = hostile_site
    html = (site / "about/index.html").read_text()
    for needle in ("8,807", "ab" * 32, "tiny", "bootstrap", "3.25", "3.5", "0.8", "0.9", "42", "59.4%", "Validation loss"):
        assert needle in html, needle
    polyline = re.search(r'<polyline class="line" points="([^"]+)"', html).group(1)
    assert len(polyline.split()) == len(REPORT["train"]["loss_curve"])
    assert html.count('class="bar"') == 3 and 'class="bar-kept"' in html
    assert "&lt;b&gt;odd&lt;/b&gt; reason" in html and "<b>odd</b>" not in html
    assert (site / f"nights/{NIGHT}/about.html").is_file()


def test_model_card_shows_the_quality_panel_and_its_trend_up_to_its_night(tmp_path):
    def panel(accuracy, invented):
        return {"invented_rate": {"before": 0.4, "after": invented}, "distinct_2": 0.9,
                "novelty": {"longest_shared_run_median": 3, "longest_shared_run_max": 6},
                "reader": {"on": True, "published_median": 1.31, "real_median": 2.47, "auc": accuracy + 0.05},
                "realism": {"accuracy": accuracy}}

    archive, site = tmp_path / "archive", tmp_path / "site"
    nights = [("2026-11-23", 0.91), ("2026-11-24", 0.83), ("2026-11-25", 0.74)]
    for night, accuracy in nights:
        samples = write_samples(tmp_path / f"{night}.jsonl", catalog_samples(6))
        render(samples, site, RenderSettings(), night=night, report={"night": night, "quality": panel(accuracy, 0.0)},
               archive_dir=archive)
    html = (site / "about/index.html").read_text()
    for needle in ("Quality", "Invented words, published", "0.0%", "40.0%", "0.74", "1.31", "2.47", "0.79",
                   "Realism by night", "The reader by night"):
        assert needle in html, needle
    trend = re.search(r'aria-labelledby="trend-title trend-desc">.*?</svg>', html, re.S).group(0)
    assert len(re.search(r'<polyline class="line" points="([^"]+)"', trend).group(1).split()) == 3
    # A past night's card shows the trend up to that night only.
    past = (site / "nights/2026-11-24/about.html").read_text()
    past_trend = re.search(r'aria-labelledby="trend-title trend-desc">.*?</svg>', past, re.S).group(0)
    assert len(re.search(r'<polyline class="line" points="([^"]+)"', past_trend).group(1).split()) == 2
    reader_trend = re.search(r'aria-labelledby="reader-trend-title reader-trend-desc">.*?</svg>', html, re.S).group(0)
    assert len(re.search(r'<polyline class="line" points="([^"]+)"', reader_trend).group(1).split()) == 3
    first = (site / "nights/2026-11-23/about.html").read_text()
    assert "Realism by night" not in first and "The reader by night" not in first  # one night: no trend


@pytest.mark.parametrize("report", [None, {}, {"night": NIGHT, "train": {"skipped": True, "reason": "catalog unchanged"}},
                                    {"curate": {"rejected": {"copy": "n/a"}}, "train": {"loss_curve": [[1, "x"], None]}}])
def test_model_card_renders_whatever_part_of_the_report_exists(tmp_path, report):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(5))
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT, report=report)
    html = (tmp_path / "site/about/index.html").read_text()
    assert "About the model" in html
    if report and report.get("train", {}).get("skipped"):
        assert "no training (catalog unchanged)" in html
    if not report:
        assert "rendered without a report" in html


def test_feed_is_valid_atom_dated_by_the_night(hostile_site):
    site, _ = hostile_site
    root = ET.parse(site / "feed.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.findtext("a:updated", namespaces=ns) == f"{NIGHT}T00:00:00Z"
    entries = root.findall("a:entry", ns)
    assert len(entries) == 24
    link = entries[0].find("a:link", ns).get("href")
    assert link == "https://example.org/g/d/h0script0001.html"
    assert len({e.findtext("a:id", namespaces=ns) for e in entries}) == 24


def test_feed_stays_well_formed_with_control_characters(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", [{"text": "A bell\x07 rings \x0b twice & \ufffe once.", "genre": "\x01Odd"}])
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    root = ET.parse(tmp_path / "site/feed.xml").getroot()
    assert root.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content").text == "A bell rings  twice &  once."


def test_sitemap_and_robots_with_base_url(hostile_site):
    site, _ = hostile_site
    root = ET.parse(site / "sitemap.xml").getroot()
    locs = [e.text for e in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert "https://example.org/g/index.html" in locs and "https://example.org/g/d/h0rtl0000003.html" in locs
    assert not any("random/" in loc or "404" in loc for loc in locs)
    assert len(locs) == len(set(locs))
    assert "Sitemap: https://example.org/g/sitemap.xml" in (site / "robots.txt").read_text()
    home = parse(site / "index.html")
    assert home.meta["og:url"] == "https://example.org/g/index.html"
    assert '<base href="https://example.org/g/">' in (site / "404.html").read_text()


def test_sitemap_splits_into_an_index_past_the_url_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(render_module.pages, "SITEMAP_LIMIT", 10)
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(25))
    render(samples, tmp_path / "site", RenderSettings(base_url="https://example.org"), night=NIGHT)
    site = tmp_path / "site"
    index = ET.parse(site / "sitemap.xml").getroot()
    assert index.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}sitemapindex"
    parts = [e.text for e in index.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    urls = []
    for part in parts:
        rel = part.removeprefix("https://example.org/")
        chunk = [e.text for e in ET.parse(site / rel).getroot().iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
        assert 0 < len(chunk) <= 10
        urls += chunk
    html_pages = {p.relative_to(site).as_posix() for p in html_files(site)} - {"404.html"}
    html_pages = {p for p in html_pages if not p.startswith("random/")}
    assert sorted(u.removeprefix("https://example.org/") for u in urls) == sorted(html_pages)


def test_without_base_url_no_sitemap_and_no_absolute_urls(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(5))
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    site = tmp_path / "site"
    assert not (site / "sitemap.xml").exists()
    assert "Sitemap" not in (site / "robots.txt").read_text()
    for page in html_files(site):
        assert "og:url" not in page.read_text() and "canonical" not in page.read_text()


# --- determinism and incremental output ---------------------------------------------------------------

def test_same_inputs_give_byte_identical_sites(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", HOSTILE + catalog_samples(30))
    first = render(samples, tmp_path / "a", RenderSettings(page_size=7, base_url="https://x.org"), night=NIGHT, report=REPORT)
    second = render(samples, tmp_path / "b", RenderSettings(page_size=7, base_url="https://x.org"), night=NIGHT, report=REPORT)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert first["pages"] == second["pages"] == len(tree_bytes(tmp_path / "a"))


def test_worker_processes_render_the_same_site(tmp_path, monkeypatch):
    monkeypatch.setattr(render_module.pages, "PER_WORKER_MIN", 5)
    samples = write_samples(tmp_path / "kept.jsonl", HOSTILE + catalog_samples(40))
    settings = dict(page_size=7, base_url="https://x.org")
    one = render(samples, tmp_path / "one", RenderSettings(workers=1, **settings), night=NIGHT, report=REPORT)
    three = render(samples, tmp_path / "three", RenderSettings(workers=3, **settings), night=NIGHT, report=REPORT)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "three")
    same = ("pages", "written", "bytes", "generation")  # the journal holds the workers' pages too
    assert {k: one[k] for k in same} == {k: three[k] for k in same}
    again = render(samples, tmp_path / "three", RenderSettings(workers=3, **settings), night=NIGHT, report=REPORT)
    assert again["written"] == 0 and again["unchanged"] == again["pages"] == one["pages"]


def _render_in_daemon(samples, out, queue):
    try:
        queue.put(render(samples, out, RenderSettings(workers=2), night=NIGHT)["pages"])
    except BaseException as exc:  # report anything to the test
        queue.put(repr(exc))


def test_a_daemonic_process_renders_without_worker_processes(tmp_path, monkeypatch):
    """Celery's prefork children are daemonic and may not fork a Pool: render must still work there."""
    import multiprocessing

    monkeypatch.setattr(render_module.pages, "PER_WORKER_MIN", 5)
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(30))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_render_in_daemon, args=(samples, tmp_path / "site", queue), daemon=True)
    process.start()
    result = queue.get(timeout=120)
    process.join(30)
    assert isinstance(result, int), result
    assert len(list((tmp_path / "site" / "d").iterdir())) == 30


def test_unchanged_night_rewrites_nothing(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(30))
    site = tmp_path / "site"
    render(samples, site, RenderSettings(), night=NIGHT, report=REPORT)
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in site.rglob("*") if p.is_file()}
    again = render(samples, site, RenderSettings(), night=NIGHT, report=REPORT)
    assert again["written"] == 0 and again["removed"] == 0 and again["unchanged"] == again["pages"]
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in site.rglob("*") if p.is_file()} == stamps


def test_changed_night_writes_only_what_changed_and_removes_stale_files(tmp_path):
    records = catalog_samples(30)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    site = tmp_path / "site"
    first = render(samples, site, RenderSettings(page_size=10), night=NIGHT)
    stamp = max(p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file())
    dropped = hashlib.sha256(records[-1]["text"].encode()).hexdigest()[:12]
    assert (site / "d" / f"{dropped}.html").is_file()
    (site / "d" / ".leftover.tmp").write_text("from a crash")
    write_samples(samples, records[:-1])
    second = render(samples, site, RenderSettings(page_size=10), night=NIGHT)
    assert not (site / "d" / f"{dropped}.html").exists()
    assert not (site / "d" / ".leftover.tmp").exists()
    assert second["removed"] >= 2
    # The random redirects reshuffle with any change; of the rest, only pages showing the dropped one change.
    written = [p for p in site.rglob("*") if p.is_file() and p.stat().st_mtime_ns > stamp and "random" not in p.parts]
    assert 0 < len(written) < (first["pages"] - 65) / 2, written
    assert broken_links(site) == []


def test_refuses_to_render_into_a_foreign_non_empty_directory(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(3))
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(UserError, match="not empty"):
        render(samples, precious, RenderSettings(), night=NIGHT)
    assert (precious / "thesis.txt").read_text() == "do not delete"


# --- archive ----------------------------------------------------------------------------------------

def test_archive_keeps_every_night_browsable_and_permalinks_stable(tmp_path):
    archive, site = tmp_path / "archive", tmp_path / "site"
    records = catalog_samples(40)
    night1 = write_samples(tmp_path / "n1.jsonl", records[:20])
    render(night1, site, RenderSettings(page_size=8), night="2026-11-24", archive_dir=archive)
    first_ids = {p.name for p in (site / "d").iterdir()}
    night1_files = {rel: data for rel, data in tree_bytes(site).items()
                    if rel.startswith("nights/2026-11-24/") or rel.startswith("d/") or rel.startswith("assets/site.")}
    night2 = write_samples(tmp_path / "n2.jsonl", records[20:])
    manifest = render(night2, site, RenderSettings(page_size=8), report={**REPORT, "night": "2026-11-25"},
                      archive_dir=archive)
    assert manifest["nights"] == ["2026-11-24", "2026-11-25"] and manifest["night"] == "2026-11-25"
    assert first_ids <= {p.name for p in (site / "d").iterdir()}, "yesterday's permalinks must survive"
    after = tree_bytes(site)
    assert {rel: after.get(rel) for rel in night1_files} == night1_files, "a past night's pages must not change"
    assert (archive / "2026-11-24/kept.jsonl").read_bytes() == night1.read_bytes()
    assert json.loads((archive / "2026-11-25/report.json").read_text())["night"] == "2026-11-25"
    home = (site / "index.html").read_text()
    assert 'href="nights/2026-11-24/index.html"' in home and 'href="nights/2026-11-25/index.html"' in home
    old = [t.strip() for t in parse(site / "nights/2026-11-24/index.html").text_by_class["card-text"]]
    assert old == [r["text"] for r in records[:8]]
    assert [t.strip() for t in parse(site / "index.html").text_by_class["card-text"]][:3] == [r["text"] for r in records[20:23]]
    assert broken_links(site) == []
    # Rendering the newest night again changes nothing.
    assert render(night2, site, RenderSettings(page_size=8), night="2026-11-25", archive_dir=archive)["written"] == 0


def test_archive_needs_a_dated_night(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(3))
    with pytest.raises(UserError, match="needs its date"):
        render(samples, tmp_path / "site", RenderSettings(), archive_dir=tmp_path / "archive")


# --- inputs and errors ------------------------------------------------------------------------------

def test_hand_written_file_with_only_text_works_and_ids_derive_from_text(tmp_path):
    samples = tmp_path / "kept.jsonl"
    samples.write_text('{"text": "A lighthouse keeper adopts a seal."}\n\n{"text": "A lighthouse keeper adopts a seal."}\n')
    manifest = render(samples, tmp_path / "site", RenderSettings())
    key = hashlib.sha256(b"A lighthouse keeper adopts a seal.").hexdigest()[:12]
    assert (tmp_path / "site" / "d" / f"{key}.html").is_file()
    assert manifest["descriptions"] == 1 and manifest["duplicates_dropped"] == 1 and manifest["night"] == "undated"
    assert broken_links(tmp_path / "site") == []


def test_empty_night_renders_a_complete_site(tmp_path):
    samples = tmp_path / "kept.jsonl"
    samples.write_text("")
    render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    assert "No descriptions survived curation tonight" in (tmp_path / "site/index.html").read_text()
    assert broken_links(tmp_path / "site") == []


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    ('{"text": "ok"}\nnot json\n', "malformed JSON"),
    ('{"txt": "no text"}\n', "string \"text\""),
    ('{"text": "x", "id": "../../etc/passwd"}\n', "safe permalink"),
])
def test_bad_samples_are_user_errors(tmp_path, content, needle):
    samples = tmp_path / "kept.jsonl"
    if content is not None:
        samples.write_text(content)
    with pytest.raises(UserError, match=re.escape(needle)):
        render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("night", ["2026-13-01", "yesterday", "2026-11-25/../x"])
def test_bad_night_is_a_user_error(tmp_path, night):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(2))
    with pytest.raises(UserError, match="bad night"):
        render(samples, tmp_path / "site", RenderSettings(), night=night)


@pytest.mark.parametrize("settings", [RenderSettings(page_size=0), RenderSettings(base_url="example.org"),
                                      RenderSettings(home_picks=-1)])
def test_bad_settings_are_user_errors(tmp_path, settings):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(2))
    with pytest.raises(UserError):
        render(samples, tmp_path / "site", settings)


def test_cli_renders_with_flags_and_reports_errors_cleanly(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(15))
    report = tmp_path / "report.json"
    report.write_text(json.dumps(REPORT))
    result = run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "site"), "--report", str(report),
                     "--archive", str(tmp_path / "archive"), "--base-url", "https://example.org/", "--page-size", "4")
    assert result.returncode == 0, result.stderr
    assert "rendered 15 descriptions of night 2026-11-25" in result.stdout
    manifest = json.loads((tmp_path / "site.manifest.json").read_text())
    assert manifest["stage"] == "render" and manifest["base_url"] == "https://example.org"
    assert (tmp_path / "site/all/page-4.html").is_file() and (tmp_path / "site/sitemap.xml").is_file()

    assert_clean_error(run_cli("render", "--samples", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "s2")),
                       "samples file not found")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert_clean_error(run_cli("render", "--samples", str(bad), "--out", str(tmp_path / "s2")), "malformed JSON")
    assert_clean_error(run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "s2"), "--night", "tomorrow"),
                       "bad night")
    assert_clean_error(run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "s2"), "--report",
                               str(tmp_path / "nope.json")), "report file not found")


@pytest.mark.slow
def test_real_catalog_descriptions_render_with_intact_links(tmp_path):
    path = shared_csv(2021)
    with path.open(encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = [{k.strip(): v for k, v in row.items()} for row in reader]
    records = [{"text": r["description"], "type": r["type"], "genre": r["listed_in"].split(",")[0].strip()}
               for r in rows if r.get("description")]
    samples = write_samples(tmp_path / "kept.jsonl", records)
    manifest = render(samples, tmp_path / "site", RenderSettings(base_url="https://example.org"), night=NIGHT)
    site = tmp_path / "site"
    assert manifest["descriptions"] == len({hashlib.sha256(r["text"].encode()).hexdigest()[:12] for r in records})
    assert manifest["pages"] == len(tree_bytes(site))
    assert len(list(site.glob("all/*.html"))) == math.ceil(manifest["descriptions"] / 48)
    assert broken_links(site) == []


def test_the_about_page_names_the_nights_base_model_and_the_copy_names_no_other(tmp_path):
    """A Llama night's site says which model wrote it; the copy shared by every night names no model."""
    from generator.render.model_card import model_card
    from generator.render.site_model import Night, RenderSettings

    card = model_card({"model": {"name": "SmolLM2-135M-Instruct", "family": "llama"}}, Night("2026-12-08", [], {}))
    assert card["base_model"] == "SmolLM2-135M-Instruct"
    assert model_card({}, Night("2026-12-08", [], {}))["base_model"] is None
    templates = Path(__file__).resolve().parents[1] / "site_templates"
    for name in ("_footer.html", "feed.xml", "about.html"):
        assert "GPT-2" not in (templates / name).read_text(encoding="utf-8"), name
    assert "GPT-2" not in RenderSettings().tagline
