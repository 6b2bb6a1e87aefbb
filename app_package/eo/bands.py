"""Sentinel-2 bands, EuroSAT's file band order and statistics, and the land-cover classes.

Facts are defined here once; every other module looks bands up by name.
Sources: ../shared/docs/domain.md (torchgeo `datasets/eurosat.py`, `datamodules/eurosat.py`; ESA
Sentinel-2 MSI specification).
"""

from dataclasses import dataclass
from typing import Final

from app_package.errors import InputError


@dataclass(frozen=True)
class Band:
    """One Sentinel-2 MSI band."""

    name: str  # "B01" … "B12", "B8A"
    resolution_m: int  # native ground sampling distance
    common_name: str  # STAC eo common name
    center_wavelength_um: float
    full_width_half_max_um: float
    asset_aliases: tuple[str, ...]  # asset keys providers use for this band (besides `name`)


# Sentinel-2 product order (B8A after B08).
S2_BANDS: Final[tuple[Band, ...]] = (
    Band("B01", 60, "coastal", 0.443, 0.027, ("coastal",)),
    Band("B02", 10, "blue", 0.490, 0.098, ("blue",)),
    Band("B03", 10, "green", 0.560, 0.045, ("green",)),
    Band("B04", 10, "red", 0.665, 0.038, ("red",)),
    Band("B05", 20, "rededge", 0.705, 0.019, ("rededge1",)),
    Band("B06", 20, "rededge", 0.740, 0.018, ("rededge2",)),
    Band("B07", 20, "rededge", 0.783, 0.028, ("rededge3",)),
    Band("B08", 10, "nir", 0.842, 0.145, ("nir",)),
    Band("B8A", 20, "nir08", 0.865, 0.033, ("nir08",)),
    Band("B09", 60, "nir09", 0.945, 0.026, ("nir09",)),
    Band("B10", 60, "cirrus", 1.375, 0.075, ("cirrus",)),
    Band("B11", 20, "swir16", 1.610, 0.143, ("swir16",)),
    Band("B12", 20, "swir22", 2.190, 0.242, ("swir22",)),
)
S2_BAND_NAMES: Final[tuple[str, ...]] = tuple(b.name for b in S2_BANDS)
# Bands L2A products have no layer for: cirrus serves the atmospheric correction and is dropped.
L2A_ABSENT_BANDS: Final[tuple[str, ...]] = ("B10",)
# The bands a model uses unless told otherwise: every band both L1C and L2A products have (B10
# holds almost no surface signal anyway). A model needing B10 cannot classify the L2A COGs most
# users get (earth-search, Planetary Computer).
DEFAULT_MODEL_BANDS: Final[tuple[str, ...]] = tuple(
    n for n in S2_BAND_NAMES if n not in L2A_ABSENT_BANDS
)
BANDS_BY_NAME: Final[dict[str, Band]] = {b.name: b for b in S2_BANDS}

# Band order inside the EuroSAT-MS GeoTIFFs: B8A is LAST (torchgeo issue #2458).
EUROSAT_FILE_BAND_ORDER: Final[tuple[str, ...]] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B8A",
)

# Per-band normalisation statistics over EuroSAT-MS (DN scale, no radiometric offset).
EUROSAT_MEAN: Final[dict[str, float]] = {
    "B01": 1354.41,
    "B02": 1118.24,
    "B03": 1042.93,
    "B04": 947.63,
    "B05": 1199.47,
    "B06": 1999.79,
    "B07": 2369.22,
    "B08": 2296.83,
    "B09": 732.08,
    "B10": 12.11,
    "B11": 1819.01,
    "B12": 1118.92,
    "B8A": 2594.14,
}
EUROSAT_STD: Final[dict[str, float]] = {
    "B01": 245.72,
    "B02": 333.01,
    "B03": 395.09,
    "B04": 593.75,
    "B05": 566.42,
    "B06": 861.18,
    "B07": 1086.63,
    "B08": 1117.98,
    "B09": 404.92,
    "B10": 4.78,
    "B11": 1002.59,
    "B12": 761.30,
    "B8A": 1231.59,
}

EUROSAT_CHIP_SIZE: Final[int] = 64
# Sentinel-2 L1C digital numbers: reflectance = (DN + offset) / QUANTIFICATION_VALUE.
L1C_QUANTIFICATION_VALUE: Final[float] = 10000.0
L1C_NODATA: Final[int] = 0


