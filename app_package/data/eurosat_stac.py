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
import multiprocessing
import os
import shutil
from collections.abc import Generator, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pystac

from app_package.data.eurosat import ChipFile, find_chips
from app_package.eo.bands import (
    BANDS_BY_NAME,
    EUROSAT_CHIP_SIZE,
    EUROSAT_CLASS_NAMES,
    EUROSAT_CLASSES,
    EUROSAT_FILE_BAND_ORDER,
)
from app_package.errors import AppPackageError, DataError, InputError
from app_package.util.outputs import atomic_dir
from app_package.util.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from rasterio.crs import CRS

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
JSON_MEDIA_TYPE: Final = "application/json"
GEOJSON_MEDIA_TYPE: Final = "application/geo+json"
TITLE: Final = "EuroSAT-MS"  # of the catalog and the collection
CHUNK_CHIPS: Final = 256  # chips a worker catalogues per task
PARALLEL_MIN_CHIPS: Final = 2000  # fewer chips are catalogued in the calling process

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


def _multihash_sha256(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()  # multihash: 0x12 = sha2-256, 0x20 = 32 bytes


@dataclass(frozen=True)
class ChipHeader:
    """What an item records from a chip's GeoTIFF header (checked to be a EuroSAT-MS chip)."""

    crs: CRS
    epsg: int | None
    shape: tuple[int, int]  # rows, columns
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    bounds: tuple[float, float, float, float]  # left, bottom, right, top in `crs`


def read_chip_header(path: Path) -> ChipHeader:
    """The header of one chip; DataError naming the file if it is not a readable 13-band
    uint16 64×64 GeoTIFF with a CRS. Only the header is read, never the pixels."""
    import rasterio
    from rasterio.errors import RasterioError

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
    ta, tb, tc, td, te, tf = (float(v) for v in tuple(transform)[:6])
    return ChipHeader(
        crs=crs,
        epsg=crs.to_epsg(),
        shape=(height, width),
        transform=(ta, tb, tc, td, te, tf),
        bounds=(bounds.left, bounds.bottom, bounds.right, bounds.top),
    )


def footprint(header: ChipHeader) -> tuple[dict[str, Any], list[float]]:
    """The chip's outline in WGS84 (lon/lat), as a GeoJSON polygon, and its bbox."""
    from rasterio.warp import transform

    left, bottom, right, top = header.bounds
    xs, ys = transform(
        header.crs,
        "EPSG:4326",
        [left, right, right, left, left],
        [bottom, bottom, top, top, bottom],
    )
    lons, lats = [float(x) for x in xs], [float(y) for y in ys]
    geometry = {
        "type": "Polygon",
        "coordinates": [[[x, y] for x, y in zip(lons, lats, strict=True)]],
    }
    return geometry, [min(lons), min(lats), max(lons), max(lats)]


def item_dict(
    chip: ChipFile,
    header: ChipHeader,
    *,
    collection_id: str,
    file_size: int,
    checksum: str,
    split: str | None = None,
) -> dict[str, Any]:
    """The STAC item of one chip as its JSON file holds it inside the catalog written by
    `eurosat_to_stac` (links and the asset href relative to `<collection>/<id>/<id>.json`).

    Built as a plain dict, key for key what pystac writes for the same item: pystac objects
    cost more than the rest of the item together at EuroSAT's 27,000 chips.
    """
    geometry, bbox = footprint(header)
    code = f"EPSG:{header.epsg}" if header.epsg else None
    left, bottom, right, top = header.bounds
    properties: dict[str, Any] = {
        "start_datetime": EUROSAT_START.isoformat().replace("+00:00", "Z"),
        "end_datetime": EUROSAT_END.isoformat().replace("+00:00", "Z"),
        LABEL_PROPERTY: [class_object(EUROSAT_CLASS_NAMES.index(chip.class_name))],
        "proj:code": code,
        "proj:shape": list(header.shape),
        "proj:transform": list(header.transform),
        "proj:bbox": [left, bottom, right, top],
    }
    if code is None:
        properties["proj:wkt2"] = header.crs.to_wkt()
    if split is not None:
        properties[SPLIT_PROPERTY] = split
    properties["datetime"] = None
    parent = {"href": "../collection.json", "type": JSON_MEDIA_TYPE, "title": TITLE}
    return {
        "type": "Feature",
        "stac_version": pystac.get_stac_version(),
        "stac_extensions": [PROJECTION_EXT, EO_EXT, CLASSIFICATION_EXT, FILE_EXT],
        "id": chip.chip_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": properties,
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": JSON_MEDIA_TYPE, "title": TITLE},
            {"rel": "collection", **parent},
            {"rel": "parent", **parent},
        ],
        "assets": {
            IMAGE_ASSET: {
                "href": f"./{chip.chip_id}.tif",
                "type": GEOTIFF_MEDIA_TYPE,
                "title": f"EuroSAT-MS chip {chip.chip_id}",
                "data_type": "uint16",
                "bands": band_objects(),
                "file:size": file_size,
                "file:checksum": checksum,
                "roles": ["data"],
            }
        },
        "collection": collection_id,
    }


