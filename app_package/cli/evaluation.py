"""`evaluate`: a class map compared with reference polygons."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare a class map with reference polygons: confusion matrix, accuracy, kappa",
        description="Compares a class map (the classification COG `classify` writes) with "
        "reference polygons: each map cell whose centre lies inside a polygon is compared with "
        "the polygon's class. Writes evaluation.json and evaluation.png into --output and "
        "prints a summary. Nodata and map values that are not EuroSAT classes (e.g. cloud), and "
        "cells inside polygons of different classes, are not compared; they are counted apart.",
    )
    p.add_argument("map", metavar="MAP", help="the class map: GeoTIFF path or URL")
    p.add_argument(
        "reference",
        metavar="REFERENCE",
        help="reference polygons: GeoPackage, GeoJSON or FlatGeobuf path or URL, any CRS",
    )
    p.add_argument(
        "--field", required=True, help="the reference attribute holding each polygon's class"
    )
    p.add_argument(
        "--mapping",
        default=None,
        metavar="MAPPING",
        help='how reference values map to map classes: a JSON file ({"value": "Class", '
        '"value2": ["Class", "Class"]}) or inline value=Class,value2=ClassA|ClassB (any '
        "class after | is accepted too); default: the values are EuroSAT class names",
    )
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from app_package.evaluation.evaluate import evaluate
    from app_package.evaluation.mapping import read_mapping
    from app_package.evaluation.report import REPORT_FILE, summary

    mapping = read_mapping(args.mapping) if args.mapping is not None else None
    evaluation = evaluate(args.map, args.reference, args.output, field=args.field, mapping=mapping)
    print(summary(evaluation))
    print(args.output / REPORT_FILE)
    return 0


def register(sub: Any) -> None:
    _add_evaluate(sub)
