"""Reference polygons: read (GeoPackage, GeoJSON, FlatGeobuf, any CRS), put into the map's CRS
and rasterised onto the map's grid (a cell belongs to a polygon when its centre lies inside)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app_package.errors import DataError, InputError, NotFoundError
from app_package.evaluation.mapping import ClassMapping
from app_package.evaluation.metrics import OUTSIDE
from app_package.evaluation.result import Bounds, ReferenceInfo
from app_package.stac.io import is_url

if TYPE_CHECKING:
    import geopandas as gpd
    from affine import Affine

logger = logging.getLogger(__name__)

POLYGONAL = frozenset({"Polygon", "MultiPolygon"})
FORMATS = "a GeoPackage, GeoJSON or FlatGeobuf file"


@dataclass(frozen=True)
class Reference:
    """Reference polygons with their values as text (features without a value left out)."""

    frame: gpd.GeoDataFrame  # geometry + the values, in the reference's own CRS
    values: list[str]  # per row of `frame`
    info: ReferenceInfo


def _text(value: Any) -> str:
    """A reference value as the mapping names it: integer codes without a decimal part."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_reference(href: str, field: str) -> Reference:
    """The polygons of `href` and the value of `field` for each. NotFoundError when there is
    no such file, InputError naming the fields present when `field` is not one, DataError when
    the file cannot be used (unreadable, no CRS, no polygons)."""
    import geopandas as gpd
    import pandas as pd
    from pyogrio.errors import DataSourceError

    if not is_url(href) and not href.startswith("/vsi") and not os.path.exists(href):
        raise NotFoundError(f"reference file {href} does not exist: give {FORMATS}")
    try:
        frame = gpd.read_file(href, layer=0, engine="pyogrio")
    except (DataSourceError, OSError, ValueError) as e:
        raise DataError(f"cannot read reference polygons from {href}: {e}; give {FORMATS}") from e
    fields = [c for c in frame.columns if c != frame.geometry.name]
    if field not in fields:
        raise InputError(
            f"reference {href} has no field {field!r}: its fields are "
            f"{', '.join(map(repr, fields)) or 'none'}",
            field="field",
        )
    if frame.crs is None:
        raise DataError(f"reference {href} has no coordinate reference system: set one in the file")
    total = len(frame)
    frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty]
    without_geometry = total - len(frame)
    kinds = set(frame.geometry.geom_type)
    if not kinds & POLYGONAL:
        raise DataError(
            f"reference {href} has no polygons (geometries: {', '.join(sorted(kinds)) or 'none'}): "
            "give the reference areas as polygons"
        )
    if kinds - POLYGONAL:
        raise DataError(
            f"reference {href} mixes polygons with {', '.join(sorted(kinds - POLYGONAL))}: "
            "keep only the reference polygons"
        )
    has_value = ~pd.isna(frame[field])
    without = int((~has_value).sum())
    if without:
        logger.info("%s: %d features without a value in %r left out", href, without, field)
    frame = frame[has_value]
    left, bottom, right, top = (float(b) for b in frame.total_bounds)
    info = ReferenceInfo(
        href=href,
        field=field,
        crs=frame.crs.to_string(),
        bounds=(left, bottom, right, top),
        features=total,
        features_without_value=without,
        features_without_geometry=without_geometry,
    )
    return Reference(frame[[field, frame.geometry.name]], [_text(v) for v in frame[field]], info)


def to_crs(reference: Reference, crs_wkt: str) -> gpd.GeoSeries:
    """The reference polygons in another CRS."""
    return reference.frame.geometry.to_crs(crs_wkt)


def rasterise(
    geometries: Sequence[Any],
    rows: Sequence[int],
    n_rows: int,
    transform: Affine,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's reference-class index (`rows[i]` of `geometries[i]`; OUTSIDE for cells in no
    polygon and in polygons of different classes) and the mask of the latter (conflicts).
    Polygons of the same class may overlap."""
    from rasterio.features import rasterize

    reference = np.full(shape, OUTSIDE, dtype=np.int32)
    seen = np.zeros(shape, dtype=bool)
    conflict = np.zeros(shape, dtype=bool)
    by_row: dict[int, list[Any]] = {}
    for geometry, row in zip(geometries, rows, strict=True):
        by_row.setdefault(row, []).append(geometry)
    for row in range(n_rows):
        if row not in by_row:
            continue
        mask = rasterize(
            ((g, 1) for g in by_row[row]),
            out_shape=shape,
            transform=transform,
            fill=0,
            all_touched=False,
            dtype="uint8",
        ).astype(bool)
        conflict |= mask & seen
        reference[mask & ~seen] = row
        seen |= mask
    reference[conflict] = OUTSIDE
    return reference, conflict


def row_indices(mapping: ClassMapping, values: Sequence[str]) -> list[int]:
    """The mapping row of each reference value (the mapping covers them: `check_covers`)."""
    index = {v: i for i, v in enumerate(mapping.values)}
    return [index[v] for v in values]


def overlap(a: Bounds, b: Bounds) -> Bounds | None:
    """The intersection of two bounds, None when they share no area."""
    left, bottom = max(a[0], b[0]), max(a[1], b[1])
    right, top = min(a[2], b[2]), min(a[3], b[3])
    return (left, bottom, right, top) if left < right and bottom < top else None