def create_collection(
    bboxes: Iterable[Sequence[float]], proj_codes: Iterable[str | None], collection_id: str
) -> pystac.Collection:
    """The EuroSAT collection: extent around the items' `bboxes`, the ten classes and the items'
    `proj_codes` summarised, EuroSAT credited. Its item links are added by the caller."""
    boxes = list(bboxes)
    if not boxes:
        raise DataError("no items to put in the collection: the EuroSAT folder held no chips")
    west, south, east, north = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    extent = pystac.Extent(
        pystac.SpatialExtent([[west, south, east, north]]),
        pystac.TemporalExtent([[EUROSAT_START, EUROSAT_END]]),
    )
    summaries = pystac.Summaries(
        {
            LABEL_PROPERTY: [class_object(i) for i in range(len(EUROSAT_CLASSES))],
            "proj:code": sorted({str(c) for c in proj_codes}),
        }
    )
    collection = pystac.Collection(
        id=collection_id,
        title=TITLE,
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
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
) -> Path:
    """Write a self-contained static STAC catalog of the EuroSAT folder `src` to `dest`.

    The chips are copied next to their items; with `link_chips` they are hard-linked instead (no
    second copy of 2 GB; only where `src` is never written to again, as the two names share one
    file). `splits` (chip id → train/val/test) is recorded as `eurosat:split`. `workers`: processes
    that read the chips and write their items (None: one per usable CPU from
    `PARALLEL_MIN_CHIPS` chips on, else 1); the catalog is the same byte for byte whatever the
    count. Writes into a temporary sibling and renames: on any error `dest` is not created.
    Returns the path of `dest/catalog.json`.
    """
    src, dest = Path(src), Path(dest)
    chips = find_chips(src)
    progress(0.0, f"found {len(chips)} chips")
    tasks = [
        ItemTask(chip, splits.get(chip.chip_id) if splits else None)
        for chip in chips  # find_chips refuses an empty folder
    ]
    n_workers = _worker_count(workers, len(chips))
    with atomic_dir(dest) as tmp:
        coll_dir = tmp / collection_id
        chunks = [
            ItemChunk(
                tuple(tasks[i : i + CHUNK_CHIPS]), coll_dir, collection_id, link_chips, geoparquet
            )
            for i in range(0, len(tasks), CHUNK_CHIPS)
        ]
        written: list[WrittenItem] = []
        # closed (the workers stopped) before a failure removes the temporary folder
        with closing(_map_chunks(chunks, n_workers)) as results:
            for done in results:
                written.extend(done)
                progress(90.0 * len(written) / len(chips), f"{len(written)}/{len(chips)} items")
        collection = create_collection(
            (w.bbox for w in written), (w.proj_code for w in written), collection_id
        )
        catalog = pystac.Catalog(
            id=f"{collection_id}-catalog",
            description=f"Static STAC catalog of the EuroSAT-MS collection {collection_id!r}.",
            title=TITLE,
        )
        # item links as relative hrefs (the items are written already): pystac resolves none of
        # them, and they come before the parent link as when the items were added one by one
        collection.add_links(
            [
                pystac.Link(
                    pystac.RelType.ITEM, f"./{w.item_id}/{w.item_id}.json", GEOJSON_MEDIA_TYPE
                )
                for w in written
            ]
        )
        catalog.add_child(collection)
        catalog.catalog_type = pystac.CatalogType.SELF_CONTAINED
        # a file href: pystac would read the dotted temp folder name as a file extension
        catalog.set_self_href(str(tmp / "catalog.json"))
        collection.set_self_href(str(coll_dir / "collection.json"))
        if geoparquet:
            parquet = coll_dir / GEOPARQUET_FILE
            write_geoparquet([w.parquet_item for w in written if w.parquet_item], parquet)
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
        collection.save_object(include_self_link=False)
        catalog.save_object(include_self_link=False)
        progress(100.0, f"wrote {len(written)} items")
    logger.info("wrote STAC catalog of %d chips to %s", len(chips), dest)
    return dest / "catalog.json"


