"""`serve`: the OGC API – Processes server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="start the OGC API - Processes server (pygeoapi + uvicorn; jobs in child processes)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default: 5000)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the port (default: 1); more than 1 needs a PostgreSQL job "
        "store ($APP_PACKAGE_JOB_STORE=postgresql://…)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="pygeoapi configuration (default: $APP_PACKAGE_CONFIG or the bundled "
        "pygeoapi-config.yml); data go to $APP_PACKAGE_DATA_DIR (default: ./var)",
    )
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from app_package.service.server import serve

    serve(args.host, args.port, args.config, args.workers)
    return 0


def register(sub: Any) -> None:
    _add_serve(sub)
