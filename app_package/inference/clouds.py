"""Clouds and snow are not land cover: a cloud mask of a product, and the map cells it covers.

Where the mask comes from (`CloudMaskMethod`):

- `scl` (L2A): the product's scene classification layer (20 m): cloud shadow (3), cloud medium
  and high probability (8, 9), thin cirrus (10) and snow (11) are masked.
- `s2cloudless` (L1C): Sentinel Hub's pixel classifier (LightGBM) on top-of-atmosphere
  reflectance, (DN + offset) / quantification, of B01 B02 B04 B05 B08 B8A B09 B10 B11 B12, read
  averaged at 160 m, the resolution it is usually run at (GDAL reads a JPEG2000 resolution level
  or a COG overview: a fraction of decoding the bands). Probability threshold 0.4, averaged over
  a disk of 4 px and dilated by 2 px, as its authors' examples at that resolution. It needs B10,
  which L2A products lack, and was trained on L1C reflectance.
- `auto`: SCL where the product has it, s2cloudless for an L1C product with B10, else none.

The mask is kept at its own resolution (the `cloud-mask` COG, values `MASK_*`); each map cell
gets the share of its valid mask pixels that are masked, and cells whose share is above
`cloud_threshold` take the class `CLOUD_CLASS` instead of the model's.

The core is pure (`scl_to_mask`, `s2cloudless_mask`, `cell_shares`, `apply_cloud_class`,
`cloud_cover`); `read_cloud_mask` does the reading (`begin_cloud_mask`: the reading that must
come first now, the rest later, e.g. in a thread beside the decoding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import numpy as np
from affine import Affine

from app_package.eo.bands import (
    CLASS_NODATA,
    CLOUD_CLASS,
    SCL_CLOUD_HIGH_PROBABILITY,
    SCL_CLOUD_MEDIUM_PROBABILITY,
    SCL_CLOUD_SHADOW,
    SCL_NAME,
    SCL_NO_DATA,
    SCL_SNOW,
    SCL_THIN_CIRRUS,
)
from app_package.eo.sentinel2 import L2A, BandSource, Product
from app_package.errors import DataError, InputError
from app_package.inference.items import MapClass

if TYPE_CHECKING:
    from rasterio.crs import CRS
    from rasterio.io import DatasetReader

logger = logging.getLogger(__name__)


class CloudMaskMethod(StrEnum):
    """Where the cloud mask comes from."""

    AUTO = "auto"  # SCL where present, s2cloudless for L1C with B10, else none
    S2CLOUDLESS = "s2cloudless"
    SCL = "scl"
    NONE = "none"


CLOUD_MASK_METHODS: Final[tuple[str, ...]] = tuple(m.value for m in CloudMaskMethod)
DEFAULT_CLOUD_MASK: Final[str] = CloudMaskMethod.AUTO.value
# a map cell becomes CLOUD_CLASS when more than this share of its (valid) pixels is masked
DEFAULT_CLOUD_THRESHOLD: Final[float] = 0.5

# s2cloudless 1.7.3: its input bands in order, the resolution it is run at, its settings
S2CLOUDLESS_BANDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
S2CLOUDLESS_RESOLUTION_M: Final[int] = 160
S2CLOUDLESS_THRESHOLD: Final[float] = 0.4
S2CLOUDLESS_AVERAGE_OVER: Final[int] = 4
S2CLOUDLESS_DILATION: Final[int] = 2


# the values of the `cloud-mask` COG (uint8; s2cloudless gives only CLEAR, CLOUD and NODATA)
MASK_CLEAR: Final[int] = 0
MASK_CLOUD: Final[int] = 1
MASK_CLOUD_SHADOW: Final[int] = 2
MASK_CIRRUS: Final[int] = 3
MASK_SNOW: Final[int] = 4
MASK_NODATA: Final[int] = 255
MASK_VALUES: Final[tuple[MapClass, ...]] = (
    MapClass(MASK_CLEAR, "clear", "Clear", (76, 175, 80)),
    MapClass(MASK_CLOUD, "cloud", "Cloud", (255, 255, 255)),
    MapClass(MASK_CLOUD_SHADOW, "cloud_shadow", "Cloud shadow", (66, 66, 66)),
    MapClass(MASK_CIRRUS, "cirrus", "Thin cirrus", (179, 229, 252)),
    MapClass(MASK_SNOW, "snow", "Snow or ice", (0, 188, 212)),
)
MASKED_VALUES: Final[frozenset[int]] = frozenset(
    {MASK_CLOUD, MASK_CLOUD_SHADOW, MASK_CIRRUS, MASK_SNOW}
)

# SCL class -> mask value; every other SCL class is clear
SCL_TO_MASK: Final[dict[int, int]] = {
    SCL_NO_DATA: MASK_NODATA,
    SCL_CLOUD_SHADOW: MASK_CLOUD_SHADOW,
    SCL_CLOUD_MEDIUM_PROBABILITY: MASK_CLOUD,
    SCL_CLOUD_HIGH_PROBABILITY: MASK_CLOUD,
    SCL_THIN_CIRRUS: MASK_CIRRUS,
    SCL_SNOW: MASK_SNOW,
}


@dataclass(frozen=True)
class CloudMask:
    """A product's cloud mask on its own grid (values `MASK_*`)."""

    values: np.ndarray  # [H, W] uint8
    transform: Affine
    crs: CRS
    method: CloudMaskMethod

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    def masked_share(self) -> float:
        """The share of the valid mask pixels that are masked (0 when none is valid)."""
        valid = int(np.count_nonzero(self.values != MASK_NODATA))
        masked = int(np.count_nonzero(np.isin(self.values, list(MASKED_VALUES))))
        return masked / valid if valid else 0.0