@dataclass(frozen=True)
class LandCoverClass:
    """One EuroSAT class: its value in maps, its name and a display colour."""

    value: int
    name: str
    title: str
    color_hex: str  # "RRGGBB"

    @property
    def rgb(self) -> tuple[int, int, int]:
        h = self.color_hex
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# EuroSAT's 10 classes in the dataset's (alphabetical) label order.
EUROSAT_CLASSES: Final[tuple[LandCoverClass, ...]] = (
    LandCoverClass(0, "AnnualCrop", "Annual crop", "E6C229"),
    LandCoverClass(1, "Forest", "Forest", "1B5E20"),
    LandCoverClass(2, "HerbaceousVegetation", "Herbaceous vegetation", "8BC34A"),
    LandCoverClass(3, "Highway", "Highway", "9E9E9E"),
    LandCoverClass(4, "Industrial", "Industrial", "B71C1C"),
    LandCoverClass(5, "Pasture", "Pasture", "CDDC39"),
    LandCoverClass(6, "PermanentCrop", "Permanent crop", "FF9800"),
    LandCoverClass(7, "Residential", "Residential", "E91E63"),
    LandCoverClass(8, "River", "River", "2196F3"),
    LandCoverClass(9, "SeaLake", "Sea or lake", "0D47A1"),
)
EUROSAT_CLASS_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in EUROSAT_CLASSES)
CLASS_NODATA: Final[int] = 255  # class-map value for chips touching nodata

# Class-map value for cells masked as cloud, cloud shadow, cirrus or snow (not land cover): after
# EuroSAT's ten classes, so a map of any EuroSAT model keeps 0-9 for them.
CLOUD_CLASS: Final[LandCoverClass] = LandCoverClass(10, "Cloud", "Cloud or snow", "E0E0E0")

# Sentinel-2 L2A's scene classification layer (SCL, 20 m). Source: ESA Sentinel-2 L2A product
# specification; ../shared/docs/domain.md.
SCL_NAME: Final[str] = "SCL"
SCL_ASSET_ALIASES: Final[tuple[str, ...]] = ("scl",)  # earth-search; Planetary Computer: "SCL"
SCL_RESOLUTION_M: Final[int] = 20
SCL_NO_DATA: Final[int] = 0
SCL_CLOUD_SHADOW: Final[int] = 3
SCL_VEGETATION: Final[int] = 4
SCL_WATER: Final[int] = 6
SCL_CLOUD_MEDIUM_PROBABILITY: Final[int] = 8
SCL_CLOUD_HIGH_PROBABILITY: Final[int] = 9
SCL_THIN_CIRRUS: Final[int] = 10
SCL_SNOW: Final[int] = 11
SCL_CLASSES: Final[dict[int, str]] = {
    SCL_NO_DATA: "No data",
    1: "Saturated or defective",
    2: "Dark area pixels / topographic shadows",
    SCL_CLOUD_SHADOW: "Cloud shadows",
    SCL_VEGETATION: "Vegetation",
    5: "Not vegetated",
    SCL_WATER: "Water",
    7: "Unclassified",
    SCL_CLOUD_MEDIUM_PROBABILITY: "Cloud medium probability",
    SCL_CLOUD_HIGH_PROBABILITY: "Cloud high probability",
    SCL_THIN_CIRRUS: "Thin cirrus",
    SCL_SNOW: "Snow or ice",
}


def band(name_or_alias: str) -> Band:
    """Return the band for a name (`B8A`, `b8a`, `B8`) or provider alias (`nir08`, `rededge1`)."""
    key = name_or_alias.strip()
    upper = key.upper()
    if upper in BANDS_BY_NAME:
        return BANDS_BY_NAME[upper]
    if len(upper) == 2 and upper[0] == "B" and upper[1].isdigit():  # "B2" -> "B02"
        padded = f"B0{upper[1]}"
        if padded in BANDS_BY_NAME:
            return BANDS_BY_NAME[padded]
    for b in S2_BANDS:
        if key.lower() in b.asset_aliases:
            return b
    raise KeyError(name_or_alias)


def parse_bands(names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Canonical band names from a comma-separated string or a list; None means all 13.

    Raises InputError naming the unknown band and the valid names.
    """
    if names is None:
        return S2_BAND_NAMES
    items = [n for n in names.split(",")] if isinstance(names, str) else list(names)
    items = [n.strip() for n in items if n.strip()]
    if not items:
        raise InputError(
            "no bands given: name at least one, e.g. 'B02,B03,B04' (or omit for all 13)"
        )
    out: list[str] = []
    for n in items:
        try:
            canonical = band(n).name
        except KeyError:
            raise InputError(
                f"unknown band {n!r}: valid names are {', '.join(S2_BAND_NAMES)} "
                "(or common names such as red, nir, nir08, swir16)"
            ) from None
        if canonical in out:
            raise InputError(f"band {n!r} given twice: list each band once")
        out.append(canonical)
    return tuple(out)
