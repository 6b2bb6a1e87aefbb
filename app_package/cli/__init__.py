"""`app-package`: one entry point, one subcommand per job, each a thin door onto one library
function (the command groups live in this folder, one module each).

Exit status: 0 done; 2 a bad option or input value; 65 input data missing or unusable; 69 a
service (MLflow, an OGC endpoint, a download server) failed or refused; 75 a temporary failure
(trying again later can succeed; `watch --once` with items left); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from app_package import __version__
from app_package.cli import data, evaluation, events, inference, packages, service, training
from app_package.cli.common import Handler
from app_package.errors import EX_INTERRUPTED, AppPackageError

# library fields whose option is not `--<field with dashes>`
OPTION_FOR_FIELD = {
    "catalog_id": "--id",
    "poll_interval_s": "--interval",
    "backoff_max_s": "--max-backoff",
    "claim_idle_s": "--claim-idle",
    "poll_s": "--poll",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app-package",
        description="EuroSAT land-cover classification of Sentinel-2: train, classify, serve.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging: -v progress and decisions (INFO), -vv everything (DEBUG)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (data, service, training, inference, evaluation, events, packages):
        group.register(sub)
    return parser


def option_for(args: argparse.Namespace, field: str | None) -> str | None:
    """This command's option for a library field named by an error, if it has one."""
    if field is None:
        return None
    option = OPTION_FOR_FIELD.get(field, "--" + field.replace("_", "-"))
    dest = option.removeprefix("--").replace("-", "_")
    return option if dest in vars(args) or field in vars(args) else None


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        code = handler(args)
    except AppPackageError as e:
        option = option_for(args, e.field)
        hint = f" (option {option})" if option else ""
        print(f"app-package {args.command}: error: {e}{hint}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        print(f"app-package {args.command}: interrupted", file=sys.stderr)
        code = EX_INTERRUPTED
    raise SystemExit(code)
