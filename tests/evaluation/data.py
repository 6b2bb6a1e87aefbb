"""A small class map and reference polygons with known agreement, written by code.

The map (EPSG:32633, 10 m, 40 × 40 cells, written by classify's own COG writer): Forest on the
left half, AnnualCrop top right, Pasture bottom right; nodata in rows 0–3 × cols 0–3 and a
cloud value (10) in rows 36–39 × cols 36–39. Polygons are given in cells ([col0, col1) ×
[row0, row1)) and written in any CRS:

    forest  cols  2–18, rows  2–18  256 cells: 4 nodata, 20 shared with fields -> 232 Forest
    fields  cols 16–36, rows  8–28  400 cells: 20 shared with forest; 60 Forest, 192 AnnualCrop,
                                    128 Pasture
    meadow  cols 30–40, rows 30–40  100 cells: 16 cloud -> 84 Pasture
    water   cols  4–10, rows 30–36   36 cells: Forest
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_800_000.0)  # top-left corner
CELL = 10.0
SIZE = 40
CLOUD = 10
NODATA = 255
POLYGONS: dict[str, tuple[int, int, int, int]] = {  # value: col0, col1, row0, row1
    "forest": (2, 18, 2, 18),
    "fields": (16, 36, 8, 28),
    "meadow": (30, 40, 30, 40),
    "water": (4, 10, 30, 36),
}
MAPPING = {
    "forest": "Forest",
    "fields": "AnnualCrop|PermanentCrop|Pasture",
    "meadow": "Pasture",
    "water": "SeaLake",
}
MAPPING_INLINE = ",".join(f"{k}={v}" for k, v in MAPPING.items())
# the expected outcome, counted by hand from the layout above
ROWS = ("forest", "fields", "meadow", "water")
CELLS = (232, 380, 84, 36)
AGREEING = (232, 320, 84, 0)
INSIDE, OVERLAPPING, NODATA_CELLS, CLOUD_CELLS = 772, 20, 4, 16
# column sums of the compared cells: AnnualCrop 192, Forest 328, Pasture 212
P_E = (232 * 328 + 380 * 192 + 380 * 212 + 84 * 212) / 732**2
OVERALL = 636 / 732
KAPPA = (OVERALL - P_E) / (1 - P_E)
BALANCED = (1 + 320 / 380 + 1 + 0) / 4


def class_values() -> np.ndarray:
    v = np.full((SIZE, SIZE), 1, dtype=np.uint8)  # Forest
    v[:20, 20:] = 0  # AnnualCrop
    v[20:, 20:] = 5  # Pasture
    v[:4, :4] = NODATA
    v[36:, 36:] = CLOUD
    return v


def write_map(path: Path, values: np.ndarray | None = None) -> Path:
    """The class map as classify writes it (a COG with nodata 255 and the class colours)."""
    from affine import Affine
    from rasterio.crs import CRS as RioCRS

    from app_package.eo.bands import EUROSAT_CLASSES
    from app_package.inference.cog import write_class_cog

    transform = Affine(CELL, 0, ORIGIN[0], 0, -CELL, ORIGIN[1])
    colors = [c.rgb for c in EUROSAT_CLASSES]
    v = class_values() if values is None else values
    return write_class_cog(path, v, transform, RioCRS.from_string(CRS), colors)


def box(col0: int, col1: int, row0: int, row1: int) -> Any:
    from shapely.geometry import box as shapely_box

    x0, y0 = ORIGIN
    return shapely_box(x0 + CELL * col0, y0 - CELL * row1, x0 + CELL * col1, y0 - CELL * row0)


def write_reference(
    path: Path,
    crs: str = "EPSG:4326",
    polygons: dict[str, tuple[int, int, int, int]] | None = None,
    field: str = "landcover",
    offset: tuple[float, float] = (0.0, 0.0),
) -> Path:
    """The reference polygons in `crs` (driver from the suffix), their value in `field` and an
    unrelated `id` field; `offset` (metres) shifts them."""
    import geopandas as gpd
    from shapely import affinity

    polygons = POLYGONS if polygons is None else polygons
    geoms = [affinity.translate(box(*cells), *offset) for cells in polygons.values()]
    frame = gpd.GeoDataFrame(
        {"id": list(range(len(polygons))), field: list(polygons)}, geometry=geoms, crs=CRS
    ).to_crs(crs)
    driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".fgb": "FlatGeobuf"}[path.suffix]
    frame.to_file(path, driver=driver, engine="pyogrio")
    return path
