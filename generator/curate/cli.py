"""``python -m generator curate``: the stage's command line."""

from __future__ import annotations

from pathlib import Path

from ..redact import public_label
from .settings import RULES
from .stage import curate

def add_cli(subparsers) -> None:
    from ..config import add_setting_flag

    parser = subparsers.add_parser(
        "curate", parents=[subparsers.common],
        help="keep only novel, well-formed, distinct samples",
        description=f"Check samples against the rules {', '.join(RULES)}, in that order (copy is against the "
        "full catalog; the reader reads the survivors against the catalog's held-out descriptions and keeps its "
        "scores in reader-cache/ beside OUT). Writes the kept samples "
        "(with a stable id) to OUT.jsonl, the rejected ones with their reason to OUT.rejected.jsonl, and "
        "OUT.manifest.json with counts per reason.",
    )
    parser.add_argument("--samples", required=True, metavar="IN.jsonl", help="samples JSONL from generate")
    parser.add_argument("--catalog", required=True, metavar="DIR|CSV",
                        help="the ingest stage's output folder (its catalog.jsonl), or a catalog CSV (path, "
                        "http(s):// URL or s3:// URI) read with the configured ingest settings")
    parser.add_argument("--out", required=True, metavar="OUT.jsonl", help="kept samples JSONL to write")
    parser.add_argument("--rejected", metavar="FILE", help="rejected samples JSONL (default OUT.rejected.jsonl)")
    parser.add_argument("--history", metavar="FILE",
                        help="JSONL of descriptions published on earlier nights (near-duplicate and "
                        "title-repeat checks: objects with text, optionally title and night); "
                        "a missing file means none")
    add_setting_flag(parser, "--blocklist", "curate.blocklist_file")
    add_setting_flag(parser, "--min-words", "curate.min_words")
    add_setting_flag(parser, "--max-words", "curate.max_words")
    add_setting_flag(parser, "--copy-ngram", "curate.copy_ngram")
    add_setting_flag(parser, "--near-duplicate-threshold", "curate.near_duplicate_threshold")
    add_setting_flag(parser, "--rank-by", "curate.rank_by")
    add_setting_flag(parser, "--max-unknown-words", "curate.max_unknown_words")
    add_setting_flag(parser, "--reader-percentile", "curate.reader_percentile")
    add_setting_flag(parser, "--reader-seconds", "curate.reader_seconds")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from ..ingest import load_catalog, read_catalog

    if Path(args.catalog).is_dir():
        catalog = read_catalog(args.catalog)
    else:  # a CSV: parsed here, by the CLI, the way the ingest stage would with this config
        catalog = load_catalog(args.catalog, config.ingest)
    manifest = curate(args.samples, catalog, args.out, config.curate, history_path=args.history,
                      rejected_path=args.rejected, catalog_label=public_label(args.catalog))
    reasons = ", ".join(f"{reason} {count}" for reason, count in manifest["rejected"].items() if count)
    print(f"kept {manifest['kept']} of {manifest['input']} samples ({manifest['kept_rate']:.0%}) -> {args.out}"
          + (f"; rejected: {reasons}" if reasons else ""))
    return 0