# ------------------------------------------------------------------ choosing the method
def choose_method(product: Product, requested: str | CloudMaskMethod) -> CloudMaskMethod:
    """The method to run for `product`: `requested`, or what `auto` picks (logging why).

    InputError naming the option's value when it is unknown or cannot work on this product.
    """
    try:
        method = CloudMaskMethod(str(requested).strip().lower())
    except ValueError:
        raise InputError(
            f"unknown cloud mask {requested!r}: use one of {', '.join(CLOUD_MASK_METHODS)}",
            field="cloud_mask",
        ) from None
    has_b10 = all(b in product.bands for b in S2CLOUDLESS_BANDS)
    if method is CloudMaskMethod.AUTO:
        if product.scl is not None:
            logger.info("cloud mask of %s: its scene classification (SCL)", product.id)
            return CloudMaskMethod.SCL
        if has_b10 and product.level != L2A:
            logger.info("cloud mask of %s: s2cloudless (L1C reflectance with B10)", product.id)
            return CloudMaskMethod.S2CLOUDLESS
        missing = [b for b in S2CLOUDLESS_BANDS if b not in product.bands]
        logger.warning(
            "no cloud mask for %s: it has no SCL layer and %s",
            product.id,
            f"lacks {', '.join(missing)} for s2cloudless"
            if missing
            else "is L2A (s2cloudless needs L1C reflectance)",
        )
        return CloudMaskMethod.NONE
    if method is CloudMaskMethod.SCL and product.scl is None:
        raise InputError(
            f"cloud mask 'scl' needs the product's scene classification layer, and "
            f"{product.level or 'Sentinel-2'} product {product.id} has none (assets: "
            f"{', '.join(product.asset_keys) or 'none'}): SCL comes with L2A products; use "
            "'s2cloudless' for L1C, 'auto' or 'none'",
            field="cloud_mask",
        )
    if method is CloudMaskMethod.S2CLOUDLESS:
        if product.level == L2A:
            raise InputError(
                f"cloud mask 's2cloudless' needs L1C top-of-atmosphere reflectance with B10, and "
                f"{product.id} is an L2A product: use 'scl' (its scene classification), 'auto' "
                "or 'none'",
                field="cloud_mask",
            )
        missing = [b for b in S2CLOUDLESS_BANDS if b not in product.bands]
        if missing:
            raise InputError(
                f"cloud mask 's2cloudless' needs bands {', '.join(S2CLOUDLESS_BANDS)}, and "
                f"product {product.id} lacks {', '.join(missing)}: use 'scl' where the product "
                "has a scene classification, 'auto' or 'none'",
                field="cloud_mask",
            )
    return method


