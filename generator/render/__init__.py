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

Output is deterministic (no render-time clock anywhere) and a render is all or nothing: the
whole site is built in a staging folder beside ``out_dir`` and swapped in with one rename, a
file whose bytes did not change being hard-linked from the previous site (same inode and
mtime), and files no longer produced simply not staged. A failed render (an OSError such as
ENOSPC becomes a one-line UserError) removes its staging folder and leaves the previous site
byte-identical. ``<out_dir>.manifest.json`` gets ``"complete": true`` only once the site is in
place; :func:`assert_render_complete` (in ``stage``) is what publish checks first. So an
unchanged night rewrites nothing and the publisher uploads only what changed. Pages of a past
night link only within its own folder and to paths that never change, so they stay
byte-identical when new nights arrive.

Every HTML page declares :data:`CONTENT_SECURITY_POLICY` (``site_model``) in a <meta>; the
site has no inline script or style, so publish can send the same policy as a header.

With ``archive_dir`` (a directory kept across nights) the night's kept samples and
report are stored as ``<archive_dir>/<night>/kept.jsonl`` and ``report.json``, and
every archived night is rendered under ``nights/<night>/``.

Modules, one job each (none imports the package, so there is no import circle):
  site_model   settings, the site model (Item, Night, View) and text helpers: what the others share
  inputs       kept samples -> items; the night's date and report; the archive of nights
  writer       SiteWriter: staging folder, one swap, unchanged files hard-linked (not rewritten)
  charts       the model card's inline SVG charts (loss curve, curation bars)
  model_card   the night's report as labelled rows for about.html
  pages        Site: every page, feed, sitemap and robots.txt of the gallery
  stage        render(): the stage entry point, its manifest, assert_render_complete()
  cli          ``python -m generator render``
"""

from .cli import add_cli
from ..night import check_night
from .inputs import load_items, read_report
from .site_model import CONTENT_SECURITY_POLICY, Item, Night, RenderSettings, View, slugify
from .stage import assert_render_complete, render

__all__ = ["CONTENT_SECURITY_POLICY", "Item", "Night", "RenderSettings", "View", "add_cli", "assert_render_complete",
           "check_night", "load_items", "read_report", "render", "slugify"]
