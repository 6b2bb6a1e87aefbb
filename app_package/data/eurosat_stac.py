"""EuroSAT as a static STAC catalog (and a stac-geoparquet file of its items).

Layout written by `eurosat_to_stac` (best-practices layout, self-contained, relative hrefs):

    DEST/catalog.json                          root catalog
    DEST/<collection>/collection.json          the collection (extent from the items)
    DEST/<collection>/items.parquet            optional: items as stac-geoparquet ("geoparquet")
    DEST/<collection>/<Class>_<n>/<Class>_<n>.json   one item per chip
    DEST/<collection>/<Class>_<n>/<Class>_<n>.tif    the chip itself (asset "image")

The label: each item carries the classification extension's `classification:classes` in its
properties with exactly ONE class object (`value` = index into `EUROSAT_CLASS_NAMES`, `name`,
`description`, `color_hint`); the collection summarises all ten. The loader reads exactly that
property. The optional split (`train`/`val`/`test` from the standard split files) is the item
property `eurosat:split`.

The asset lists the 13 bands in FILE order (B8A last) as STAC 1.1 `bands` with eo fields, so the
order lives in the metadata. EuroSAT gives no acquisition time per chip: items carry
`datetime: null` with `start_datetime`/`end_datetime` bounding the possible dates (Sentinel-2A
launch to the dataset's first release). In the GeoParquet file, asset hrefs are relative to the
parquet file itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pystac

from app_package.data.eurosat import ChipFile, find_chips
from app_package.eo.bands import (
    BANDS_BY_NAME,
    EUROSAT_CHIP_SIZE,
    EUROSAT_CLASSES,
    EUROSAT_FILE_BAND_ORDER,
)
from app_package.errors import DataError
from app_package.util.outputs import atomic_dir
from app_package.util.progress import ProgressCallback, no_progress

logger = logging.getLogger(__name__)

PROJECTION_EXT: Final = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EO_EXT: Final = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
CLASSIFICATION_EXT: Final = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
FILE_EXT: Final = "https://stac-extensions.github.io/file/v2.1.0/schema.json"

LABEL_PROPERTY: Final = "classification:classes"
SPLIT_PROPERTY: Final = "eurosat:split"
SPLITS: Final = ("train", "val", "test")
IMAGE_ASSET: Final = "image"
GEOPARQUET_ASSET: Final = "geoparquet"
GEOPARQUET_FILE: Final = "items.parquet"
GEOPARQUET_MEDIA_TYPE: Final = "application/vnd.apache.parquet"
GEOTIFF_MEDIA_TYPE: Final = "image/tiff; application=geotiff"

# No per-chip acquisition time is published: bound it (Sentinel-2A launch → EuroSAT v1 release).
EUROSAT_START: Final = datetime(2015, 6, 23, tzinfo=UTC)
EUROSAT_END: Final = datetime(2017, 8, 31, tzinfo=UTC)
EUROSAT_CITATION: Final = (
    "Helber, P., Bischke, B., Dengel, A., Borth, D. (2019). EuroSAT: A Novel Dataset and Deep "
    "Learning Benchmark for Land Use and Land Cover Classification. IEEE Journal of Selected "
    "Topics in Applied Earth Observations and Remote Sensing, 12(7), 2217-2226."
)
EUROSAT_DOI: Final = "10.1109/JSTARS.2019.2918242"


def class_object(class_index: int) -> dict[str, Any]:
    """The classification extension's class object for one EuroSAT class."""
    c = EUROSAT_CLASSES[class_index]
    return {"value": c.value, "name": c.name, "description": c.title, "color_hint": c.color_hex}


def band_objects(file_order: Iterable[str] = EUROSAT_FILE_BAND_ORDER) -> list[dict[str, Any]]:
    """STAC 1.1 band objects (with eo fields) in the chips' FILE order."""
    out = []
    for name in file_order:
        b = BANDS_BY_NAME[name]
        out.append(
            {
                "name": b.name,
                "eo:common_name": b.common_name,
                "eo:center_wavelength": b.center_wavelength_um,
                "eo:full_width_half_max": b.full_width_half_max_um,
            }
        )
    return out


def _multihash_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "1220" + h.hexdigest()  # multihash: 0x12 = sha2-256, 0x20 = 32 bytes


