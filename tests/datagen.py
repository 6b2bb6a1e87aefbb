"""Test data written by code: small, seeded, real-format files.

EuroSAT-like chips: 13-band uint16 GeoTIFFs (file band order, B8A last), 64×64, in a UTM CRS, in
`<Class>/<Class>_<n>.tif` folders. Each class gets its own spectral signature plus noise, so a model
can learn it and a loader can be checked against known values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from app_package.bands import (
    EUROSAT_CLASS_NAMES,
    EUROSAT_FILE_BAND_ORDER,
    EUROSAT_MEAN,
    EUROSAT_STD,
)

CHIP = 64


def class_signature(class_index: int) -> np.ndarray:
    """A deterministic per-class mean DN for each band, in EuroSAT file band order."""
    rng = np.random.default_rng(1000 + class_index)
    mean = np.array([EUROSAT_MEAN[b] for b in EUROSAT_FILE_BAND_ORDER])
    std = np.array([EUROSAT_STD[b] for b in EUROSAT_FILE_BAND_ORDER])
    return np.clip(mean + std * rng.uniform(-1.5, 1.5, size=mean.shape), 1, 60000)


def make_chip(class_index: int, rng: np.random.Generator, bands: int = 13) -> np.ndarray:
    """One [bands, 64, 64] uint16 chip of a class (signature + texture noise)."""
    sig = class_signature(class_index)[:bands]
    noise = rng.normal(0.0, 0.08, size=(bands, CHIP, CHIP))
    data = sig[:, None, None] * (1.0 + noise)
    return np.clip(data, 1, 65535).astype(np.uint16)


def write_chip(
    path: Path,
    data: np.ndarray,
    *,
    epsg: int = 32633,
    origin: tuple[float, float] = (500000.0, 5800000.0),
) -> Path:
    """Write a [bands, H, W] uint16 array as a GeoTIFF at 10 m in `epsg`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bands, h, w = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=bands, dtype="uint16",
        crs=f"EPSG:{epsg}", transform=from_origin(origin[0], origin[1], 10.0, 10.0),
    ) as dst:  # fmt: skip
        dst.write(data)
    return path


def write_eurosat_tree(
    root: Path,
    n_per_class: int | dict[str, int] = 4,
    *,
    classes: tuple[str, ...] = EUROSAT_CLASS_NAMES,
    seed: int = 0,
    nest: str = "",
) -> Path:
    """Write a EuroSAT-layout folder `root/<nest>/<Class>/<Class>_<n>.tif`; returns `root`."""
    rng = np.random.default_rng(seed)
    base = root / nest if nest else root
    for ci, name in enumerate(EUROSAT_CLASS_NAMES):
        if name not in classes:
            continue
        count = n_per_class[name] if isinstance(n_per_class, dict) else n_per_class
        for n in range(1, count + 1):
            # spread chips over two UTM zones, like the real dataset spans Europe
            epsg = 32632 if n % 2 else 32633
            origin = (400000.0 + 640.0 * n, 5700000.0 + 640.0 * ci)
            write_chip(
                base / name / f"{name}_{n}.tif", make_chip(ci, rng), epsg=epsg, origin=origin
            )
    return root
