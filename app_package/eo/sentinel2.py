"""Opening a Sentinel-2 product: a STAC item (file or URL), a staged-in folder or a `.SAFE` folder.

Bands are found by name whatever the provider's asset keys (`B8A`, `nir08`, `eo:bands`/`bands`
common names); the radiometric offset (L1C `RADIO_ADD_OFFSET`, L2A `BOA_ADD_OFFSET`) comes from
`MTD_MSIL1C.xml` / `MTD_MSIL2A.xml` or the STAC item; the product level (L1C or L2A) from the
item's properties, collection or id, or the metadata file; an L2A product's scene classification
layer (SCL) is kept beside its spectral bands.
"""

from __future__ import annotations

import contextlib
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from app_package.eo.bands import (
    BANDS_BY_NAME,
    L1C_QUANTIFICATION_VALUE,
    L2A_ABSENT_BANDS,
    S2_BANDS,
    SCL_ASSET_ALIASES,
    SCL_NAME,
    SCL_RESOLUTION_M,
    band,
)
from app_package.errors import DataError, InputError, NotFoundError
from app_package.stac.io import CATALOG_FILE, is_url, items, read_json, resolve_href

logger = logging.getLogger(__name__)

# Since processing baseline 04.00 (25 Jan 2022) L1C/L2A DNs carry an offset of -1000.
OFFSET_BASELINE = (4, 0)
BASELINE_04_OFFSET = -1000.0
GRID_RESOLUTION_M = 10

Level = Literal["L1C", "L2A"]
L1C: Final[Level] = "L1C"  # top-of-atmosphere reflectance, 13 bands
L2A: Final[Level] = "L2A"  # bottom-of-atmosphere reflectance, 12 bands (no B10) + SCL


@dataclass(frozen=True)
class BandSource:
    """Where one band's pixels are and how to bring its DNs to the pre-04.00 scale."""

    name: str  # canonical: "B01" … "B12", "B8A"
    href: str  # local path or URL (GDAL reads /vsicurl/ for http)
    offset: float = 0.0  # RADIO_ADD_OFFSET in DN (reflectance = (DN + offset) / quantification)
    asset_key: str = ""


@dataclass(frozen=True)
class Product:
    """A Sentinel-2 product reduced to what classification needs."""

    id: str
    datetime: datetime
    bands: dict[str, BandSource]
    processing_baseline: str | None = None
    quantification_value: float = L1C_QUANTIFICATION_VALUE
    source_href: str = ""  # the STAC item / MTD file this product was read from
    source_type: str = "application/geo+json"
    asset_keys: tuple[str, ...] = ()  # every asset/file the source listed (for error messages)
    properties: dict[str, Any] = field(default_factory=dict)
    level: Level | None = None  # None: neither the metadata nor the id say
    scl: BandSource | None = None  # L2A scene classification layer (20 m), not a spectral band

    def require(self, names: tuple[str, ...]) -> list[BandSource]:
        """The sources of `names` in that order; DataError naming any band that is missing
        (and, for a band L2A products lack, the model to use instead)."""
        missing = [n for n in names if n not in self.bands]
        if missing:
            absent = [n for n in missing if n in L2A_ABSENT_BANDS]
            hint = ""
            if absent:
                why = (
                    f"L2A products have no {', '.join(absent)} (cirrus serves the atmospheric "
                    "correction and is dropped)"
                    if self.level == L2A
                    else f"this product has no {', '.join(absent)}"
                )
                hint = (
                    f". {why}: use a model trained without {', '.join(absent)}, e.g. the default "
                    f"model, or train one on bands that leave {', '.join(absent)} out"
                )
            raise DataError(
                f"band{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing from "
                f"{self.level or 'Sentinel-2'} product {self.id} ({self.source_href}): assets "
                f"present are {', '.join(self.asset_keys) or 'none'}; bands recognised are "
                f"{', '.join(self.bands) or 'none'}{hint}"
            )
        return [self.bands[n] for n in names]


# ------------------------------------------------------------------ metadata helpers
def baseline_tuple(baseline: str | None) -> tuple[int, int] | None:
    """'04.00' -> (4, 0); None or unparsable -> None."""
    if not baseline:
        return None
    m = re.match(r"^\s*(\d+)\.(\d+)", str(baseline))
    return (int(m.group(1)), int(m.group(2))) if m else None


