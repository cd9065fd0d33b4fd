"""Command-line interface: a thin shell over the stage functions.

``python -m generator run …`` runs the whole night; ``python -m generator <stage> …``
runs one stage on the artifacts of the previous one. Each stage module adds its
own subcommand through ``add_cli(subparsers)`` so its flags sit beside its code.
User errors print one line (``error: <problem> (fix: <fix>)``) and exit 2; so does any OSError
that reaches ``main`` (ENOSPC, EROFS, EACCES, ENOTDIR, EISDIR…): the environment, not a bug.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from . import __version__
from .artifacts import os_error_message
from .config import flag_overrides, load_config
from .console import native_stderr_to_log, quiet_library_loggers
from .errors import UserError

STAGE_MODULES = ("ingest", "base_model", "train", "generate", "curate", "render", "publish", "run_cli",
                 "models.llama.model_file")


def _config_command(args, config) -> int:
    if args.explain:
        for row in config.explain():
            allowed = f" (allowed: {row['allowed']})" if row["allowed"] else ""
            print(f"{row['key']} = {json.dumps(row['value'])}  ({row['origin']})\n    {row['help']}{allowed}")
        return 0
    print(json.dumps(config.as_dict(mask_secrets=True), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Nightly Netflix-style description generator: ingest a catalog, fine-tune GPT-2 "
        "(gpt-2-simple), generate, curate, render a static gallery and publish it.",
        epilog="Settings: built-in defaults < --profile (generator/defaults.toml) < --config FILE < "
        "GENERATOR_<SECTION>__<KEY> environment variables < flags. "
        "`python -m generator config --explain` lists every setting. See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML file overriding generator/defaults.toml")
    common.add_argument("--profile", metavar="NAME", help="named profile: tiny, small, 124M, 355M, or one of your config file")
    common.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers.common = common  # stage modules pass it as a parent parser

    config_parser = subparsers.add_parser("config", parents=[common], help="print the effective configuration (secrets masked)")
    config_parser.add_argument("--explain", action="store_true",
                               help="list every setting with its value, where the value came from, and its help")
    config_parser.set_defaults(func=_config_command)
    for name in STAGE_MODULES:
        importlib.import_module(f"generator.{name}").add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # library warnings arrive demoted to DEBUG: shown with -v only
    quiet_library_loggers()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        overrides, origins = flag_overrides(args)
        config = load_config(profile=args.profile, config_file=args.config, overrides=overrides,
                             override_origins=origins)
        # TensorFlow's C++ start-up notes (absl, oneDNN, cuInit) go to the log, not the terminal.
        with native_stderr_to_log():
            status = int(args.func(args, config) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # `… | head` closed our stdout: what it did not read nobody wants. Exit quietly; point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The last-resort boundary for the environment (a full or read-only disk, permissions, a file
        # where a folder should be): one line, exit 2. Real bugs (any other exception) keep their traceback.
        problem, fix = os_error_message(exc)
        print(f"error: {problem} (fix: {fix})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (fix: run the same command again; stages resume or redo their work)", file=sys.stderr)
        return 130
