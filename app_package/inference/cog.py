"""Writing the class map and confidence as Cloud Optimized GeoTIFFs, and a PNG preview."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from app_package.errors import DataError

logger = logging.getLogger(__name__)

CLASS_NODATA = 255


def _overview_levels(width: int, height: int, blocksize: int) -> int:
    """Overview levels until the largest side fits one block (at least one when it doesn't)."""
    levels, size = 0, max(width, height)
    while size > blocksize:
        size = -(-size // 2)
        levels += 1
    return levels


def _cog(
    dst: Path,
    data: np.ndarray,
    transform: Affine,
    crs: CRS,
    *,
    nodata: float,
    resampling: Literal["nearest", "mode", "average"],
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    description: str = "",
) -> Path:
    import rasterio
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate, cog_validate
    from rio_cogeo.profiles import cog_profiles

    h, w = data.shape
    blocksize = 256 if max(w, h) > 512 else 128
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    cog_profile = cog_profiles.get("deflate")
    cog_profile.update(blockxsize=blocksize, blockysize=blocksize)
    with MemoryFile() as mem:
        with mem.open(**profile) as src:
            src.write(data, 1)
            if colormap:
                src.write_colormap(1, colormap)
            if description:
                src.set_band_description(1, description)
        with mem.open() as src:
            cog_translate(
                src,
                str(dst),
                cog_profile,
                overview_level=_overview_levels(w, h, blocksize),
                overview_resampling=resampling,
                in_memory=True,
                quiet=True,
                use_cog_driver=False,
            )
    valid, errors, _warnings = cog_validate(str(dst))
    if not valid:
        raise DataError(f"{dst} is not a valid COG: {errors}")
    with rasterio.open(dst) as check:  # the colour map must survive the COG copy
        if colormap and not check.colormap(1):
            raise DataError(f"{dst}: colour map was lost while writing the COG")
    return dst


def write_class_cog(
    dst: Path,
    classes: np.ndarray,
    transform: Affine,
    crs: CRS,
    colors: list[tuple[int, int, int]],
    description: str = "class",
) -> Path:
    """uint8 class map, nodata 255, the classes' colour map, overviews by mode (majority).

    `colors[v]` is the colour of value v; `description` names the band (e.g. "class", "water").
    """
    cmap = {i: (*rgb, 255) for i, rgb in enumerate(colors)}
    cmap[CLASS_NODATA] = (0, 0, 0, 0)
    return _cog(
        dst,
        classes.astype(np.uint8),
        transform,
        crs,
        nodata=CLASS_NODATA,
        resampling="mode",
        colormap=cmap,
        description=description,
    )


def write_confidence_cog(dst: Path, confidence: np.ndarray, transform: Affine, crs: CRS) -> Path:
    """float32 top-class probability (0–1), nodata NaN, averaged overviews."""
    return _cog(
        dst,
        confidence.astype(np.float32),
        transform,
        crs,
        nodata=float("nan"),
        resampling="average",
        description="confidence",
    )


def write_preview(
    dst: Path, classes: np.ndarray, colors: list[tuple[int, int, int]], max_size: int = 512
) -> Path:
    """A small RGBA PNG of the class map (nodata transparent), scaled by whole factors."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    lut = np.zeros((256, 4), dtype=np.uint8)
    for i, rgb in enumerate(colors):
        lut[i] = (*rgb, 255)
    h, w = classes.shape
    if max(h, w) > max_size:
        step = -(-max(h, w) // max_size)
        classes = classes[::step, ::step]
    else:
        factor = max(1, max_size // max(h, w))
        classes = np.repeat(np.repeat(classes, factor, 0), factor, 1)
    rgba = lut[classes].transpose(2, 0, 1)
    with warnings.catch_warnings():  # a preview is a picture: no georeference on purpose
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            dst,
            "w",
            driver="PNG",
            width=rgba.shape[2],
            height=rgba.shape[1],
            count=4,
            dtype="uint8",
        ) as out:
            out.write(rgba)
    aux = dst.with_name(dst.name + ".aux.xml")
    aux.unlink(missing_ok=True)
    return dst
