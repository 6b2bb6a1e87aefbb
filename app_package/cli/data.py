"""`eurosat-to-stac`, `eurosat-download` and `stac-merge`: data in, catalogs out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app_package.cli.common import progress_bar


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
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes reading chips and writing items (default: one per usable CPU for "
        "2,000 chips or more, else 1)",
    )
    p.set_defaults(handler=_run_eurosat_to_stac)


def _run_eurosat_to_stac(args: argparse.Namespace) -> int:
    from app_package.data.eurosat_stac import eurosat_to_stac

    with progress_bar("eurosat-to-stac") as progress:
        out = eurosat_to_stac(
            args.src,
            args.dest,
            geoparquet=args.geoparquet,
            collection_id=args.collection_id,
            workers=args.workers,
            progress=progress,
        )
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
        "--url",
        default=None,
        help="archive URL (default: the official EuroSAT_MS.zip, Zenodo record 7711810; "
        "'torchgeo' for torchgeo's mirror EuroSATallBands.zip)",
    )
    p.add_argument(
        "--checksum",
        default=None,
        help="md5:<hex> or sha256:<hex> of the archive (default: Zenodo's published md5, "
        "or torchgeo's for its mirror)",
    )
    p.add_argument(
        "--split-base-url",
        default=None,
        help="folder URL holding eurosat-{train,val,test}.txt (default: torchgeo's mirror)",
    )
    p.add_argument("--no-splits", action="store_true", help="do not fetch the standard split files")
    p.add_argument(
        "--no-geoparquet", action="store_true", help="skip the stac-geoparquet file of the items"
    )
    p.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from app_package.data import download as dl

    split_urls: dict[str, str] | None = None
    if args.no_splits:
        split_urls = {}
    elif args.split_base_url:
        split_urls = dl.split_urls_under(args.split_base_url)
    with progress_bar("eurosat-download") as progress:
        out = dl.eurosat_download(
            args.dest,
            url=args.url,
            checksum=args.checksum,
            split_urls=split_urls,
            geoparquet=not args.no_geoparquet,
            progress=progress,
        )
    print(out)
    return 0


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
    from app_package.stac.merge import merge_catalogs

    out = merge_catalogs(
        args.catalogs,
        args.output,
        catalog_id=args.catalog_id,
        description=args.description,
        title=args.title,
    )
    print(out)
    return 0


def register(sub: Any) -> None:
    _add_eurosat(sub)
    _add_download(sub)
    _add_stac_merge(sub)