def check_threshold(threshold: float) -> float:
    """`cloud_threshold` as a float in [0, 1]; InputError otherwise."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = float("nan")
    if not 0.0 <= t <= 1.0:
        raise InputError(
            f"cloud threshold {threshold!r} is not a share: give a number from 0 to 1 (default "
            f"{DEFAULT_CLOUD_THRESHOLD}; a cell is marked cloud when more than that share of it "
            "is masked)",
            field="cloud_threshold",
        )
    return t


# ------------------------------------------------------------------ the pure core
def scl_to_mask(scl: np.ndarray) -> np.ndarray:
    """Mask values (`MASK_*`) of an SCL array."""
    lut = np.full(256, MASK_CLEAR, dtype=np.uint8)
    for scl_value, mask_value in SCL_TO_MASK.items():
        lut[scl_value] = mask_value
    out: np.ndarray = lut[scl.astype(np.uint8, copy=False)]
    return out


def s2cloudless_mask(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mask values of s2cloudless on [H, W, 10] TOA reflectance (`S2CLOUDLESS_BANDS` order);
    invalid pixels are NODATA and count as clear for the averaging and dilation."""
    from s2cloudless import S2PixelCloudDetector

    detector = S2PixelCloudDetector(
        threshold=S2CLOUDLESS_THRESHOLD,
        average_over=S2CLOUDLESS_AVERAGE_OVER,
        dilation_size=S2CLOUDLESS_DILATION,
        all_bands=False,
    )
    x = np.where(valid[..., None], reflectance, 0.0).astype(np.float32)[None]
    # one LightGBM thread: it runs beside the decoding, whose threads have the cores
    prob = detector.get_cloud_probability_maps(x, num_threads=1)
    prob[0][~valid] = 0.0
    clouds = detector.get_mask_from_prob(prob)[0].astype(bool)
    out = np.where(clouds, MASK_CLOUD, MASK_CLEAR).astype(np.uint8)
    out[~valid] = MASK_NODATA
    return out


