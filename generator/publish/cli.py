"""``python -m generator publish``: flags over the publish settings, the plan and the summary printed."""

from __future__ import annotations

from ..errors import UserError
from .plan import summary_line
from .stage import publish


def add_cli(subparsers) -> None:
    from ..config import add_setting_flag

    parser = subparsers.add_parser(
        "publish", parents=[subparsers.common],
        help="upload what changed to s3://bucket/prefix or file:///dir",
        description="Publish a rendered site: upload only new or changed files (by content), in the order "
        "assets, pages, indexes/feeds/sitemap, index.html, then delete files no longer in the site (only files "
        "this gallery published: the target's .publish-state.json records them). The summary goes to "
        "<site>-publish.manifest.json beside the site.",
    )
    parser.add_argument("--site", required=True, metavar="DIR", help="the rendered site directory")
    add_setting_flag(parser, "--target", "publish.target", metavar="URI")
    add_setting_flag(parser, "--dry-run", "publish.dry_run", action="store_true")
    add_setting_flag(parser, "--max-deletes", "publish.max_deletes", metavar="N")
    add_setting_flag(parser, "--force-deletes", "publish.force_deletes", action="store_true")
    add_setting_flag(parser, "--adopt", "publish.adopt", action="store_true")
    add_setting_flag(parser, "--verify", "publish.verify", action="store_true")
    add_setting_flag(parser, "--endpoint-url", "publish.endpoint_url", metavar="URL")
    add_setting_flag(parser, "--gzip", "publish.gzip")
    add_setting_flag(parser, "--concurrency", "publish.concurrency", metavar="N")
    add_setting_flag(parser, "--website", "publish.website", action="store_true")
    add_setting_flag(parser, "--cloudfront-distribution-id", "publish.cloudfront_distribution_id", metavar="ID")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    settings = config.publish
    if not settings.target:
        raise UserError("no publish target given", "pass --target s3://bucket/prefix or file:///abs/dir")
    summary = publish(args.site, settings.target, settings)
    for row in summary.get("plan", []):
        print(f"{row['action']:<6} {row['key']}  ({row['reason']}{', ' + row['phase'] if row['action'] == 'upload' else ''})")
    print(f"{settings.target}: {summary_line(summary)}")
    return 0
