"""Titles in the gallery: cards, permalink headings, <title>, og:title, the feed, search, random pages,
previous/next; untitled records and archived nights render as they did."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from generator.render import RenderSettings, render
from test_render import catalog_samples, parse, write_samples

NIGHT = "2026-12-01"
TITLED = [
    {"id": "t00000000001", "title": "The Salt Ledger", "type": "Movie", "genre": "Dramas",
     "text": "A widowed ferry captain smuggles letters across a frozen strait for an exiled poet."},
    {"id": "t00000000002", "title": "<script>alert('t')</script> & \"Co\"", "type": "TV Show", "genre": "Comedies",
     "text": "Two rival bakers share one tiny kitchen in Lisbon for a whole summer."},
    {"id": "t00000000003", "type": "Movie", "genre": "Dramas",
     "text": "An untitled record from a hand-written file still renders as it always did."},
    {"id": "t00000000004", "title": "Quiet Lanterns", "type": "Movie", "genre": "Thrillers",
     "text": "A lighthouse keeper hears a radio call from a ship that sank fifty years ago."},
]
ATOM = "{http://www.w3.org/2005/Atom}"


def text_of(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html, re.S)


@pytest.fixture(scope="module")
def titled_site(tmp_path_factory):
    work = tmp_path_factory.mktemp("titled")
    settings = RenderSettings(base_url="https://example.org/gallery", random_pages=8)
    render(write_samples(work / "kept.jsonl", TITLED), work / "site", settings, night=NIGHT)
    return work / "site"


def page_html(site: Path, record: dict) -> str:
    return (site / f"d/{record['id']}.html").read_text(encoding="utf-8")


def test_permalink_heading_title_and_og_title_are_the_title(titled_site):
    for record in TITLED:
        page = parse(titled_site / f"d/{record['id']}.html")  # permalinks stay id-based
        html = page_html(titled_site, record)
        if record.get("title"):
            (heading,) = text_of(html, r'<h1 class="feature-title" dir="auto">(.*?)</h1>')
            assert heading == _escaped(record["title"])
            assert page.meta["og:title"] == record["title"]
            assert text_of(html, r"<title>(.*?) · ")[0] == _escaped(record["title"])
            assert '<p class="eyebrow">A made-up' in html
        else:  # as before: the kind is the heading, the first words name the page
            assert "feature-title" not in html and '<h1 class="eyebrow">A made-up film' in html
            assert page.meta["og:title"] == record["text"][:60].rsplit(" ", 1)[0] + "…"
        assert page.text_by_class["feature-text"] == [record["text"]]
        assert page.h1 == 1


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_cards_show_the_title_as_their_link_and_the_description_below(titled_site):
    html = (titled_site / f"nights/{NIGHT}/index.html").read_text(encoding="utf-8") \
        if (titled_site / f"nights/{NIGHT}/index.html").is_file() else (titled_site / "all/index.html").read_text()
    titles = text_of(html, r'<h2 class="card-title" dir="auto"><a class="card-link" href="[^"]*d/(\w+)\.html">(.*?)</a></h2>')
    assert titles == [(r["id"], _escaped(r["title"])) for r in TITLED if r.get("title")]
    # The untitled card: its description is the link, as before.
    assert re.search(r'<p class="card-text" dir="auto"><a class="card-link" href="[^"]*d/t00000000003\.html">An untitled',
                     html)
    assert [t.strip() for t in parse(titled_site / "index.html").text_by_class["card-text"]] == [r["text"] for r in TITLED]
    assert "<script>alert" not in html


def test_previous_and_next_name_their_neighbours_by_title(titled_site):
    middle = parse(titled_site / f"d/{TITLED[1]['id']}.html")
    html = page_html(titled_site, TITLED[1])
    assert text_of(html, r'class="pn-text" dir="auto">(.*?)</span>') == [
        "The Salt Ledger", TITLED[2]["text"][:70].rsplit(" ", 1)[0] + "…"]
    assert ("a.href", f"{TITLED[0]['id']}.html") in middle.links
    after_untitled = page_html(titled_site, TITLED[3])
    assert text_of(after_untitled, r'class="pn-text" dir="auto">(.*?)</span>')[0].startswith("An untitled record")


def test_feed_entries_are_titled(titled_site):
    root = ET.parse(titled_site / "feed.xml").getroot()
    titles = [entry.find(f"{ATOM}title").text for entry in root.iter(f"{ATOM}entry")]
    assert titles == ["The Salt Ledger", TITLED[1]["title"], TITLED[2]["text"][:70].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…",
                      "Quiet Lanterns"]
    contents = [entry.find(f"{ATOM}content").text for entry in root.iter(f"{ATOM}entry")]
    assert contents == [r["text"] for r in TITLED]


def test_search_index_carries_titles_and_the_search_looks_in_them(titled_site):
    (index_file,) = (titled_site / "assets").glob("search-index.*.js")
    data = json.loads(index_file.read_text(encoding="utf-8").removeprefix("window.gallerySearch=").rstrip(";\n"))
    rows = {row[0]: row for row in data["items"]}
    assert rows["t00000000001"][4] == "The Salt Ledger" and rows["t00000000002"][4] == TITLED[1]["title"]
    assert len(rows["t00000000003"]) == 4  # an untitled row is what it was
    (search_js,) = (titled_site / "assets").glob("search.*.js")
    script = search_js.read_text(encoding="utf-8")
    assert "fold(title + " in script and "card-title" in script


def test_random_pages_name_the_title_they_lead_to(titled_site):
    seen = {}
    for page in sorted((titled_site / "random").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        target = re.search(r'url=\.\./d/(\w+)\.html', html).group(1)
        seen[target] = html
    assert set(seen) == {r["id"] for r in TITLED}
    assert "Go to “<span dir=\"auto\">The Salt Ledger</span>”" in seen["t00000000001"]
    assert "Go to a random description" in seen["t00000000003"]
    assert "<script>alert" not in seen["t00000000002"]


def test_an_archived_night_without_titles_renders_as_it_did(tmp_path):
    """An earlier night's pages are byte-identical whether or not a later, titled night follows."""
    old = catalog_samples(20)
    settings = RenderSettings(page_size=8)
    render(write_samples(tmp_path / "old.jsonl", old), tmp_path / "site", settings, night="2026-11-30",
           archive_dir=tmp_path / "archive")
    before = {p.relative_to(tmp_path / "site"): p.read_bytes()
              for p in (tmp_path / "site/nights/2026-11-30").rglob("*.html")}
    from generator.artifacts import sha256_text

    old_ids = [sha256_text(r["text"])[:12] for r in old]
    permalinks = {i: (tmp_path / f"site/d/{i}.html").read_bytes() for i in old_ids}
    render(write_samples(tmp_path / "new.jsonl", TITLED), tmp_path / "site", settings, night=NIGHT,
           archive_dir=tmp_path / "archive")
    after = {p.relative_to(tmp_path / "site"): p.read_bytes() for p in (tmp_path / "site/nights/2026-11-30").rglob("*.html")}
    assert after == before
    assert {i: (tmp_path / f"site/d/{i}.html").read_bytes() for i in old_ids} == permalinks
    assert "feature-title" in (tmp_path / "site/d/t00000000001.html").read_text()
