"""The site's pages: every file of the gallery, rendered with Jinja2 through a SiteWriter.

Home, listings (all, per type, per genre, per archived night), the browse pages,
permalinks (forked workers for large nights), random redirects, search and its index,
the model card pages, the archive, 404, the Atom feed, sitemap.xml and robots.txt.
See the package docstring for the site's layout.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import random
import uuid
import zlib
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..errors import UserError
from .model_card import model_card
from .site_model import (CONTENT_SECURITY_POLICY, TEMPLATES_DIR, TYPE_LABELS, Item, Night, RenderSettings, View, excerpt, fmt_number,
                         night_label, root_of, xml_text)
from .writer import SiteWriter

SITEMAP_LIMIT = 50_000  # URLs per sitemap file (sitemaps.org protocol)
RANDOM_IDS = "random/ids.js"  # the newest night's ids, for the client-side random pick
PER_WORKER_MIN = 5000  # permalinks per extra worker process (below that, forking costs more than it saves)
ROOT_MARK = "\ue000"  # private-use character standing for a card's root prefix until it is known


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
        self.env.globals["content_security_policy"] = CONTENT_SECURITY_POLICY
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
            # A title, when there is one, goes last: rows of untitled nights stay as they were.
            "items": [[i.id, i.text, type_index.get(i.type, -1), genre_index.get(i.genre, -1),
                       *([i.title] if i.title else [])] for i in self.current.items],
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
        self.writer.make_dir("d")
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
        for changed, unchanged, size in counts:
            self.writer.changed.update(changed)
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
            self.page(f"d/{item.id}.html", "description.html", title=item.name(60),
                      description=excerpt(item.text, 200), item=item, night=night, og_type="article",
                      type_href=root + type_href if type_href else "",
                      genre_href=root + genre_href if genre_href else "",
                      night_href=root + view.all_base + "index.html",
                      prev_href=f"{prev_item.id}.html" if prev_item else "",
                      next_href=f"{next_item.id}.html" if next_item else "",
                      prev_text=prev_item.name(70) if prev_item else "",
                      next_text=next_item.name(70) if next_item else "")

    def random_pages(self) -> None:
        """random/<k>.html: redirects to descriptions spread over the whole night, in an order seeded by
        the night (never the clock); with fewer descriptions than pages, they repeat."""
        items = self.current.items
        order = random.Random(self.current.date).sample(range(len(items)), len(items))
        for k in range(self.settings.random_pages):
            item = items[order[k % len(order)]] if items else None
            self.page(f"random/{k}.html", "redirect.html", indexable=False, title="A random description",
                      target=f"../d/{item.id}.html" if item else "../index.html",
                      target_title=item.title if item else None)

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
            # The trend stops at this night: a past night's card never depends on later nights.
            card = model_card(night.report, night, [n for n in self.nights if n.date <= night.date])
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
        entries = [{"item": i, "title": i.name(70), "href": f"d/{i.id}.html", "abs": self.absolute(f"d/{i.id}.html"),
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


def _render_share(bounds: tuple[int, int]) -> tuple[dict[str, str], int, int]:
    """Worker: render permalink tasks[start:end]; returns (the files it wrote -> MD5, unchanged, bytes)."""
    site, tasks = _FORKED
    writer = site.writer
    writer.produced, writer.sitemap, writer.changed = set(), [], {}
    writer.unchanged = writer.bytes = 0
    site.render_permalinks(tasks[bounds[0]:bounds[1]])
    return writer.changed, writer.unchanged, writer.bytes


def _js_json(value) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Valid JSON, but older JS engines end a string at these two characters.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _urlset(base_url: str, rels: list[str]) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    lines += [f"<url><loc>{xml_escape(base_url)}/{xml_escape(rel)}</loc></url>" for rel in rels]
    lines.append("</urlset>\n")
    return "\n".join(lines)
