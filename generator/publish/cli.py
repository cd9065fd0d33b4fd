"""``python -m generator publish``: flags over the publish settings, the plan and the summary printed."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .plan import summary_line
from .stage import publish


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "publish", parents=[subparsers.common],
        help="upload what changed to s3://bucket/prefix or file:///dir",
        description="Publish a rendered site: upload only new or changed files (by content), in the order "
        "assets, pages, indexes/feeds/sitemap, index.html, then delete files no longer in the site (only files "
        "this gallery published: the target's .publish-state.json records them). The summary goes to "
        "<site>-publish.manifest.json beside the site.",
    )
    parser.add_argument("--site", required=True, metavar="DIR", help="the rendered site directory")
    parser.add_argument("--target", metavar="URI", help="s3://bucket/prefix or file:///abs/dir (default: publish.target)")
    parser.add_argument("--dry-run", action="store_true", default=None, help="print the plan; do not touch the target")
    parser.add_argument("--max-deletes", type=int, metavar="N", help="skip deletes when more than N (default 256)")
    parser.add_argument("--force-deletes", action="store_true", default=None, help="delete even over --max-deletes")
    parser.add_argument("--adopt", action="store_true", default=None,
                        help="take over files already in the target that this gallery did not publish: they may "
                        "be overwritten, or deleted when the site does not have them")
    parser.add_argument("--verify", action="store_true", default=None,
                        help="S3: list the whole target instead of diffing against its ownership record")
    parser.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    parser.add_argument("--gzip", action=argparse.BooleanOptionalAction, default=None,
                        help="gzip text files with Content-Encoding: gzip (S3 only)")
    parser.add_argument("--concurrency", type=int, metavar="N", help="parallel uploads (default 8)")
    parser.add_argument("--website", action="store_true", default=None,
                        help="set the bucket's website configuration (index.html, 404.html)")
    parser.add_argument("--cloudfront-distribution-id", metavar="ID", help="invalidate changed paths in this distribution")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from ..config import with_overrides

    config = with_overrides(config, publish={
        "target": args.target, "dry_run": args.dry_run, "max_deletes": args.max_deletes,
        "force_deletes": args.force_deletes, "adopt": args.adopt, "verify": args.verify, "endpoint_url": args.endpoint_url,
        "gzip": args.gzip, "concurrency": args.concurrency, "website": args.website,
        "cloudfront_distribution_id": args.cloudfront_distribution_id})
    settings = config.publish
    if not settings.target:
        raise UserError("no publish target given", "pass --target s3://bucket/prefix or file:///abs/dir")
    summary = publish(args.site, settings.target, settings)
    for row in summary.get("plan", []):
        print(f"{row['action']:<6} {row['key']}  ({row['reason']}{', ' + row['phase'] if row['action'] == 'upload' else ''})")
    print(f"{settings.target}: {summary_line(summary)}")
    return 0
