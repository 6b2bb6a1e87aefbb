"""`evaluate`: a class map (the COG `classify` writes) compared with reference polygons; the
JSON report and its picture written into a new folder, nothing half-written on failure.

The map's classes are EuroSAT's (value = class index); any other value (nodata, cloud, …) is
not comparable and counted apart, as are cells inside polygons of different reference classes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import numpy as np

from app_package.eo.bands import CLASS_NODATA, EUROSAT_CLASSES
from app_package.errors import DataError, NotFoundError
from app_package.evaluation.mapping import ClassMapping, check_covers, identity_mapping
from app_package.evaluation.metrics import agreement, compare_cells, confusion_matrix
from app_package.evaluation.reference import (
    overlap,
    rasterise,
    read_reference,
    row_indices,
    to_crs,
)
from app_package.evaluation.report import PICTURE_FILE, REPORT_FILE, report_document, report_png
from app_package.evaluation.result import Bounds, Evaluation, MapInfo
from app_package.stac.io import is_url
from app_package.util.outputs import atomic_dir, check_output_free
from app_package.util.progress import ProgressCallback

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.windows import Window

logger = logging.getLogger(__name__)

CLASS_VALUES = np.array([c.value for c in EUROSAT_CLASSES], dtype=np.int64)
CLASS_NAMES = tuple(c.name for c in EUROSAT_CLASSES)


def accept_matrix(mapping: ClassMapping) -> np.ndarray:
    """[reference values, map classes] bool: which map classes agree with each reference value."""
    column = {int(v): i for i, v in enumerate(CLASS_VALUES)}
    accept = np.zeros((len(mapping.values), len(CLASS_VALUES)), dtype=bool)
    for row, value in enumerate(mapping.values):
        accept[row, [column[v] for v in mapping.accepted[value]]] = True
    return accept


def _source(href: str) -> str:
    """A path or URL that GDAL opens: `file://` URLs become paths."""
    return unquote(urlparse(href).path) if href.startswith("file://") else href


def _fmt(bounds: Bounds) -> str:
    return "[" + ", ".join(f"{b:.6g}" for b in bounds) + "]"


def _window(transform: Affine, bounds: Bounds, width: int, height: int) -> Window | None:
    """The map's cells covering `bounds` (whole cells, clipped to the map), None if none."""
    from rasterio.windows import Window

    left, bottom, right, top = bounds
    inverse = ~transform
    corners = [inverse @ (x, y) for x in (left, right) for y in (bottom, top)]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    col0, col1 = max(0, math.floor(min(cols))), min(width, math.ceil(max(cols)))
    row0, row1 = max(0, math.floor(min(rows))), min(height, math.ceil(max(rows)))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def evaluate_map(
    map_href: str,
    reference_href: str,
    *,
    field: str,
    mapping: ClassMapping | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Compare the class map at `map_href` with the polygons of `reference_href` whose class is
    in `field` (`mapping`: reference value -> accepted map classes; default: the values are
    EuroSAT class names). Reads only the part of the map the polygons cover."""
    import rasterio
    from rasterio.errors import RasterioIOError

    report = progress or (lambda percent, message: None)
    source = _source(map_href)
    if not is_url(source) and not source.startswith("/vsi") and not os.path.exists(source):
        raise NotFoundError(f"class map {map_href} does not exist: give the classification COG")
    report(5, "reading the reference polygons")
    reference = read_reference(_source(reference_href), field)
    if mapping is None:
        mapping = identity_mapping(reference.values)
    else:
        check_covers(mapping, reference.values)
    report(20, "reading the class map")
    try:
        ds = rasterio.open(source)
    except RasterioIOError as e:
        raise DataError(f"cannot read the class map {map_href}: {e}") from e
    with ds:
        if ds.count != 1 or not np.issubdtype(np.dtype(ds.dtypes[0]), np.unsignedinteger):
            raise DataError(
                f"class map {map_href} has {ds.count} band(s) of {ds.dtypes[0]}: give a "
                "single-band unsigned-integer class map (classify's classification.tif)"
            )
        if ds.crs is None:
            raise DataError(f"class map {map_href} has no coordinate reference system")
        nodata = int(ds.nodata) if ds.nodata is not None else CLASS_NODATA
        info = MapInfo(
            href=map_href,
            crs=ds.crs.to_string(),
            bounds=tuple(float(b) for b in ds.bounds),  # type: ignore[arg-type]
            shape=(ds.height, ds.width),
            resolution=(float(ds.res[0]), float(ds.res[1])),
            nodata=nodata,
        )
        geometries = to_crs(reference, ds.crs.to_wkt())
        in_map_crs: Bounds = tuple(float(b) for b in geometries.total_bounds)  # type: ignore[assignment]
        common = overlap(info.bounds, in_map_crs)
        window = None if common is None else _window(ds.transform, common, ds.width, ds.height)
        if common is None or window is None:
            raise DataError(
                f"class map {map_href} and reference {reference_href} do not overlap: the map "
                f"covers {_fmt(info.bounds)} and the reference polygons {_fmt(in_map_crs)} "
                f"(both in {info.crs}; the reference's own bounds are "
                f"{_fmt(reference.info.bounds)} in {reference.info.crs}); give reference "
                "polygons over the mapped area"
            )
        values = ds.read(1, window=window)
        transform = ds.window_transform(window)
        left, top = transform @ (0, 0)
        right, bottom = transform @ (values.shape[1], values.shape[0])
    report(40, "rasterising the reference polygons")
    rows = row_indices(mapping, reference.values)
    labels, conflict = rasterise(
        list(geometries), rows, len(mapping.values), transform, values.shape
    )
    report(80, "comparing")
    columns, excluded = compare_cells(labels, conflict, values, CLASS_VALUES, nodata)
    if excluded.reference_cells == 0:
        raise DataError(
            f"no cell of class map {map_href} has its centre inside a polygon of "
            f"{reference_href}: the polygons are smaller than the map's "
            f"{info.resolution[0]:g} m cells or lie outside the map"
        )
    matrix = confusion_matrix(labels, columns, len(mapping.values), len(CLASS_VALUES))
    result = agreement(matrix, accept_matrix(mapping))
    if result.compared == 0:
        raise DataError(
            f"none of the {excluded.reference_cells} cells of class map {map_href} inside "
            f"reference polygons can be compared: {excluded.nodata} nodata, "
            f"{excluded.overlapping} in overlapping reference classes, other map values "
            f"{excluded.not_a_class or 'none'}"
        )
    return Evaluation(
        map=info,
        reference=reference.info,
        mapping=mapping,
        classes=CLASS_NAMES,
        agreement=result,
        excluded=excluded,
        window=(float(left), float(bottom), float(right), float(top)),
    )


def write_evaluation(evaluation: Evaluation, output: Path) -> Path:
    """`output/evaluation.json` and `output/evaluation.png`, written atomically; returns the
    report's path."""
    with atomic_dir(output) as tmp:
        doc = report_document(evaluation)
        (tmp / REPORT_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        (tmp / PICTURE_FILE).write_bytes(report_png(evaluation))
    return Path(output) / REPORT_FILE


def evaluate(
    map_href: str,
    reference_href: str,
    output: Path,
    *,
    field: str,
    mapping: ClassMapping | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """`evaluate_map`, its report written into `output` (a new folder: refused before any work
    when it exists with content)."""
    check_output_free(output)
    evaluation = evaluate_map(
        map_href, reference_href, field=field, mapping=mapping, progress=progress
    )
    if progress is not None:
        progress(90, "writing the report")
    write_evaluation(evaluation, output)
    return evaluation
