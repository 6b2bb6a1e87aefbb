"""Water bodies of Sentinel-2 products: NDWI + Otsu → a water-mask COG and a STAC catalog.

The I/O around `app_package.inference.water`: bands are found by name
(`sentinel2.open_product`), read in strips of the area-of-interest window, brought to the
pre-04.00 DN scale exactly as
classification does (`classify.to_model_scale`: RADIO_ADD_OFFSET for baseline ≥ 04.00, valid
DNs stay ≥ 1, DN 0 is nodata), and the result is written as one uint8 COG per product (0 not
water, 1 water, 255 nodata) with one STAC item each, all under one catalog.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from affine import Affine

from app_package import __version__
from app_package.eo.bands import band
from app_package.eo.bbox import DEFAULT_AOI_CRS, Bounds, check_aoi, parse_crs
from app_package.eo.sentinel2 import GRID_RESOLUTION_M, BandSource, Product, open_product
from app_package.errors import DataError, InputError
from app_package.inference.items import (
    THUMBNAIL_ASSET,
    MapClass,
    OutputGrid,
    classification_classes,
    cog_asset,
    derived_item,
    output_id,
    thumbnail_asset,
)
from app_package.inference.reader import product_grid, to_model_scale
from app_package.inference.water import (
    MASK_NODATA,
    NOT_WATER,
    WATER,
    bin_edges,
    ndwi,
    ndwi_histogram,
    otsu_threshold,
    water_fraction,
    water_mask,
)
from app_package.util.outputs import atomic_dir, check_output_free
from app_package.util.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    import pystac
    from rasterio.crs import CRS

    from app_package.inference.reader import ProductGrid

logger = logging.getLogger(__name__)

GREEN: Final[str] = band("green").name  # B03, 10 m
NIR: Final[str] = band("nir").name  # B08, 10 m
NDWI_BANDS: Final[tuple[str, str]] = (GREEN, NIR)
STRIP_ROWS: Final[int] = 1024  # rows read at once (about one JPEG2000 tile of a 10 m band)

CATALOG: Final[str] = "catalog.json"
WATER_ASSET: Final[str] = "water"
WATER_FILE: Final[str] = "water.tif"
THUMBNAIL_FILE: Final[str] = "thumbnail.png"
WATER_CLASSES: Final[tuple[MapClass, ...]] = (
    MapClass(NOT_WATER, "not_water", "Not water (NDWI below the threshold)", (224, 224, 224)),
    MapClass(WATER, "water", "Water (NDWI at or above the threshold)", (13, 71, 161)),
)


@dataclass(frozen=True)
class Window:
    """A window of the product's 10 m grid, in pixels."""

    col_off: int
    row_off: int
    width: int
    height: int


def grid_window(bounds: Bounds, transform: Affine, width: int, height: int) -> Window | None:
    """The pixels of a north-up grid that `bounds` (in the grid's CRS) touches; None if none.

    Partly covered pixels are included; the window is clipped to the grid.
    """
    minx, miny, maxx, maxy = bounds
    left, top, px, py = transform.c, transform.f, transform.a, -transform.e
    col0 = max(0, math.floor((minx - left) / px))
    col1 = min(width, math.ceil((maxx - left) / px))
    row0 = max(0, math.floor((top - maxy) / py))
    row1 = min(height, math.ceil((top - miny) / py))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def aoi_window(product: Product, grid: ProductGrid, aoi: Bounds | None, aoi_crs: CRS) -> Window:
    """The window of `grid` an AOI covers (the whole grid without one); InputError if it misses."""
    if aoi is None:
        return Window(0, 0, grid.width, grid.height)
    from rasterio.warp import transform_bounds

    # Clip the AOI to the product first, in the AOI's CRS: a large AOI (say, a continent in
    # lon/lat) has no sensible bounds in the product's UTM zone, the product's extent always has.
    as_aoi = transform_bounds(grid.crs, aoi_crs, *grid.bounds, densify_pts=21)
    clipped = (
        max(aoi[0], as_aoi[0]),
        max(aoi[1], as_aoi[1]),
        min(aoi[2], as_aoi[2]),
        min(aoi[3], as_aoi[3]),
    )
    window = None
    if clipped[0] < clipped[2] and clipped[1] < clipped[3]:
        in_grid = transform_bounds(aoi_crs, grid.crs, *clipped, densify_pts=21)
        window = grid_window(in_grid, grid.transform, grid.width, grid.height)
    if window is None:
        raise InputError(
            f"AOI {list(aoi)} ({aoi_crs}) does not overlap product {product.id}: its bounds are "
            f"{[round(v, 6) for v in as_aoi]} in {aoi_crs} ({[round(v, 2) for v in grid.bounds]} "
            f"in {grid.crs}); choose an AOI inside them"
        )
    return window


