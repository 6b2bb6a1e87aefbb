"""The `app-package` command line: one subcommand per job, each a thin door onto the library.

Each `_add_*` function declares one subcommand's options and maps them straight onto a library
function's arguments. No logic lives here beyond parsing, progress display and error mapping.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.errors import AppPackageError

logger = logging.getLogger("app_package")

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def progress_bar(desc: str) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar (0–100 %) on stderr, exposed as a ProgressCallback."""
    from tqdm import tqdm

    bar = tqdm(
        total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}"
    )

    def update(percent: float, message: str) -> None:
        bar.n = max(0.0, min(100.0, percent))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


# ---------------------------------------------------------------- eurosat-to-stac / download
def _add_eurosat(sub: Any) -> None:
    p = sub.add_parser(
        "eurosat-to-stac",
        help="turn a EuroSAT folder (<Class>/<Class>_<n>.tif) into a static STAC catalog",
    )
    p.add_argument("src", type=Path, help="EuroSAT folder (class folders at any depth)")
    p.add_argument("dest", type=Path, help="output folder for the catalog (must not exist)")
    p.add_argument(
        "--geoparquet", action="store_true", help="also write the items as stac-geoparquet"
    )
    p.add_argument(
        "--collection-id", default="eurosat-ms", help="collection id (default: eurosat-ms)"
    )
    p.set_defaults(handler=_run_eurosat_to_stac)


def _run_eurosat_to_stac(args: argparse.Namespace) -> int:
    from app_package.eurosat_stac import eurosat_to_stac

    with progress_bar("eurosat-to-stac") as progress:
        out = eurosat_to_stac(
            args.src, args.dest, geoparquet=args.geoparquet, collection_id=args.collection_id,
            progress=progress,
        )  # fmt: skip
    print(out)
    return 0


def _add_download(sub: Any) -> None:
    p = sub.add_parser(
        "eurosat-download",
        help="download EuroSAT-MS and the standard split files (verified, resumable), "
        "then build its STAC catalog in DEST/stac",
    )
    p.add_argument("dest", type=Path, help="folder for downloads/, the archive and stac/")
    p.add_argument(
        "--url", default=None,
        help="archive URL (default: the official EuroSAT_MS.zip, Zenodo record 7711810; "
        "'torchgeo' for torchgeo's mirror EuroSATallBands.zip)",
    )  # fmt: skip
    p.add_argument(
        "--checksum", default=None,
        help="md5:<hex> or sha256:<hex> of the archive (default: Zenodo's published md5, "
        "or torchgeo's for its mirror)",
    )  # fmt: skip
    p.add_argument(
        "--split-base-url", default=None,
        help="folder URL holding eurosat-{train,val,test}.txt (default: torchgeo's mirror)",
    )  # fmt: skip
    p.add_argument("--no-splits", action="store_true", help="do not fetch the standard split files")
    p.add_argument(
        "--no-geoparquet", action="store_true", help="skip the stac-geoparquet file of the items"
    )
    p.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from app_package import download as dl

    url = args.url or dl.ZENODO_EUROSAT_MS_URL
    if url == "torchgeo":
        url = dl.TORCHGEO_ARCHIVE_URL
    split_urls: dict[str, str] | None = None
    if args.no_splits:
        split_urls = {}
    elif args.split_base_url:
        base = args.split_base_url.rstrip("/") + "/"
        split_urls = {s: f"{base}eurosat-{s}.txt" for s in ("train", "val", "test")}
    with progress_bar("eurosat-download") as progress:
        out = dl.eurosat_download(
            args.dest, url=url, checksum=args.checksum, split_urls=split_urls,
            geoparquet=not args.no_geoparquet, progress=progress,
        )  # fmt: skip
    print(out)
    return 0


# ---------------------------------------------------------------- stac-merge
def _add_stac_merge(sub: Any) -> None:
    p = sub.add_parser(
        "stac-merge",
        help="copy several STAC catalogs under one parent catalog that links them",
    )
    p.add_argument("output", type=Path, help="output folder (must not exist, or be empty)")
    p.add_argument(
        "catalogs", type=Path, nargs="+", help="catalog folders (each holding catalog.json)"
    )
    p.add_argument("--id", dest="catalog_id", default="merged", help="parent catalog id")
    p.add_argument(
        "--description",
        default="Catalogs merged by app-package stac-merge",
        help="parent catalog description",
    )
    p.add_argument("--title", default=None, help="parent catalog title")
    p.set_defaults(handler=_run_stac_merge)


def _run_stac_merge(args: argparse.Namespace) -> int:
    from app_package.stac_merge import merge_catalogs

    out = merge_catalogs(
        args.catalogs, args.output, catalog_id=args.catalog_id, description=args.description,
        title=args.title,
    )  # fmt: skip
    print(out)
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app-package",
        description="EuroSAT land-cover classification of Sentinel-2: train, classify, serve.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_eurosat, _add_download, _add_stac_merge):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        code = handler(args)
    except AppPackageError as e:
        print(f"app-package {args.command}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"app-package {args.command}: interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code)
