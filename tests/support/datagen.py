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

from app_package.eo.bands import (
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


# ---------------------------------------------------------------- Sentinel-2 L1C products
S2_TEST_EPSG = 32633
S2_TEST_ORIGIN = (330000.0, 5822040.0)


def s2_test_bands(
    width: int, height: int, *, seed: int = 0, nodata_corner: int = 0
) -> dict[str, np.ndarray]:
    """Synthetic 10 m DNs per band: blocks of EuroSAT class signatures plus noise.

    `nodata_corner` > 0 zeroes a square of that many 10 m pixels at the top-left in every band.
    """
    from app_package.eo.bands import S2_BAND_NAMES

    rng = np.random.default_rng(seed)
    block = 48  # not the chip size, so chips mix classes
    ny, nx = -(-height // block), -(-width // block)
    labels = rng.integers(0, len(EUROSAT_CLASS_NAMES), size=(ny, nx))
    full = np.repeat(np.repeat(labels, block, 0), block, 1)[:height, :width]
    sigs = np.stack([class_signature(i) for i in range(len(EUROSAT_CLASS_NAMES))])  # [K, 13]
    out: dict[str, np.ndarray] = {}
    for name in S2_BAND_NAMES:
        j = EUROSAT_FILE_BAND_ORDER.index(name)
        data = sigs[full, j] * (1.0 + rng.normal(0.0, 0.05, size=full.shape))
        arr = np.clip(data, 1, 65535).astype(np.uint16)
        if nodata_corner:
            arr[:nodata_corner, :nodata_corner] = 0
        out[name] = arr
    return out


def write_jp2(path: Path, data: np.ndarray, res: float, *, epsg: int = S2_TEST_EPSG) -> Path:
    """A lossless OpenJPEG JPEG2000 band like an L1C IMG_DATA file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = data.shape
    with rasterio.open(
        path, "w", driver="JP2OpenJPEG", width=w, height=h, count=1, dtype="uint16",
        crs=f"EPSG:{epsg}", transform=from_origin(*S2_TEST_ORIGIN, res, res),
        QUALITY="100", REVERSIBLE="YES", RESOLUTIONS="1",
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    aux = path.with_name(path.name + ".aux.xml")
    aux.unlink(missing_ok=True)
    return path


def downsample_to_native(full: np.ndarray, factor: int) -> np.ndarray:
    """10 m array -> a band at `factor`× coarser pixels (top-left sample of each block)."""
    return np.ascontiguousarray(full[::factor, ::factor])


def write_mtd(path: Path, *, baseline: str, start: str = "2017-02-16T10:21:01.026Z") -> Path:
    """A minimal but real-format MTD_MSIL1C.xml (baseline, offsets, band ids)."""
    from app_package.eo.bands import S2_BANDS

    offset = -1000 if tuple(int(v) for v in baseline.split(".")) >= (4, 0) else None
    spectral = "\n".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b.name.replace("B0", "B")}">'
        f"<RESOLUTION>{b.resolution_m}</RESOLUTION></Spectral_Information>"
        for i, b in enumerate(S2_BANDS)
    )
    offsets = (
        "<Radiometric_Offset_List>"
        + "".join(
            f'<RADIO_ADD_OFFSET band_id="{i}">{offset}</RADIO_ADD_OFFSET>'
            for i in range(len(S2_BANDS))
        )
        + "</Radiometric_Offset_List>"
        if offset is not None
        else ""
    )
    uri = f"S2A_MSIL1C_20170216T102101_N{baseline.replace('.', '')}_R065_T33UUU_TEST.SAFE"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
<n1:General_Info><Product_Info>
<PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
<PRODUCT_URI>{uri}</PRODUCT_URI>
<PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
</Product_Info>
<Product_Image_Characteristics>
<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
{offsets}
<Spectral_Information_List>{spectral}</Spectral_Information_List>
</Product_Image_Characteristics>
</n1:General_Info>
</n1:Level-1C_User_Product>
"""
    )
    return path


def write_safe(
    root: Path,
    band_files: dict[str, Path] | None = None,
    *,
    bands10: dict[str, np.ndarray] | None = None,
    baseline: str = "02.09",
    tile: str = "T33UUU",
    stamp: str = "20170216T102101",
) -> Path:
    """A `.SAFE` folder: MTD_MSIL1C.xml + GRANULE/<g>/IMG_DATA/<tile>_<stamp>_<band>.jp2.

    Either symlink existing `band_files` (real JP2s) or encode `bands10` (10 m arrays, coarse
    bands subsampled to their native resolution).
    """
    from app_package.eo.bands import BANDS_BY_NAME

    safe = root / f"S2A_MSIL1C_{stamp}_N{baseline.replace('.', '')}_R065_{tile}_TEST.SAFE"
    img = safe / "GRANULE" / f"L1C_{tile}_A008000_{stamp}" / "IMG_DATA"
    img.mkdir(parents=True, exist_ok=True)
    write_mtd(safe / "MTD_MSIL1C.xml", baseline=baseline)
    for name, src in (band_files or {}).items():
        (img / f"{tile}_{stamp}_{name}.jp2").symlink_to(src.resolve())
    for name, arr in (bands10 or {}).items():
        f = BANDS_BY_NAME[name].resolution_m // 10
        write_jp2(img / f"{tile}_{stamp}_{name}.jp2", downsample_to_native(arr, f), 10.0 * f)
    return safe


ASSET_KEY_STYLES = ("B", "common", "eo")


def write_s2_item(
    path: Path,
    band_files: dict[str, Path],
    *,
    style: str = "B",
    baseline: str | None = "02.09",
    datetime_str: str | None = "2017-02-16T10:21:01Z",
    relative: bool = True,
    item_id: str = "S2A_MSIL1C_20170216T102101_T33UUU_TEST",
    stac_11_bands: bool = False,
) -> Path:
    """A STAC item for JP2 bands with asset keys in one provider's style.

    style "B": B01…B12/B8A (Planetary Computer); "common": coastal, blue, …, nir08 (earth-search);
    "eo": opaque keys (`band-1`…) where only `eo:bands` (or STAC 1.1 `bands`) names the band.
    """
    import json

    from app_package.eo.bands import BANDS_BY_NAME

    path.parent.mkdir(parents=True, exist_ok=True)
    assets: dict[str, dict[str, object]] = {}
    for i, (name, f) in enumerate(sorted(band_files.items())):
        b = BANDS_BY_NAME[name]
        key = {"B": name, "common": b.asset_aliases[0], "eo": f"band-{i + 1}"}[style]
        href = (
            str(Path(f).resolve().relative_to(path.parent.resolve(), walk_up=True))
            if relative
            else str(Path(f).resolve())
        )
        asset: dict[str, object] = {"href": href, "type": "image/jp2", "roles": ["data"]}
        entry = {"name": name, "common_name": b.common_name}
        if stac_11_bands:
            asset["bands"] = [{"name": name, "eo:common_name": b.common_name}]
        else:
            asset["eo:bands"] = [entry]
        assets[key] = asset
    assets["thumbnail"] = {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]}
    props: dict[str, object] = {"platform": "sentinel-2a", "constellation": "sentinel-2"}
    if datetime_str:
        props["datetime"] = datetime_str
    else:
        props["datetime"] = None
    if baseline:
        props["s2:processing_baseline"] = baseline
    ring = [[12.0, 52.0], [12.1, 52.0], [12.1, 52.1], [12.0, 52.0]]
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [12.0, 52.0, 12.1, 52.1], "properties": props, "links": [], "assets": assets,
        "stac_extensions": [],
    }  # fmt: skip
    path.write_text(json.dumps(item, indent=2))
    return path


def write_jp2_bands(
    folder: Path, bands10: dict[str, np.ndarray], *, stamp: str = "20170216T102101"
) -> dict[str, Path]:
    """Encode 10 m arrays as JP2 band files at each band's native resolution."""
    from app_package.eo.bands import BANDS_BY_NAME

    out = {}
    for name, arr in bands10.items():
        f = BANDS_BY_NAME[name].resolution_m // 10
        out[name] = write_jp2(
            folder / f"T33UUU_{stamp}_{name}.jp2", downsample_to_native(arr, f), 10.0 * f
        )
    return out