# ---------------------------------------------------------------- reading and detecting
def _ndwi_grid(product: Product) -> tuple[list[BandSource], ProductGrid]:
    """The green and NIR sources (by name) and their shared 10 m grid."""
    sources = product.require(NDWI_BANDS)  # DataError naming missing bands and present assets
    grid = product_grid(sources)
    coarse = {n: f * GRID_RESOLUTION_M for n, f in grid.factors.items() if f != 1}
    if coarse:
        raise DataError(
            f"product {product.id}: NDWI needs {GREEN} and {NIR} at 10 m, but "
            + ", ".join(f"{n} has {m} m pixels" for n, m in coarse.items())
        )
    return sources, grid


def strip_edges(top: int, height: int, block: int, strip_rows: int) -> list[int]:
    """Row edges of strips covering rows [top, top + height), each ending on a file block row.

    GDAL keeps no decoded JPEG2000 tiles between reads, so a strip that crossed a tile row
    (an AOI starting mid-tile) would decode that tile row twice.
    """
    step = max(block, strip_rows // block * block) if 0 < block <= 4096 else strip_rows
    bottom = top + height
    return [top, *range(min(bottom, (top // step + 1) * step), bottom, step), bottom]


def read_ndwi(
    sources: list[BandSource],
    window: Window,
    *,
    progress: Callable[[float, str], None] = no_progress,
    strip_rows: int = STRIP_ROWS,
    threads: int = 2,
) -> np.ndarray:
    """NDWI (float32, NaN = nodata) of a window, from offset-corrected DNs read strip by strip."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window as RioWindow

    out = np.empty((window.height, window.width), dtype=np.float32)
    with rasterio.Env(GDAL_NUM_THREADS=str(threads)):
        datasets = []
        try:
            for s in sources:
                try:
                    datasets.append(rasterio.open(s.href))
                except RasterioIOError as e:
                    raise DataError(f"cannot open band {s.name} ({s.href}): {e}") from e
            top = int(window.row_off)
            edges = strip_edges(
                top, int(window.height), int(datasets[0].block_shapes[0][0]), strip_rows
            )
            for y0, y1 in itertools.pairwise(edges):
                r0, rows = y0 - top, y1 - y0
                win = RioWindow(window.col_off, y0, window.width, rows)
                dns = []
                for s, ds in zip(sources, datasets, strict=True):
                    try:
                        native = ds.read(1, window=win)
                    except RasterioIOError as e:
                        raise DataError(
                            f"cannot decode band {s.name} ({s.href}) rows "
                            f"{win.row_off}–{win.row_off + rows}: {e}: the file is corrupt or "
                            "truncated"
                        ) from e
                    dns.append(to_model_scale(native, s.offset, True))
                out[r0 : r0 + rows] = ndwi(dns[0], dns[1])
                done = r0 + rows
                progress(100.0 * done / window.height, f"NDWI rows {done}/{window.height}")
        finally:
            for ds in datasets:
                ds.close()
    return out


@dataclass(frozen=True)
class WaterResult:
    """One product's water mask and what produced it."""

    mask: np.ndarray  # uint8: NOT_WATER, WATER, MASK_NODATA
    threshold: float  # Otsu's NDWI threshold (water: NDWI ≥ threshold)
    fraction: float  # water pixels / valid pixels
    valid_pixels: int
    transform: Affine  # of the mask (the product's 10 m grid, shifted to the window)
    crs: CRS
    window: Window


def detect_water(
    product: Product,
    *,
    aoi: Bounds | None = None,
    aoi_crs: str = DEFAULT_AOI_CRS,
    progress: Callable[[float, str], None] = no_progress,
) -> WaterResult:
    """NDWI of the product (within the AOI), Otsu's threshold over its valid pixels, the mask."""
    sources, grid = _ndwi_grid(product)
    window = aoi_window(product, grid, aoi, parse_crs(aoi_crs))
    values = read_ndwi(sources, window, progress=lambda p, m: progress(0.9 * p, m))
    counts = ndwi_histogram(values)
    valid = int(counts.sum())
    if valid == 0:
        raise DataError(
            f"product {product.id} has no valid pixels (DN 0 = nodata in {GREEN} or {NIR}) "
            f"in the window {window}: choose another AOI or product"
        )
    threshold = otsu_threshold(counts, bin_edges())
    mask = water_mask(values, threshold)
    transform = grid.transform @ Affine.translation(window.col_off, window.row_off)
    fraction = water_fraction(mask)
    progress(100.0, f"water: {100 * fraction:.2f} % of {valid} valid pixels")
    return WaterResult(mask, threshold, fraction, valid, transform, grid.crs, window)


# ---------------------------------------------------------------- STAC (pure: builds objects)
def build_water_item(
    *,
    product: Product,
    result: WaterResult,
    aoi: Bounds | None,
    aoi_crs: str,
    software_version: str,
    href: str,
    thumbnail_href: str | None = None,
) -> pystac.Item:
    """The STAC item of one water mask; `href` is the mask COG's (relative) href,
    `thumbnail_href` its picture's (no thumbnail asset without one)."""

    h, w = result.mask.shape
    t = result.transform
    bounds = (t.c, t.f + t.e * h, t.c + t.a * w, t.f)
    properties: dict[str, Any] = {
        "water:ndwi_threshold": result.threshold,
        "water:threshold_method": "otsu",
        "water:fraction": round(result.fraction, 6),
        "water:valid_pixels": result.valid_pixels,
        "water:bands": list(NDWI_BANDS),
    }
    if aoi is not None:
        properties["water:aoi"] = {"bbox": list(aoi), "crs": aoi_crs}
    item = derived_item(
        item_id=output_id(product.id, "water"),
        grid=OutputGrid(result.crs, t, w, h, bounds),
        acquired=product.datetime,
        source_href=product.source_href,
        source_type=product.source_type,
        title=f"Water bodies of {product.id}",
        description=(
            f"Water mask of {product.id} ({abs(t.a):g} m): NDWI = (green − nir) / (green + nir) "
            f"from {GREEN} and {NIR}, water where NDWI ≥ {result.threshold:g} (Otsu)"
        ),
        lineage=(
            f"NDWI of {GREEN} and {NIR} DNs brought to the pre-04.00 scale (RADIO_ADD_OFFSET "
            "applied for processing baseline ≥ 04.00; DN 0 = nodata), thresholded by Otsu's "
            "method over the valid pixels"
        ),
        software_version=software_version,
        properties=properties,
    )
    item.add_asset(
        WATER_ASSET,
        cog_asset(
            href,
            title="Water mask (0 not water, 1 water, 255 nodata)",
            roles=["data", "water-mask"],
            data_type="uint8",
            nodata=MASK_NODATA,
            resolution=abs(t.a),
            classes=classification_classes(list(WATER_CLASSES), MASK_NODATA),
        ),
    )
    if thumbnail_href is not None:
        item.add_asset(
            THUMBNAIL_ASSET,
            thumbnail_asset(thumbnail_href, "Water mask and legend beside a true-colour quicklook"),
        )
    return item


def water_thumbnail(product: Product, result: WaterResult) -> bytes:
    """The PNG for people: the water mask with its legend beside the quicklook of its window."""
    from app_package.inference.thumbnail import MapLayer, Swatch, product_thumbnail

    h, w = result.mask.shape
    t = result.transform
    bounds = (t.c, t.f + t.e * h, t.c + t.a * w, t.f)
    labels = ("Not water", "Water")
    swatches = [Swatch(c.value, x, c.rgb) for c, x in zip(WATER_CLASSES, labels, strict=True)]
    layer = MapLayer(
        result.mask, swatches, MASK_NODATA, bounds, f"Water: NDWI ≥ {result.threshold:.3f} (Otsu)"
    )
    return product_thumbnail(
        product,
        layer,
        bounds,
        title=product.id,
        subtitle=f"Water bodies · NDWI = ({GREEN} − {NIR}) / ({GREEN} + {NIR}) · "
        f"{abs(t.a):g} m pixels · {product.datetime:%Y-%m-%d %H:%M} UTC",
    )


# ---------------------------------------------------------------- the job
def _part(
    progress: ProgressCallback | Callable[[float, str], None], start: float, share: float
) -> Callable[[float, str], None]:
    """A callback mapping 0–100 onto [start, start + share] of `progress`."""

    def inner(percent: float, message: str) -> None:
        progress(start + share * percent / 100.0, message)

    return inner


def water_bodies(
    items: Sequence[str | Path],
    output: Path,
    *,
    aoi: Sequence[float] | None = None,
    aoi_crs: str = DEFAULT_AOI_CRS,
    progress: ProgressCallback | Callable[[float, str], None] = no_progress,
) -> Path:
    """Water masks of Sentinel-2 products (STAC items, staged-in folders or .SAFE) → `output`.

    One item per product, all under `output/catalog.json`, which is returned. Every input is
    checked (products open, bands present, AOI overlaps) before any pixel is read; nothing is
    left in `output` when anything fails.
    """
    import pystac

    from app_package.inference.cog import write_class_cog

    output = Path(output)
    check_output_free(output)
    if not items:
        raise InputError("no items given: name at least one Sentinel-2 STAC item or product")
    bounds = check_aoi(aoi) if aoi is not None else None
    crs = parse_crs(aoi_crs)
    progress(0.0, f"opening {len(items)} product(s)")
    products: list[Product] = []
    for ref in items:
        product = open_product(str(ref))
        _, grid = _ndwi_grid(product)
        aoi_window(product, grid, bounds, crs)  # fails early when the AOI misses a product
        clash = next((p for p in products if p.id == product.id), None)
        if clash is not None:
            raise InputError(
                f"{ref} and {clash.source_href} are the same product {product.id}: give each once"
            )
        products.append(product)

    share = 95.0 / len(products)
    with atomic_dir(output) as tmp:
        catalog = pystac.Catalog(
            id="water-bodies",
            title=f"Water bodies of {products[0].id}"
            + (f" and {len(products) - 1} more products" if len(products) > 1 else ""),
            description=f"Water masks (NDWI + Otsu) of {len(products)} Sentinel-2 product(s)",
        )
        for i, product in enumerate(products):
            result = detect_water(
                product, aoi=bounds, aoi_crs=aoi_crs, progress=_part(progress, i * share, share)
            )
            item = build_water_item(
                product=product,
                result=result,
                aoi=bounds,
                aoi_crs=aoi_crs,
                software_version=__version__,
                href=f"./{WATER_FILE}",
                thumbnail_href=f"./{THUMBNAIL_FILE}",
            )
            folder = tmp / item.id
            folder.mkdir()
            colors = [c.rgb for c in WATER_CLASSES]
            write_class_cog(
                folder / WATER_FILE, result.mask, result.transform, result.crs, colors, "water"
            )
            (folder / THUMBNAIL_FILE).write_bytes(water_thumbnail(product, result))
            catalog.add_item(item, title=item.properties.get("title") or item.id)
            item.set_self_href(str(folder / f"{item.id}.json"))
            logger.info(
                "%s: NDWI threshold %.4f, water %.2f %%",
                product.id,
                result.threshold,
                100 * result.fraction,
            )
        progress(96.0, "writing STAC")
        catalog.set_self_href(str(tmp / CATALOG))
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    progress(100.0, f"wrote {output / CATALOG}")
    return output / CATALOG
