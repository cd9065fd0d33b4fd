"""The command ``run``: the whole night in this process (:func:`generator.pipeline.run_night`), no Airflow needed."""

from __future__ import annotations

from .pipeline import run_night, site_url
from .report import summary_line


def add_cli(subparsers) -> None:
    from .config import add_setting_flag

    parser = subparsers.add_parser(
        "run", parents=[subparsers.common],
        help="run the whole night: ingest, train, promote, generate, curate, render, publish, report",
        description="Run every stage of the night in this process (no Airflow needed) and print where the site is.",
    )
    parser.add_argument("--catalog", required=True, metavar="SRC", help="catalog CSV: path, http(s):// URL or s3:// URI")
    parser.add_argument("--night", metavar="YYYY-MM-DD", help="the night's date (default: today, UTC)")
    parser.add_argument("--force-retrain", action="store_true", help="train even if the catalog is unchanged")
    add_setting_flag(parser, "--workdir", "paths.workdir")
    add_setting_flag(parser, "--target", "publish.target")
    add_setting_flag(parser, "--checkpoint-dir", "paths.checkpoint_dir")
    add_setting_flag(parser, "--models-dir", "paths.models_dir")
    add_setting_flag(parser, "--steps", "train.steps")
    add_setting_flag(parser, "--samples", "generate.samples")
    add_setting_flag(parser, "--seed", "generate.seed")
    add_setting_flag(parser, "--dry-run", "publish.dry_run", action="store_true")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    report = run_night(config, args.catalog, night=args.night, force_retrain=args.force_retrain)
    print(summary_line(report))
    print(f"site: {config.paths.site_root.resolve() / 'index.html'}")
    if report["publish"].get("target"):  # an empty night says why the published site stays as it was
        print(f"{report['publish'].get('not_published') or 'published'}: {site_url(report['publish']['target'])}")
    return 0
