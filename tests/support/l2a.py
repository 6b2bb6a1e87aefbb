"""Sentinel-2 products in the earth-search COG layout, written from the bundled real L1C bands.

`write_cog_product(level="L2A")` writes what earth-search's `sentinel-2-c1-l2a` serves: COG assets
(deflate, tiled, overviews) keyed coastal, blue, …, swir22 (no cirrus: L2A has no B10) plus `scl`,
`raster:bands` scale 0.0001 offset -0.1, processing baseline 05.10. Its DNs are the L1C DNs + 1000
(DN 0 stays nodata), so that after the -1000 offset the model sees exactly the source's DNs.
Its SCL is vegetation (4) with water (6) in a band across the bottom and, in chip units of 64 px:
a cloud (9) over `CLOUD_CHIPS`, snow (11) over 3/4 of `SNOW_CHIP`, cloud shadow (3) over 1/4 of
`SHADOW_CHIP`.

`level="L1C"` writes the L1C bands as they are (with B10, Planetary Computer keys B01…B12,
baseline 02.09), optionally with a bright synthetic cloud over `CLOUD_CHIPS` in every band.

`size` (10 m pixels, e.g. 10980 for a full tile) mirrors every layer out to that size, as the
classify benchmarks build their full-size products; `blocksize` is the COGs' tile size
(earth-search: 1024).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from app_package.defaults import SAMPLE_PRODUCT
from app_package.eo.bands import (
    BANDS_BY_NAME,
    L2A_ABSENT_BANDS,
    S2_BAND_NAMES,
    SCL_CLOUD_HIGH_PROBABILITY,
    SCL_CLOUD_SHADOW,
    SCL_SNOW,
    SCL_VEGETATION,
    SCL_WATER,
)

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
L2A_DN_SHIFT = 1000  # BOA_ADD_OFFSET -1000 since baseline 04.00
CHIP = 64  # 10 m pixels per chip side
# (row, col) ranges in chips of the bundled subset (12 x 24 chips)
CLOUD_CHIPS = ((8, 11), (2, 6))  # rows 8-10, cols 2-5: clear land in the real scene
SNOW_CHIP = (1, 20)
SHADOW_CHIP = (10, 20)
WATER_ROWS_10M = (700, 768)  # 10 m rows of the water band at the bottom
# reflectance of a thick bright cloud per band (what s2cloudless flags)
CLOUD_REFLECTANCE = {
    "B01": 0.45, "B02": 0.42, "B03": 0.41, "B04": 0.40, "B05": 0.42, "B06": 0.44, "B07": 0.45,
    "B08": 0.45, "B8A": 0.45, "B09": 0.15, "B10": 0.02, "B11": 0.30, "B12": 0.20,
}  # fmt: skip


def _write_cog(
    path: Path, data: np.ndarray, profile: dict[str, object], blocksize: int = 128
) -> Path:
    """A deflate COG, `blocksize` px tiles, overviews down to one tile."""
    h, w = data.shape
    with rasterio.open(
        path, "w", driver="COG", width=w, height=h, count=1, dtype=data.dtype.name,
        crs=profile["crs"], transform=profile["transform"], nodata=0, compress="DEFLATE",
        blocksize=blocksize, overview_resampling="nearest", num_threads="ALL_CPUS",
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def _chips_to_native(rows: tuple[int, int], cols: tuple[int, int], factor: int) -> tuple:
    """Native-pixel slices of chip ranges, for a band `factor` x coarser than 10 m."""
    n = CHIP // factor
    return slice(rows[0] * n, rows[1] * n), slice(cols[0] * n, cols[1] * n)


def scl_layer(height_20m: int, width_20m: int) -> np.ndarray:
    """The written scene classification (20 m), see the module's docstring."""
    scl = np.full((height_20m, width_20m), SCL_VEGETATION, dtype=np.uint8)
    scl[WATER_ROWS_10M[0] // 2 : WATER_ROWS_10M[1] // 2] = SCL_WATER
    scl[_chips_to_native(*CLOUD_CHIPS, 2)] = SCL_CLOUD_HIGH_PROBABILITY
    n = CHIP // 2
    r, c = SNOW_CHIP
    scl[r * n : r * n + 3 * n // 4, c * n : (c + 1) * n] = SCL_SNOW  # 3/4 of the chip
    r, c = SHADOW_CHIP
    scl[r * n : r * n + n // 4, c * n : (c + 1) * n] = SCL_CLOUD_SHADOW  # 1/4 of the chip
    return scl


def write_cog_product(
    folder: Path,
    *,
    level: Literal["L1C", "L2A"] = "L2A",
    synthetic_cloud: bool = False,
    source_item: Path = SAMPLE_PRODUCT,
    size: int | None = None,
    blocksize: int = 128,
) -> Path:
    """Write the product's COGs and its STAC item into `folder`; returns the item's path."""
    folder.mkdir(parents=True, exist_ok=True)
    src = json.loads(source_item.read_text())
    l2a = level == "L2A"
    names = [n for n in S2_BAND_NAMES if not (l2a and n in L2A_ABSENT_BANDS)]
    assets: dict[str, dict[str, object]] = {}
    profile: dict[str, object] = {}
    for name in names:
        b = BANDS_BY_NAME[name]
        href = source_item.parent / src["assets"][name]["href"]
        with rasterio.open(href) as ds:
            dn = ds.read(1)
            profile = {"crs": ds.crs, "transform": ds.transform}
        factor = b.resolution_m // 10
        if synthetic_cloud:
            dn[_chips_to_native(*CLOUD_CHIPS, factor)] = round(CLOUD_REFLECTANCE[name] * 10000)
        if l2a:
            dn = np.where(dn > 0, dn.astype(np.int32) + L2A_DN_SHIFT, 0).astype(np.uint16)
        if size:
            dn = _mirror_to(dn, size * 10 // b.resolution_m)
        key = b.asset_aliases[0] if l2a else name
        _write_cog(folder / f"{key}.tif", dn, profile, blocksize)
        assets[key] = {
            "href": f"./{key}.tif",
            "type": COG_TYPE,
            "title": f"{b.common_name} ({name}) - {b.resolution_m}m",
            "eo:bands": [{"name": key if l2a else name, "common_name": b.common_name}],
            "gsd": b.resolution_m,
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "spatial_resolution": b.resolution_m,
                    "scale": 0.0001,
                    "offset": -0.1 if l2a else 0.0,
                }
            ],
            "roles": ["data", "reflectance"],
        }
    if l2a:
        with rasterio.open(folder / "swir16.tif") as ds:  # a 20 m band: the SCL's grid
            h, w, transform, crs = ds.height, ds.width, ds.transform, ds.crs
        scl = scl_layer(h, w)  # full size: the written classes in the top-left subset only
        _write_cog(folder / "scl.tif", scl, {"crs": crs, "transform": transform}, blocksize)
        assets["scl"] = {
            "href": "./scl.tif",
            "type": COG_TYPE,
            "title": "Scene classification map (SCL)",
            "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
            "roles": ["data", "reflectance"],
        }
    props = dict(src["properties"])
    props.pop("description", None)
    if l2a:
        props.update({
            "s2:product_type": "S2MSI2A", "processing:level": "L2A",
            "s2:processing_baseline": "05.10",
        })  # fmt: skip
        item_id = "S2A_T33UUU_20170216T102101_L2A"
    else:
        props.update({"s2:product_type": "S2MSI1C", "s2:processing_baseline": "02.09"})
        item_id = "S2A_MSIL1C_20170216T102101_T33UUU_COG" + ("_CLOUD" if synthetic_cloud else "")
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id,
        "collection": "sentinel-2-c1-l2a" if l2a else "sentinel-2-l1c",
        "geometry": src["geometry"], "bbox": src["bbox"], "properties": props,
        "links": [], "assets": assets,
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
    }  # fmt: skip
    path = folder / "item.json"
    path.write_text(json.dumps(item, indent=2))
    return path


def _mirror_to(layer: np.ndarray, size: int) -> np.ndarray:
    """A [h, w] layer mirrored out to size × size (the source's real pixels top left)."""
    h, w = layer.shape
    return np.pad(layer, ((0, size - h), (0, size - w)), mode="symmetric")


def write_l2a_mtd(path: Path, *, baseline: str = "05.10") -> Path:
    """A minimal real-format MTD_MSIL2A.xml: Level-2A, BOA offsets -1000 (baseline ≥ 04.00)."""
    from app_package.eo.bands import S2_BANDS

    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b.name.replace("B0", "B")}">'
        f"<RESOLUTION>{b.resolution_m}</RESOLUTION></Spectral_Information>"
        for i, b in enumerate(S2_BANDS)
    )
    offsets = "".join(
        f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(len(S2_BANDS))
    )
    uri = f"S2A_MSIL2A_20170216T102101_N{baseline.replace('.', '')}_R065_T33UUU_TEST.SAFE"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Info>
<PRODUCT_START_TIME>2017-02-16T10:21:01.026Z</PRODUCT_START_TIME>
<PRODUCT_URI>{uri}</PRODUCT_URI>
<PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
<PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
</Product_Info>
<Product_Image_Characteristics>
<QUANTIFICATION_VALUES_LIST>
<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
</QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
<Spectral_Information_List>{spectral}</Spectral_Information_List>
</Product_Image_Characteristics>
</n1:General_Info>
</n1:Level-2A_User_Product>
"""
    )
    return path