def needs_offset(baseline: str | None) -> bool:
    """True when DNs carry RADIO_ADD_OFFSET (processing baseline ≥ 04.00)."""
    t = baseline_tuple(baseline)
    return t is not None and t >= OFFSET_BASELINE


@dataclass(frozen=True)
class L1CMetadata:
    """The parts of `MTD_MSIL1C.xml` (or `MTD_MSIL2A.xml`) inference needs."""

    product_uri: str
    processing_baseline: str
    quantification_value: float
    offsets: dict[str, float]  # canonical band name -> RADIO_ADD_OFFSET (0 before 04.00)
    start_time: datetime | None
    footprint: list[tuple[float, float]] = field(default_factory=list)  # (lon, lat)
    level: Level | None = None  # PROCESSING_LEVEL (Level-1C / Level-2A) or the root element


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def level_of(*texts: object) -> Level | None:
    """The product level named by the first text that names one: a processing level
    ("L2A", "Level-2A"), product type ("S2MSI2A"), collection ("sentinel-2-c1-l2a") or product
    id ("S2A_MSIL2A_…", "S2B_T33UUU_20240216T101234_L2A"); None when none does."""
    for t in texts:
        if not isinstance(t, str):
            continue
        u = t.upper()
        has_2a = re.search(r"(?:^|[^A-Z0-9])(?:LEVEL-?2A|L2A)(?:$|[^A-Z0-9])|MSIL?2A", u)
        has_1c = re.search(r"(?:^|[^A-Z0-9])(?:LEVEL-?1C|L1C)(?:$|[^A-Z0-9])|MSIL?1C", u)
        if has_2a and not has_1c:
            return L2A
        if has_1c and not has_2a:
            return L1C
    return None


def _canonical_physical(name: str) -> str:
    """'B1' -> 'B01', 'B8A' -> 'B8A'."""
    return band(name).name


def parse_mtd(source: Path | str | bytes) -> L1CMetadata:
    """Parse a product-level metadata file (`MTD_MSIL1C.xml`, also L2A's `MTD_MSIL2A.xml`).

    Offsets are `RADIO_ADD_OFFSET` (L1C) or `BOA_ADD_OFFSET` (L2A), matched to bands through
    `Spectral_Information bandId/physicalBand`; absent before baseline 04.00, hence 0.
    """
    try:
        if isinstance(source, bytes):
            root = ET.fromstring(source)
        else:
            root = ET.parse(str(source)).getroot()
    except (ET.ParseError, OSError) as e:
        raise DataError(f"cannot read Sentinel-2 metadata {source!r}: {e}") from e
    by_tag: dict[str, list[ET.Element]] = {}
    for el in root.iter():
        by_tag.setdefault(_local(el.tag), []).append(el)

    def text(tag: str) -> str | None:
        els = by_tag.get(tag)
        return els[0].text.strip() if els and els[0].text else None

    baseline = text("PROCESSING_BASELINE")
    if baseline is None:
        raise DataError(f"no PROCESSING_BASELINE in Sentinel-2 metadata {source!r}")
    quant = text("QUANTIFICATION_VALUE") or text("BOA_QUANTIFICATION_VALUE")
    id_to_band: dict[str, str] = {}
    for el in by_tag.get("Spectral_Information", []):
        bid, phys = el.get("bandId"), el.get("physicalBand")
        if bid is not None and phys:
            try:
                id_to_band[bid] = _canonical_physical(phys)
            except KeyError:
                continue
    if not id_to_band:  # ESA band_id order: B1…B8, B8A, B9…B12
        id_to_band = {str(i): b.name for i, b in enumerate(S2_BANDS)}
    offsets = {b.name: 0.0 for b in S2_BANDS}
    for el in by_tag.get("RADIO_ADD_OFFSET", []) + by_tag.get("BOA_ADD_OFFSET", []):
        name = id_to_band.get(el.get("band_id", ""))
        if name and el.text:
            offsets[name] = float(el.text)
    start = text("PRODUCT_START_TIME") or text("DATATAKE_SENSING_START")
    footprint: list[tuple[float, float]] = []
    pos = text("EXT_POS_LIST")
    if pos:
        vals = [float(v) for v in pos.split()]
        footprint = [(vals[i + 1], vals[i]) for i in range(0, len(vals) - 1, 2)]  # lat lon
    return L1CMetadata(
        level=level_of(
            text("PROCESSING_LEVEL"), text("PRODUCT_TYPE"), _local(root.tag), text("PRODUCT_URI")
        ),
        product_uri=(text("PRODUCT_URI") or "").removesuffix(".SAFE"),
        processing_baseline=baseline,
        quantification_value=float(quant) if quant else L1C_QUANTIFICATION_VALUE,
        offsets=offsets,
        start_time=_parse_datetime(start) if start else None,
        footprint=footprint,
    )


