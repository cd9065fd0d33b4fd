"""``python -m generator render``: the stage's command line."""

from __future__ import annotations

from pathlib import Path

from .inputs import read_report
from .stage import render


def add_cli(subparsers) -> None:
    from ..config import add_setting_flag

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
    add_setting_flag(parser, "--base-url", "render.base_url", metavar="URL")
    add_setting_flag(parser, "--page-size", "render.page_size", metavar="N")
    add_setting_flag(parser, "--site-title", "render.site_title", metavar="TEXT")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    report = read_report(args.report) if args.report else None
    manifest = render(args.samples, args.out, config.render, night=args.night, report=report, archive_dir=args.archive)
    print(f"rendered {manifest['descriptions']} descriptions of night {manifest['night']}: {manifest['pages']} files "
          f"({manifest['written']} written, {manifest['unchanged']} unchanged, {manifest['removed']} removed) "
          f"-> {Path(args.out) / 'index.html'}")
    return 0