@dataclass(frozen=True)
class ItemTask:
    """One chip to catalogue, with its split (None: unknown)."""

    chip: ChipFile
    split: str | None


@dataclass(frozen=True)
class ItemChunk:
    """Chips one worker catalogues in a row: their items go under `coll_dir/<id>/`."""

    tasks: tuple[ItemTask, ...]
    coll_dir: Path
    collection_id: str
    link_chips: bool
    geoparquet: bool


@dataclass(frozen=True)
class WrittenItem:
    """What the collection needs of an item once it is written."""

    item_id: str
    bbox: list[float]
    proj_code: str | None
    parquet_item: dict[str, Any] | None  # the item as the stac-geoparquet file lists it


def write_items(chunk: ItemChunk) -> list[WrittenItem]:
    """Read each chip's header and bytes once, put the chip and its item JSON in its folder."""
    import rasterio

    stac_io = pystac.StacIO.default()
    out: list[WrittenItem] = []
    with rasterio.Env():  # one GDAL environment for the chunk, not one per file
        for task in chunk.tasks:
            chip = task.chip
            header = read_chip_header(chip.path)
            data = chip.path.read_bytes()
            item = item_dict(
                chip,
                header,
                collection_id=chunk.collection_id,
                file_size=len(data),
                checksum=_multihash_sha256(data),
                split=task.split,
            )
            item_dir = chunk.coll_dir / chip.chip_id
            item_dir.mkdir(parents=True)
            target = item_dir / f"{chip.chip_id}.tif"
            if chunk.link_chips:
                _link_or_copy(chip.path, target)
            else:
                target.write_bytes(data)
            (item_dir / f"{chip.chip_id}.json").write_text(
                stac_io.json_dumps(item), encoding="utf-8"
            )
            parquet_item = None
            if chunk.geoparquet:  # asset hrefs relative to the parquet file, no links
                asset = {
                    **item["assets"][IMAGE_ASSET],
                    "href": f"{chip.chip_id}/{chip.chip_id}.tif",
                }
                parquet_item = {**item, "links": [], "assets": {IMAGE_ASSET: asset}}
            code = item["properties"]["proj:code"]
            out.append(WrittenItem(chip.chip_id, item["bbox"], code, parquet_item))
    return out


def _worker_count(workers: int | None, n_chips: int) -> int:
    if workers is not None:
        if workers < 1:
            raise InputError(f"workers={workers}: give 1 or more processes")
        return workers
    if n_chips < PARALLEL_MIN_CHIPS:
        return 1  # starting processes would cost more than it saves
    from app_package.inference.reader import usable_cpus

    return max(1, min(usable_cpus(), -(-n_chips // CHUNK_CHIPS)))


def _map_chunks(chunks: list[ItemChunk], workers: int) -> Generator[list[WrittenItem]]:
    """`write_items` of each chunk, in order: here, or in `workers` fresh processes (spawned,
    not forked: the caller may be a server with threads)."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield write_items(chunk)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)), mp_context=multiprocessing.get_context("spawn")
    )
    try:
        yield from pool.map(write_items, chunks)
    except BrokenProcessPool as e:
        raise AppPackageError(
            f"a process cataloguing chips died ({e}): where eurosat_to_stac is called from a "
            'script, call it under `if __name__ == "__main__":` (worker processes import the '
            "script), or pass workers=1"
        ) from e
    finally:  # on an error, let the running chunks end (they write into the temporary folder)
        pool.shutdown(wait=True, cancel_futures=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (no second copy of 2 GB of chips), copying across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_geoparquet(items: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write item dicts (asset hrefs relative to `path`'s folder, no links) as stac-geoparquet."""
    import stac_geoparquet.arrow

    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(list(items)).read_all()
    stac_geoparquet.arrow.to_parquet(table, path)
    return path
