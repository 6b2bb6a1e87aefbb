"""`cwl-local`: a local copy of a CWL package, for runners started with --no-container."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _add_cwl_local(sub: Any) -> None:
    p = sub.add_parser(
        "cwl-local",
        help="copy CWL packages with DockerRequirement relaxed to a hint (cwltool --no-container)",
        description=(
            "The packages require their container, as an ADES wants; `cwltool --no-container` "
            "and `toil-cwl-runner --no-container` refuse a required container. This writes a "
            "copy of each package into OUTPUT with DockerRequirement moved to hints, nothing "
            "else changed."
        ),
    )
    p.add_argument("packages", type=Path, nargs="+", help="CWL package files (cwl/*.cwl)")
    p.add_argument(
        "-o", "--output", type=Path, default=Path("build/cwl-local"), help="folder for the copies"
    )
    p.set_defaults(handler=_run_cwl_local)


def _run_cwl_local(args: argparse.Namespace) -> int:
    from app_package.jobs.cwl_local import local_copy

    for package in args.packages:
        print(local_copy(package, args.output))
    return 0


def register(sub: Any) -> None:
    _add_cwl_local(sub)