def _parse_datetime(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise DataError(f"unparsable datetime {value!r}: {e}") from e
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# ------------------------------------------------------------------ STAC items
def _asset_band_names(key: str, asset: dict[str, Any]) -> list[tuple[str, int]]:
    """Candidate canonical bands for an asset with a rank (lower is better)."""
    found: list[tuple[str, int]] = []
    entries = asset.get("eo:bands") or asset.get("bands") or []
    if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict):
        e = entries[0]
        for cand in (e.get("name"), e.get("eo:common_name"), e.get("common_name")):
            if not isinstance(cand, str):
                continue
            try:
                found.append((band(cand).name, 1))
                break
            except KeyError:
                continue
    with contextlib.suppress(KeyError):
        found.insert(0, (band(key).name, 0))
    if len(entries) > 1:  # multi-band assets (TCI/visual) are not single bands
        return []
    return found


def _asset_raster_offset(asset: dict[str, Any], quant: float) -> float | None:
    """DN offset from raster:bands / bands `offset` and `scale`, if given."""
    entries = asset.get("raster:bands") or asset.get("bands") or []
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    e = entries[0]
    off = e.get("offset", e.get("raster:offset"))
    if off is None:
        return None
    scale = e.get("scale", e.get("raster:scale")) or (1.0 / quant)
    return float(off) / float(scale)


def product_from_item(item: dict[str, Any], href: str) -> Product:
    """A Product from a STAC item dict; `href` is where the item lives (resolves asset hrefs)."""
    if item.get("type") != "Feature":
        raise DataError(f"{href} is not a STAC item (type is {item.get('type')!r})")
    props = item.get("properties") or {}
    dt_value = props.get("datetime") or props.get("start_datetime")
    if not dt_value:
        raise DataError(
            f"STAC item {item.get('id')!r} ({href}) has no datetime (nor start_datetime): "
            "the output needs the source product's acquisition time"
        )
    baseline = props.get("s2:processing_baseline") or props.get("processing:version")
    quant = float(props.get("s2:reflectance_conversion_factor_quantification", 0) or 0) or (
        L1C_QUANTIFICATION_VALUE
    )
    assets = item.get("assets") or {}
    chosen: dict[str, tuple[int, int, BandSource]] = {}
    scl: BandSource | None = None
    for key, asset in assets.items():
        if not isinstance(asset, dict) or "href" not in asset:
            continue
        media = str(asset.get("type", ""))
        if key.lower() in SCL_ASSET_ALIASES:
            scl = BandSource(SCL_NAME, resolve_href(asset["href"], href), 0.0, key)
            continue
        for name, rank in _asset_band_names(key, asset):
            offset = _asset_raster_offset(asset, quant)
            if offset is None:
                offset = BASELINE_04_OFFSET if needs_offset(baseline) else 0.0
            src = BandSource(name, resolve_href(asset["href"], href), offset, key)
            cog_first = 0 if "cloud-optimized" in media or "tiff" in media else 1
            prev = chosen.get(name)
            if prev is None or (rank, cog_first) < prev[:2]:
                chosen[name] = (rank, cog_first, src)
            break
    bands = {n: chosen[n][2] for n in BANDS_BY_NAME if n in chosen}
    item_id = str(item.get("id", Path(href).stem))
    level = level_of(
        props.get("processing:level"),
        props.get("s2:product_type"),
        item.get("collection"),
        props.get("s2:product_uri"),
        item_id,
    )
    if level is None and scl is not None:
        level = L2A  # only L2A products carry a scene classification
    return Product(
        id=item_id,
        datetime=_parse_datetime(str(dt_value)),
        bands=bands,
        processing_baseline=str(baseline) if baseline else None,
        quantification_value=quant,
        source_href=href,
        asset_keys=tuple(assets),
        properties=dict(props),
        level=level,
        scl=scl,
    )