def cell_shares(mask: CloudMask, cell_transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """For each cell of a map grid (`cell_transform`, `shape`, the mask's CRS), the share of
    its valid mask pixels that are masked, by area; NaN where it covers no valid mask pixel."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    flags = np.where(np.isin(mask.values, list(MASKED_VALUES)), 1.0, 0.0).astype(np.float32)
    flags[mask.values == MASK_NODATA] = np.nan
    out = np.full(shape, np.nan, dtype=np.float32)
    reproject(
        flags,
        out,
        src_transform=mask.transform,
        src_crs=mask.crs,
        src_nodata=np.nan,
        dst_transform=cell_transform,
        dst_crs=mask.crs,
        dst_nodata=np.nan,
        resampling=Resampling.average,
    )
    return out


def apply_cloud_class(
    classes: np.ndarray, confidence: np.ndarray, shares: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cells masked above `threshold` become `CLOUD_CLASS` (their confidence NaN: the model's
    class is not what the map shows); nodata cells stay nodata."""
    cloudy = (shares > threshold) & (classes != CLASS_NODATA)  # NaN compares False
    classes = classes.copy()
    confidence = confidence.copy()
    classes[cloudy] = CLOUD_CLASS.value
    confidence[cloudy] = np.nan
    return classes, confidence


def cloud_cover(classes: np.ndarray) -> float:
    """`eo:cloud_cover`: the percentage of the map's valid cells that are cloud (0–100)."""
    valid = int(np.count_nonzero(classes != CLASS_NODATA))
    cloudy = int(np.count_nonzero(classes == CLOUD_CLASS.value))
    return round(100.0 * cloudy / valid, 2) if valid else 0.0


# ------------------------------------------------------------------ reading
def _open(source: BandSource) -> DatasetReader:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        return rasterio.open(source.href)
    except RasterioIOError as e:
        raise DataError(f"cannot open {source.name} ({source.href}) for the cloud mask: {e}") from e


def read_scl_mask(product: Product, threads: int | None = None) -> CloudMask:
    """The SCL layer of an L2A product as a mask at its own resolution (20 m)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from app_package.inference.reader import usable_cpus

    source = product.scl
    if source is None:
        raise DataError(f"product {product.id} has no {SCL_NAME} layer")
    with rasterio.Env(GDAL_NUM_THREADS=str(threads or usable_cpus())), _open(source) as ds:
        try:
            scl = ds.read(1)
        except RasterioIOError as e:
            raise DataError(f"cannot decode {SCL_NAME} ({source.href}): {e}") from e
        return CloudMask(scl_to_mask(scl), ds.transform, ds.crs, CloudMaskMethod.SCL)


def read_s2cloudless_mask(product: Product, threads: int | None = None) -> CloudMask:
    """s2cloudless on the product's bands read averaged at about 160 m (a whole number of
    pixels over the extent of B02, so the mask's pixels are 160 m give or take a fraction)."""
    return begin_s2cloudless_mask(product, threads)()


def begin_s2cloudless_mask(product: Product, threads: int | None = None) -> Callable[[], CloudMask]:
    """`read_s2cloudless_mask` in two steps: the bands are read now, at 160 m; the returned
    function runs s2cloudless on them (its import and LightGBM: seconds of CPU that may run
    beside the product's decoding)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    from app_package.inference.reader import usable_cpus

    sources = product.require(S2CLOUDLESS_BANDS)
    with rasterio.Env(GDAL_NUM_THREADS=str(threads or usable_cpus())):
        with _open(product.bands["B02"]) as ref:
            left, bottom, right, top = ref.bounds
            crs = ref.crs
        w = max(1, round((right - left) / S2CLOUDLESS_RESOLUTION_M))
        h = max(1, round((top - bottom) / S2CLOUDLESS_RESOLUTION_M))
        transform = Affine((right - left) / w, 0.0, left, 0.0, -(top - bottom) / h, top)
        refl = np.empty((h, w, len(sources)), dtype=np.float32)
        valid = np.ones((h, w), dtype=bool)
        for i, s in enumerate(sources):
            with _open(s) as ds:
                if ds.crs != crs:
                    raise DataError(
                        f"band {s.name} ({s.href}) is in {ds.crs}, B02 in {crs}: all bands of a "
                        "product must share one grid"
                    )
                try:
                    dn = ds.read(
                        1,
                        window=ds.window(left, bottom, right, top),
                        out_shape=(h, w),
                        resampling=Resampling.average,
                        out_dtype=np.float32,
                    )
                except RasterioIOError as e:
                    raise DataError(f"cannot read band {s.name} ({s.href}): {e}") from e
            valid &= dn > 0
            # negative reflectance (DN < -offset since 04.00) as 0: s2cloudless never saw any
            refl[..., i] = np.maximum((dn + s.offset) / product.quantification_value, 0.0)

    def compute() -> CloudMask:
        return CloudMask(s2cloudless_mask(refl, valid), transform, crs, CloudMaskMethod.S2CLOUDLESS)

    return compute


def begin_cloud_mask(
    product: Product, method: CloudMaskMethod, threads: int | None = None
) -> Callable[[], CloudMask] | None:
    """What must be read before the product's bands are decoded is read now (s2cloudless's
    decimated reads: after a JPEG2000 band was decoded in full the same read was measured
    ~80 x slower); the returned function does the rest and returns the mask (None for NONE).
    `classify_product` runs it in a thread beside the decoding."""
    if method is CloudMaskMethod.SCL:
        return lambda: read_scl_mask(product, threads)
    if method is CloudMaskMethod.S2CLOUDLESS:
        return begin_s2cloudless_mask(product, threads)
    if method is CloudMaskMethod.AUTO:
        raise ValueError("resolve 'auto' with choose_method first")
    return None


def read_cloud_mask(
    product: Product, method: CloudMaskMethod, threads: int | None = None
) -> CloudMask | None:
    """The product's cloud mask by `method` (chosen by `choose_method`); None for NONE."""
    rest = begin_cloud_mask(product, method, threads)
    return None if rest is None else rest()
