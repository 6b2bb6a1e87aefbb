"""Water detection, the pure core: NDWI, Otsu's threshold on a histogram, the water mask.

No I/O: arrays in, arrays and numbers out. `app_package.inference.water_bodies` reads the bands
and writes the outputs.

NDWI (McFeeters 1996) = (green − nir) / (green + nir): water reflects more green than near
infrared, so water is positive and land and vegetation are mostly negative. The split between
the two is scene dependent (sun, season, turbidity, top-of-atmosphere vs surface reflectance),
so the threshold is chosen per scene by Otsu's method: the NDWI value that maximises the
between-class variance of the valid pixels' histogram.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from app_package.eo.bands import L1C_NODATA

NOT_WATER: Final[int] = 0
WATER: Final[int] = 1
MASK_NODATA: Final[int] = 255

# NDWI lies in [-1, 1]; 2000 bins of 0.001 resolve the threshold far below any real difference.
NDWI_RANGE: Final[tuple[float, float]] = (-1.0, 1.0)
NDWI_BINS: Final[int] = 2000


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDWI as float32 from green and NIR DNs on one reflectance scale; NaN where either is nodata.

    DN 0 is nodata; offset-corrected DNs keep valid pixels ≥ 1, so green + nir > 0 elsewhere.
    """
    if green.shape != nir.shape:
        raise ValueError(f"green {green.shape} and nir {nir.shape} must have the same shape")
    g = green.astype(np.float32)
    n = nir.astype(np.float32)
    valid = (green != L1C_NODATA) & (nir != L1C_NODATA)
    out = np.full(green.shape, np.nan, dtype=np.float32)
    np.divide(g - n, g + n, out=out, where=valid)
    return out


def ndwi_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of the valid (non-NaN) NDWI values in `NDWI_BINS` equal bins over `NDWI_RANGE`."""
    finite = values[np.isfinite(values)]
    counts, _ = np.histogram(finite, bins=NDWI_BINS, range=NDWI_RANGE)
    return counts.astype(np.int64)


def bin_edges() -> np.ndarray:
    """The `NDWI_BINS + 1` edges of `ndwi_histogram`'s bins."""
    return np.round(np.linspace(NDWI_RANGE[0], NDWI_RANGE[1], NDWI_BINS + 1), 9)


def otsu_threshold(counts: np.ndarray, edges: np.ndarray) -> float:
    """Otsu's threshold of a histogram: the bin edge that maximises the between-class variance.

    Values at or above the returned edge form one class, values below it the other. Ties (a flat
    plateau of the criterion, e.g. an empty gap between two modes) resolve to the middle of the
    plateau. Raises ValueError for an empty histogram.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(edges) != len(counts) + 1:
        raise ValueError(f"{len(counts)} counts need {len(counts) + 1} edges, not {len(edges)}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("the histogram is empty: no valid values to threshold")
    centers = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(counts)[:-1]  # weight of the lower class when splitting after bin i
    w1 = total - w0
    weighted = np.cumsum(counts * centers)
    s0 = weighted[:-1]
    mean0 = np.divide(s0, w0, out=np.zeros_like(s0), where=w0 > 0)
    mean1 = np.divide(weighted[-1] - s0, w1, out=np.zeros_like(s0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    if not between.size or between.max() <= 0:  # one value only: everything is one class
        nonzero = np.flatnonzero(counts)
        return float(edges[nonzero[-1] + 1])
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    i = int(best[len(best) // 2])  # middle of a plateau
    return float(edges[i + 1])


def water_mask(values: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 mask: WATER where NDWI ≥ threshold, NOT_WATER below it, MASK_NODATA where NaN."""
    out = np.full(values.shape, MASK_NODATA, dtype=np.uint8)
    valid = np.isfinite(values)
    out[valid] = np.where(values[valid] >= threshold, WATER, NOT_WATER)
    return out


def water_fraction(mask: np.ndarray) -> float:
    """Share of water among the valid pixels of a mask (0 when none is valid)."""
    water = int(np.count_nonzero(mask == WATER))
    valid = water + int(np.count_nonzero(mask == NOT_WATER))
    return water / valid if valid else 0.0
