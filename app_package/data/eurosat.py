"""EuroSAT-MS chips: finding them in a folder and reading them with bands selected by name.

The files are 13-band uint16 GeoTIFFs in EuroSAT's own band order, where B8A is LAST
(`app_package.eo.bands.EUROSAT_FILE_BAND_ORDER`); every read maps the requested band names onto
that order, never positions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app_package.eo.bands import (
    EUROSAT_CHIP_SIZE,
    EUROSAT_CLASS_NAMES,
    EUROSAT_FILE_BAND_ORDER,
)
from app_package.errors import DataError, InputError, NotFoundError

logger = logging.getLogger(__name__)

_CHIP_NAME = re.compile(r"^(?P<cls>[A-Za-z]+)_(?P<n>\d+)\.tiff?$")


@dataclass(frozen=True)
class ChipFile:
    """One EuroSAT chip on disk: its class and its path."""

    class_name: str
    path: Path

    @property
    def chip_id(self) -> str:
        """Unique across classes, e.g. `River_1237` (the file stem)."""
        return self.path.stem


def find_chips(root: Path) -> list[ChipFile]:
    """All `<Class>/<Class>_<n>.tif` chips under `root` (class folders at any depth), sorted.

    Raises NotFoundError if `root` is missing, DataError if it holds no chips or a file named like
    a chip sits in a folder that is not its class (or a class folder is not a EuroSAT class).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(
            f"EuroSAT folder {root} does not exist: pass the folder holding the class folders "
            "(e.g. .../EuroSAT_MS)"
        )
    chips: list[ChipFile] = []
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*.tif*")):
        m = _CHIP_NAME.match(path.name)
        if not m or not path.is_file():
            continue
        folder = path.parent.name
        cls = m.group("cls")
        if folder not in EUROSAT_CLASS_NAMES:
            raise DataError(
                f"{path}: folder {folder!r} is not a EuroSAT class "
                f"({', '.join(EUROSAT_CLASS_NAMES)}): move or remove it"
            )
        if cls != folder:
            raise DataError(
                f"{path}: chip of class {cls!r} inside the {folder!r} folder: "
                "put each chip in the folder of its class"
            )
        if path.stem in seen:
            raise DataError(
                f"chip {path.stem} found twice ({seen[path.stem]} and {path}): "
                "point at one copy of the dataset"
            )
        seen[path.stem] = path
        chips.append(ChipFile(cls, path))
    if not chips:
        raise DataError(
            f"no EuroSAT chips (<Class>/<Class>_<n>.tif) found under {root}: "
            "pass the folder holding the class folders"
        )
    chips.sort(key=lambda c: (EUROSAT_CLASS_NAMES.index(c.class_name), _chip_number(c.path)))
    return chips


def _chip_number(path: Path) -> int:
    m = _CHIP_NAME.match(path.name)
    return int(m.group("n")) if m else 0


def band_indexes(
    bands: Sequence[str], file_order: Sequence[str] = EUROSAT_FILE_BAND_ORDER
) -> list[int]:
    """1-based rasterio band indexes of `bands` (canonical names) in a file of `file_order`."""
    missing = [b for b in bands if b not in file_order]
    if missing:
        raise InputError(
            f"band(s) {', '.join(missing)} not in the chip files (they hold "
            f"{', '.join(file_order)}): choose from those"
        )
    return [list(file_order).index(b) + 1 for b in bands]


def read_chip(
    path: str | Path,
    bands: Sequence[str] = EUROSAT_FILE_BAND_ORDER,
    *,
    file_order: Sequence[str] = EUROSAT_FILE_BAND_ORDER,
    data: bytes | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read one chip as uint16 [len(bands), 64, 64], channels in `bands` order (mapped by name).

    `path` is a local path or a URL GDAL can read; `data`, when given, holds the file's bytes
    (fetched elsewhere) and `path` only names it in messages. `out`, when given, is the uint16
    [len(bands), 64, 64] array the pixels are read into (e.g. one row of a preallocated stack:
    no temporary array per chip); it is returned. Raises DataError naming the file when it is
    missing, corrupt, not uint16, not 64×64 or lacks the expected bands.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.io import MemoryFile

    indexes = band_indexes(bands, file_order)
    try:
        with (
            MemoryFile(data) if data is not None else nullcontext() as mem,
            mem.open() if mem is not None else rasterio.open(path) as src,
        ):
            if src.count != len(file_order):
                raise DataError(
                    f"{path}: {src.count} bands, expected {len(file_order)} "
                    f"({', '.join(file_order)}): use the multispectral EuroSAT_MS chips"
                )
            if src.dtypes[0] != "uint16":
                raise DataError(f"{path}: data type {src.dtypes[0]}, expected uint16")
            if (src.height, src.width) != (EUROSAT_CHIP_SIZE, EUROSAT_CHIP_SIZE):
                raise DataError(
                    f"{path}: {src.width}×{src.height} px, expected "
                    f"{EUROSAT_CHIP_SIZE}×{EUROSAT_CHIP_SIZE}"
                )
            arr = src.read(indexes, out=out)
    except RasterioError as e:
        raise DataError(
            f"cannot read chip {path}: {e} — the file is missing or not a valid GeoTIFF; "
            "re-download or remove it"
        ) from e
    return np.asarray(arr, dtype=np.uint16)