def create_item(chip: ChipFile, *, split: str | None = None) -> pystac.Item:
    """A STAC item for one chip, its asset pointing at `chip.path` (absolute; relativised on save).

    Geometry/bbox are the chip footprint reprojected to WGS84 from its own CRS and transform.
    Raises DataError naming the file if it is not a readable 13-band uint16 64×64 GeoTIFF.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_geom

    path = chip.path
    try:
        with rasterio.open(path) as src:
            count, dtype, crs = src.count, src.dtypes[0], src.crs
            height, width, transform, bounds = src.height, src.width, src.transform, src.bounds
    except RasterioError as e:
        raise DataError(
            f"cannot read chip {path}: {e} — the file is corrupt or not a GeoTIFF; "
            "re-download it or remove it from the folder"
        ) from e
    expected = len(EUROSAT_FILE_BAND_ORDER)
    if count != expected:
        raise DataError(
            f"{path}: {count} bands, expected {expected} ({', '.join(EUROSAT_FILE_BAND_ORDER)}): "
            "use the multispectral EuroSAT_MS chips, not the RGB ones"
        )
    if dtype != "uint16":
        raise DataError(f"{path}: data type {dtype}, expected uint16 (EuroSAT_MS)")
    if (height, width) != (EUROSAT_CHIP_SIZE, EUROSAT_CHIP_SIZE):
        raise DataError(
            f"{path}: {width}×{height} px, expected {EUROSAT_CHIP_SIZE}×{EUROSAT_CHIP_SIZE}"
        )
    if crs is None:
        raise DataError(f"{path}: no CRS in the GeoTIFF; EuroSAT chips carry their UTM CRS")
    epsg = crs.to_epsg()
    code = f"EPSG:{epsg}" if epsg else None
    ring = [
        (bounds.left, bounds.bottom),
        (bounds.right, bounds.bottom),
        (bounds.right, bounds.top),
        (bounds.left, bounds.top),
        (bounds.left, bounds.bottom),
    ]
    geometry = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    coords = geometry["coordinates"][0]
    lons = [float(p[0]) for p in coords]
    lats = [float(p[1]) for p in coords]
    geometry = {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in coords]]}
    bbox = [min(lons), min(lats), max(lons), max(lats)]

    class_index = [c.name for c in EUROSAT_CLASSES].index(chip.class_name)
    properties: dict[str, Any] = {
        "start_datetime": EUROSAT_START.isoformat().replace("+00:00", "Z"),
        "end_datetime": EUROSAT_END.isoformat().replace("+00:00", "Z"),
        LABEL_PROPERTY: [class_object(class_index)],
        "proj:code": code,
        "proj:shape": [height, width],
        "proj:transform": [float(v) for v in tuple(transform)[:6]],
        "proj:bbox": [bounds.left, bounds.bottom, bounds.right, bounds.top],
    }
    if code is None:
        properties["proj:wkt2"] = crs.to_wkt()
    if split is not None:
        properties[SPLIT_PROPERTY] = split
    item = pystac.Item(
        id=chip.chip_id,
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties=properties,
        stac_extensions=[PROJECTION_EXT, EO_EXT, CLASSIFICATION_EXT, FILE_EXT],
    )
    item.add_asset(
        IMAGE_ASSET,
        pystac.Asset(
            href=str(path.resolve()),
            media_type=GEOTIFF_MEDIA_TYPE,
            roles=["data"],
            title=f"EuroSAT-MS chip {chip.chip_id}",
            extra_fields={
                "data_type": "uint16",
                "bands": band_objects(),
                "file:size": path.stat().st_size,
                "file:checksum": _multihash_sha256(path),
            },
        ),
    )
    return item


def create_collection(
    items: list[pystac.Item], collection_id: str = "eurosat-ms"
) -> pystac.Collection:
    """The EuroSAT collection: extent from `items`, the ten classes summarised, EuroSAT credited."""
    if not items:
        raise DataError("no items to put in the collection: the EuroSAT folder held no chips")
    extent = pystac.Extent.from_items(items)
    extent.temporal = pystac.TemporalExtent([[EUROSAT_START, EUROSAT_END]])
    summaries = pystac.Summaries(
        {
            LABEL_PROPERTY: [class_object(i) for i in range(len(EUROSAT_CLASSES))],
            "proj:code": sorted({str(i.properties["proj:code"]) for i in items}),
        }
    )
    collection = pystac.Collection(
        id=collection_id,
        title="EuroSAT-MS",
        description=(
            "EuroSAT multispectral: 64×64 px Sentinel-2 L1C chips (13 bands, uint16, "
            "TOA reflectance × 10000, band order B01…B12 then B8A) labelled with one of ten "
            "land-cover classes. Dataset released under the MIT licence; cite: " + EUROSAT_CITATION
        ),
        extent=extent,
        license="MIT",
        summaries=summaries,
        stac_extensions=[CLASSIFICATION_EXT],
        keywords=["EuroSAT", "Sentinel-2", "land cover", "classification"],
        providers=[
            pystac.Provider(
                "EuroSAT (Helber et al., DFKI)",
                roles=[pystac.ProviderRole.LICENSOR, pystac.ProviderRole.PRODUCER],
                url="https://github.com/phelber/EuroSAT",
            )
        ],
    )
    collection.add_link(
        pystac.Link("license", "https://opensource.org/licenses/MIT", "text/html", "MIT licence")
    )
    collection.add_link(
        pystac.Link("cite-as", f"https://doi.org/{EUROSAT_DOI}", "text/html", "Helber et al. 2019")
    )
    return collection


def read_split_files(split_dir: Path) -> dict[str, str]:
    """Chip id → split from `eurosat-{train,val,test}.txt` in `split_dir` (files may be absent).

    The files list one chip file name per line (`River_1237.tif` or `.jpg`).
    """
    out: dict[str, str] = {}
    for split in SPLITS:
        f = Path(split_dir) / f"eurosat-{split}.txt"
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            name = line.strip()
            if name:
                out[Path(name).stem] = split
    return out


def eurosat_to_stac(
    src: Path,
    dest: Path,
    *,
    geoparquet: bool = False,
    collection_id: str = "eurosat-ms",
    splits: Mapping[str, str] | None = None,
    link_chips: bool = False,
    progress: ProgressCallback = no_progress,
) -> Path:
    """Write a self-contained static STAC catalog of the EuroSAT folder `src` to `dest`.

    The chips are copied next to their items; with `link_chips` they are hard-linked instead (no
    second copy of 2 GB; only where `src` is never written to again, as the two names share one
    file). `splits` (chip id → train/val/test) is recorded as `eurosat:split`. Writes into a
    temporary sibling and renames: on any error `dest` is not created. Returns the path of
    `dest/catalog.json`.
    """
    src, dest = Path(src), Path(dest)
    chips = find_chips(src)
    progress(0.0, f"found {len(chips)} chips")
    with atomic_dir(dest) as tmp:
        items: list[pystac.Item] = []
        for n, chip in enumerate(chips, 1):
            split = splits.get(chip.chip_id) if splits else None
            items.append(create_item(chip, split=split))
            if n % 25 == 0 or n == len(chips):
                progress(80.0 * n / len(chips), f"{n}/{len(chips)} items")
        collection = create_collection(items, collection_id)
        collection.add_items(items)
        catalog = pystac.Catalog(
            id=f"{collection_id}-catalog",
            description=f"Static STAC catalog of the EuroSAT-MS collection {collection_id!r}.",
            title="EuroSAT-MS",
        )
        catalog.add_child(collection)
        # a file href: pystac would read the dotted temp folder name as a file extension
        catalog.normalize_hrefs(str(tmp / "catalog.json"))
        # copy each chip beside its item, then point the asset there (relative on save)
        for item in items:
            asset = item.assets[IMAGE_ASSET]
            item_dir = Path(item.get_self_href() or "").parent
            item_dir.mkdir(parents=True, exist_ok=True)
            target = item_dir / f"{item.id}.tif"
            if link_chips:
                _link_or_copy(Path(asset.href), target)
            else:
                shutil.copyfile(asset.href, target)
            asset.href = str(target)
        catalog.make_all_asset_hrefs_relative()
        progress(90.0, "copied chips")
        if geoparquet:
            coll_dir = Path(collection.get_self_href() or "").parent
            parquet = coll_dir / GEOPARQUET_FILE
            write_geoparquet(items, parquet)
            collection.add_asset(
                GEOPARQUET_ASSET,
                pystac.Asset(
                    href=f"./{GEOPARQUET_FILE}",
                    media_type=GEOPARQUET_MEDIA_TYPE,
                    roles=["data", "collection-mirror"],
                    title="The collection's items as stac-geoparquet",
                    extra_fields={"file:size": parquet.stat().st_size},
                ),
            )
            collection.stac_extensions.append(FILE_EXT)
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        progress(100.0, f"wrote {len(items)} items")
    logger.info("wrote STAC catalog of %d chips to %s", len(chips), dest)
    return dest / "catalog.json"


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (no second copy of 2 GB of chips), copying across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_geoparquet(items: list[pystac.Item], path: Path) -> Path:
    """Write `items` as stac-geoparquet; asset hrefs are made relative to `path`'s folder."""
    import stac_geoparquet.arrow

    base = Path(path).parent
    dicts = []
    for item in items:
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = []
        for key, asset in d["assets"].items():
            absolute = item.assets[key].get_absolute_href()
            if absolute is None:
                raise DataError(f"item {item.id}: asset {key!r} has no resolvable href")
            asset["href"] = Path(os.path.relpath(absolute, base)).as_posix()
        d["collection"] = item.collection_id
        dicts.append(d)
    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(dicts).read_all()
    stac_geoparquet.arrow.to_parquet(table, path)
    return path
