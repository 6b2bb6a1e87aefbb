"""Areas of interest: bounding boxes as the CLI writes them (`minx,miny,maxx,maxy`) and as
OGC API – Processes has them (the `ogc-bbox` input: `{"bbox": [...], "crs": "<CRS URI>"}`,
4 or 6 numbers, CRS84 by default), checked before any work: arity, order, a known CRS."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from app_package.errors import InputError

if TYPE_CHECKING:
    from rasterio.crs import CRS

DEFAULT_AOI_CRS: Final[str] = "EPSG:4326"  # the CLI's: longitude, latitude
CRS84: Final[str] = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"  # OGC bbox's default
Bounds = tuple[float, float, float, float]


def parse_aoi(text: str) -> Bounds:
    """'minx,miny,maxx,maxy' → four floats; InputError naming the value otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(
            f"AOI {text!r} is not four numbers: give minx,miny,maxx,maxy, e.g. "
            "12.55,52.46,12.65,52.50 (in the AOI's CRS, default EPSG:4326 lon/lat)",
            field="aoi",
        ) from None
    return check_aoi(values)


def check_aoi(values: Sequence[float]) -> Bounds:
    """Four finite numbers with min < max on both axes, as a tuple; InputError otherwise."""
    vals = list(values)
    if len(vals) != 4:
        raise InputError(
            f"AOI {vals} has {len(vals)} value(s): give four, minx,miny,maxx,maxy "
            "(e.g. 12.55,52.46,12.65,52.50 in EPSG:4326)"
        )
    try:
        minx, miny, maxx, maxy = (float(v) for v in vals)
    except (TypeError, ValueError):
        raise InputError(f"AOI {vals} must be four numbers: minx,miny,maxx,maxy") from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InputError(f"AOI {vals} must be finite numbers")
    if minx >= maxx or miny >= maxy:
        raise InputError(
            f"AOI {vals} is empty or inverted: it must be minx,miny,maxx,maxy with minx < maxx "
            "and miny < maxy"
        )
    return minx, miny, maxx, maxy


def parse_crs(value: str) -> CRS:
    """A CRS from 'EPSG:4326', a WKT or PROJ string; InputError naming the value otherwise."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as e:
        raise InputError(f"AOI CRS {value!r} is not a CRS ({e}): give e.g. EPSG:4326") from None


def from_ogc_bbox(value: Any, name: str = "aoi") -> tuple[Bounds, str]:
    """(bounds, CRS) of an OGC bbox value; the 2D part of a 6-number (3D) box. InputError
    naming the input for a wrong arity, an inverted box or an unknown CRS."""
    if not isinstance(value, Mapping) or "bbox" not in value:
        raise InputError(
            f"input '{name}' must be an OGC bounding box {{\"bbox\": [minx, miny, maxx, maxy], "
            f'"crs": "{CRS84}"}}',
            field=name,
        )
    numbers = value["bbox"]
    if not isinstance(numbers, Sequence) or len(numbers) not in (4, 6):
        count = len(numbers) if isinstance(numbers, Sequence) else "no"
        raise InputError(
            f"input '{name}': bbox has {count} numbers: give 4 (minx, miny, maxx, maxy) or 6 "
            "(with minz and maxz)",
            field=name,
        )
    flat = list(numbers) if len(numbers) == 4 else [numbers[0], numbers[1], numbers[3], numbers[4]]
    crs = str(value.get("crs") or CRS84)
    try:
        bounds = check_aoi(flat)
        parse_crs(crs)
    except InputError as e:
        raise InputError(f"input '{name}': {e}", field=name) from None
    return bounds, crs
