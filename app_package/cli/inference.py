"""`classify` and `water-bodies`: maps of Sentinel-2 products."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app_package.cli.common import progress_bar
from app_package.inference.clouds import (
    CLOUD_MASK_METHODS,
    DEFAULT_CLOUD_MASK,
    DEFAULT_CLOUD_THRESHOLD,
)


def _add_classify(sub: Any) -> None:
    p = sub.add_parser(
        "classify",
        help="classify a Sentinel-2 product chip by chip into a COG class map + STAC catalog",
    )
    p.add_argument(
        "product",
        help="STAC item file or URL, staged-in folder holding catalog.json, or a .SAFE folder",
    )
    p.add_argument(
        "--model",
        required=True,
        help="models:/name@alias, models:/name/N, runs:/ID/model, a model folder, or a training "
        "output catalog.json",
    )
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="chip step in pixels (default: the chip size; a divisor of it averages overlapping "
        "chips into a finer map)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="chips per batch (default 256)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (PyTorch, default) or onnx (the model's ONNX file with ONNX Runtime, CPU)",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow store that models:/ and runs:/ URIs resolve against "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument(
        "--cloud-mask",
        choices=CLOUD_MASK_METHODS,
        default=DEFAULT_CLOUD_MASK,
        help="where clouds and snow are found: scl (an L2A product's scene classification), "
        "s2cloudless (L1C, needs B10), none, or auto (default: scl for L2A, s2cloudless for "
        "L1C with B10, else none); masked cells get the class Cloud and the mask is written "
        "as the cloud-mask COG",
    )
    p.add_argument(
        "--cloud-threshold",
        type=float,
        default=DEFAULT_CLOUD_THRESHOLD,
        metavar="SHARE",
        help="a map cell becomes Cloud when more than this share (0-1) of it is masked "
        f"(default {DEFAULT_CLOUD_THRESHOLD})",
    )
    p.add_argument(
        "--per-chip",
        action="store_true",
        help="at strides below the chip size, classify every chip from scratch (exact, "
        "(chip/stride)² x the work) instead of pooling features computed once per strip",
    )
    p.set_defaults(handler=_run_classify)


def _run_classify(args: argparse.Namespace) -> int:
    from app_package.inference.classify import classify

    with progress_bar("classify") as progress:
        out = classify(
            args.product,
            args.model,
            args.output,
            stride=args.stride,
            batch_size=args.batch_size,
            device=args.device,
            tracking_uri=args.tracking_uri,
            progress=progress,
            runtime=args.runtime,
            cloud_mask=args.cloud_mask,
            cloud_threshold=args.cloud_threshold,
            per_chip=args.per_chip,
        )
    print(out)
    return 0


def _add_water_bodies(sub: Any) -> None:
    p = sub.add_parser(
        "water-bodies",
        help="water masks of Sentinel-2 products (NDWI + Otsu) as COGs + one STAC catalog",
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="ITEM",
        help="STAC item file or URL, staged-in folder holding catalog.json, or a .SAFE folder",
    )
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--aoi",
        default=None,
        metavar="MINX,MINY,MAXX,MAXY",
        help="area of interest in --aoi-crs (default: the whole product); write --aoi=-1,2,3,4 "
        "when the first number is negative",
    )
    p.add_argument(
        "--aoi-crs", default="EPSG:4326", help="CRS of --aoi (default: EPSG:4326, lon/lat)"
    )
    p.set_defaults(handler=_run_water_bodies)


def _run_water_bodies(args: argparse.Namespace) -> int:
    from app_package.eo.bbox import parse_aoi
    from app_package.inference.water_bodies import water_bodies

    aoi = parse_aoi(args.aoi) if args.aoi is not None else None
    with progress_bar("water-bodies") as progress:
        out = water_bodies(
            args.items, args.output, aoi=aoi, aoi_crs=args.aoi_crs, progress=progress
        )
    print(out)
    return 0


def register(sub: Any) -> None:
    _add_classify(sub)
    _add_water_bodies(sub)
