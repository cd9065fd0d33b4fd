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

Modules, one job each (none imports the package, so there is no import circle):
  site_model   settings, the site model (Item, Night, View) and text helpers: what the others share
  inputs       kept samples -> items; the night's date and report; the archive of nights
  writer       SiteWriter: atomic, write-only-what-changed file output
  charts       the model card's inline SVG charts (loss curve, curation bars)
  model_card   the night's report as labelled rows for about.html
  pages        Site: every page, feed, sitemap and robots.txt of the gallery
  stage        render(): the stage entry point and its manifest
  cli          ``python -m generator render``
"""

from .cli import add_cli
from .inputs import check_night, load_items, read_report
from .site_model import Item, Night, RenderSettings, View, slugify
from .stage import render

__all__ = ["Item", "Night", "RenderSettings", "View", "add_cli", "check_night", "load_items", "read_report",
           "render", "slugify"]