# ------------------------------------------------------------------ SAFE folders
_BAND_FILE = re.compile(r"_(B\d\d|B8A|SCL)(?:_(\d\d)m)?\.jp2$", re.IGNORECASE)


def product_from_safe(folder: Path) -> Product:
    """A Product from a `.SAFE` folder: MTD_MSIL1C.xml (or MTD_MSIL2A.xml) + GRANULE JP2s."""
    names = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
    mtd = next((folder / n for n in names if (folder / n).is_file()), None)
    if mtd is None:
        raise DataError(
            f"{folder} has no MTD_MSIL1C.xml (or MTD_MSIL2A.xml): a SAFE product needs its "
            "metadata file for the processing baseline and radiometric offsets"
        )
    meta = parse_mtd(mtd)
    if meta.start_time is None:
        raise DataError(f"{mtd} has no PRODUCT_START_TIME: the output needs the acquisition time")
    files = sorted(folder.glob("GRANULE/*/IMG_DATA/**/*.jp2"))
    chosen: dict[str, tuple[int, Path]] = {}
    for f in files:
        m = _BAND_FILE.search(f.name)
        if not m:
            continue
        is_scl = m.group(1).upper() == SCL_NAME
        name = SCL_NAME if is_scl else band(m.group(1)).name
        native = SCL_RESOLUTION_M if is_scl else BANDS_BY_NAME[name].resolution_m
        res = int(m.group(2)) if m.group(2) else native
        rank = abs(res - native)  # native resolution first
        if name not in chosen or rank < chosen[name][0]:
            chosen[name] = (rank, f)
    bands = {
        n: BandSource(n, str(chosen[n][1].resolve()), meta.offsets.get(n, 0.0), chosen[n][1].name)
        for n in BANDS_BY_NAME
        if n in chosen
    }
    scl_file = chosen[SCL_NAME][1] if SCL_NAME in chosen else None
    return Product(
        id=meta.product_uri or folder.name.removesuffix(".SAFE"),
        datetime=meta.start_time,
        bands=bands,
        processing_baseline=meta.processing_baseline,
        quantification_value=meta.quantification_value,
        source_href=str(mtd.resolve()),
        source_type="application/xml",
        asset_keys=tuple(f.name for f in files),
        level=meta.level or (L2A if mtd.name == "MTD_MSIL2A.xml" else L1C),
        scl=BandSource(SCL_NAME, str(scl_file.resolve()), 0.0, scl_file.name) if scl_file else None,
    )


# ------------------------------------------------------------------ entry point
def open_product(source: str | Path) -> Product:
    """Open a product from a STAC item file/URL, a staged-in folder (catalog.json) or a .SAFE."""
    s = str(source)
    if is_url(s):
        return product_from_item(read_json(s), s)
    p = Path(s)
    if not p.exists():
        raise NotFoundError(
            f"product {s} not found: give a STAC item file or URL, a folder holding a STAC "
            "catalog.json, or a .SAFE folder"
        )
    if p.is_dir():
        if (p / "MTD_MSIL1C.xml").is_file() or (p / "MTD_MSIL2A.xml").is_file():
            return product_from_safe(p)
        if not (p / CATALOG_FILE).is_file():
            if p.name.upper().endswith(".SAFE"):
                return product_from_safe(p)
            raise InputError(
                f"{p} is neither a .SAFE product (MTD_MSIL1C.xml) nor a staged-in folder "
                "(catalog.json)"
            )
        p = p / CATALOG_FILE
    if p.name.startswith("MTD_MSI") and p.suffix == ".xml":
        return product_from_safe(p.parent)
    href = str(p.resolve())
    found = list(items(href))
    if len(found) != 1:
        names = ", ".join(h for _, h in found[:5])
        raise DataError(
            f"catalog {href} holds {len(found)} items: classify needs exactly one Sentinel-2 "
            "item" + (f" (found {names})" if names else "")
        )
    return product_from_item(*found[0])
