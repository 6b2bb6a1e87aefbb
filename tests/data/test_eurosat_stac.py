"""eurosat-to-stac: chips → static STAC catalog (+ stac-geoparquet), validated offline."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio
from rasterio.warp import transform as warp_transform

from app_package.cli import main
from app_package.data.eurosat import find_chips, read_chip
from app_package.data.eurosat_stac import (
    CLASSIFICATION_EXT,
    LABEL_PROPERTY,
    SPLIT_PROPERTY,
    eurosat_to_stac,
)
from app_package.eo.bands import EUROSAT_CLASS_NAMES, EUROSAT_FILE_BAND_ORDER
from app_package.errors import DataError, InputError, NotFoundError
from app_package.stac.validation import (
    stac_validator_schema_map,
    validate_catalog,
    validate_stac,
    walk_json,
)
from tests.conftest import SCHEMAS
from tests.support.datagen import make_chip, write_chip, write_eurosat_tree


@pytest.fixture(scope="module")
def schemas() -> Path:
    return SCHEMAS


@pytest.fixture(scope="module")
def catalog(eurosat_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("stac") / "cat"
    return eurosat_to_stac(eurosat_tree, dest, geoparquet=True, collection_id="eurosat-test")


def _items(catalog_json: Path) -> list[dict]:
    return [
        json.loads(p.read_text())
        for p in walk_json(catalog_json)
        if json.loads(p.read_text())["type"] == "Feature"
    ]


def _no_leftovers(dest: Path) -> None:
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}.tmp-*")), "temporary folder left behind"


def test_find_chips_any_nesting_sorted(tmp_path: Path) -> None:
    root = write_eurosat_tree(tmp_path / "x", 3, nest="ds/images/tif", seed=1)
    chips = find_chips(root)
    assert len(chips) == 30
    assert [c.class_name for c in chips[:3]] == ["AnnualCrop"] * 3
    assert chips[-1].chip_id == "SeaLake_3"


def test_read_chip_maps_bands_by_name(eurosat_tree: Path) -> None:
    path = find_chips(eurosat_tree)[0].path
    with rasterio.open(path) as src:
        raw = src.read()
    x = read_chip(path, ("B8A", "B08", "B02"))
    # B8A is the LAST band in EuroSAT files, B08 the 8th, B02 the 2nd
    np.testing.assert_array_equal(x[0], raw[12])
    np.testing.assert_array_equal(x[1], raw[7])
    np.testing.assert_array_equal(x[2], raw[1])


def test_catalog_structure_and_items(catalog: Path, eurosat_tree: Path) -> None:
    root = json.loads(catalog.read_text())
    assert root["type"] == "Catalog"
    coll_path = catalog.parent / "eurosat-test" / "collection.json"
    coll = json.loads(coll_path.read_text())
    assert coll["type"] == "Collection" and coll["license"] == "MIT"
    assert "Helber" in coll["description"]
    assert any(lk["rel"] == "cite-as" for lk in coll["links"])
    assert [c["name"] for c in coll["summaries"][LABEL_PROPERTY]] == list(EUROSAT_CLASS_NAMES)
    items = _items(catalog)
    assert len(items) == 60
    assert len({i["id"] for i in items}) == 60
    # every link and asset href is relative (self-contained)
    for doc in [root, coll, *items]:
        for lk in doc["links"]:
            if lk["rel"] in ("root", "parent", "child", "item", "collection"):
                assert not lk["href"].startswith(("/", "http")), lk
    for item in items:
        href = item["assets"]["image"]["href"]
        assert href == f"./{item['id']}.tif"
    # collection extent covers every item bbox
    ext = coll["extent"]["spatial"]["bbox"][0]
    for item in items:
        b = item["bbox"]
        assert ext[0] <= b[0] and ext[1] <= b[1] and ext[2] >= b[2] and ext[3] >= b[3]


def test_item_geometry_label_projection_bands(catalog: Path, eurosat_tree: Path) -> None:
    item = next(i for i in _items(catalog) if i["id"] == "River_3")
    src_path = eurosat_tree / "River" / "River_3.tif"
    with rasterio.open(src_path) as src:
        crs, bounds, transform = src.crs, src.bounds, src.transform
    props = item["properties"]
    assert props[LABEL_PROPERTY] == [
        {"value": 8, "name": "River", "description": "River", "color_hint": "2196F3"}
    ]
    assert CLASSIFICATION_EXT in item["stac_extensions"]
    assert props["proj:code"] == f"EPSG:{crs.to_epsg()}"
    assert props["proj:shape"] == [64, 64]
    assert props["proj:transform"] == pytest.approx(list(transform)[:6])
    # the chip centre, reprojected independently, lies inside the WGS84 bbox
    cx, cy = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
    lon, lat = warp_transform(crs, "EPSG:4326", [cx], [cy])
    w, s, e, n = item["bbox"]
    assert w < lon[0] < e and s < lat[0] < n
    assert 0 < e - w < 0.02 and 0 < n - s < 0.02  # a 640 m chip
    bands = [b["name"] for b in item["assets"]["image"]["bands"]]
    assert bands == list(EUROSAT_FILE_BAND_ORDER) and bands[-1] == "B8A"
    # the copied chip is byte-identical and matches its checksum
    copied = catalog.parent / "eurosat-test" / "River_3" / "River_3.tif"
    assert copied.read_bytes() == src_path.read_bytes()
    assert item["assets"]["image"]["file:size"] == src_path.stat().st_size


def test_catalog_validates_offline(catalog: Path, schemas: Path) -> None:
    assert validate_catalog(catalog, schemas) == 62  # catalog + collection + 60 items


def test_validation_catches_bad_metadata(catalog: Path, schemas: Path) -> None:
    item = _items(catalog)[0]
    item["properties"][LABEL_PROPERTY][0]["color_hint"] = "blue"  # not RRGGBB
    with pytest.raises(DataError, match=r"does not match"):
        validate_stac(item, schemas)
    item = _items(catalog)[0]
    item["properties"]["proj:shape"] = [64]
    with pytest.raises(DataError, match="too short"):
        validate_stac(item, schemas)


def test_validation_refuses_unknown_schema_offline(catalog: Path, schemas: Path) -> None:
    item = _items(catalog)[0]
    item["stac_extensions"].append("https://stac-extensions.github.io/nope/v9.9.9/schema.json")
    with pytest.raises(DataError, match="not available offline"):
        validate_stac(item, schemas)


def test_stac_validator_offline(catalog: Path, schemas: Path) -> None:
    with warnings.catch_warnings():
        # stac_validator 4.1 warns on import that it was renamed stac_valid (same module)
        warnings.filterwarnings(
            "ignore", message=".*stac_validator.*deprecated", category=DeprecationWarning
        )
        from stac_validator.validate import StacValidate
    schema_map = stac_validator_schema_map(schemas)
    for path in walk_json(catalog)[:5]:
        v = StacValidate(str(path), schema_map=schema_map)
        assert v.run(), v.message
        used = v.message[0]["schema"]
        assert all(not s.startswith("http") for s in used), used  # all local files


def test_geoparquet_lists_items(catalog: Path) -> None:
    coll = pystac.Collection.from_file(str(catalog.parent / "eurosat-test" / "collection.json"))
    asset = coll.assets["geoparquet"]
    assert asset.media_type == "application/vnd.apache.parquet"
    table = pq.read_table(asset.get_absolute_href())
    assert table.num_rows == 60
    ids = sorted(table.column("id").to_pylist())
    assert ids == sorted(i["id"] for i in _items(catalog))


def test_splits_recorded(eurosat_tree: Path, tmp_path: Path) -> None:
    splits = {"Forest_1": "train", "Forest_2": "val", "Forest_3": "test"}
    out = eurosat_to_stac(eurosat_tree, tmp_path / "c", splits=splits)
    by_id = {i["id"]: i["properties"].get(SPLIT_PROPERTY) for i in _items(out)}
    assert by_id["Forest_1"] == "train" and by_id["Forest_2"] == "val"
    assert by_id["Forest_3"] == "test" and by_id["Forest_4"] is None


# ---------------------------------------------------------------- bad input
def test_folder_not_a_class(tmp_path: Path) -> None:
    src = write_eurosat_tree(tmp_path / "src", 1, classes=("Forest",))
    write_chip(src / "Forests" / "Forests_1.tif", make_chip(1, np.random.default_rng(0)))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"Forests.*not a EuroSAT class"):
        eurosat_to_stac(src, dest)
    _no_leftovers(dest)


def test_corrupt_geotiff_named(tmp_path: Path) -> None:
    src = write_eurosat_tree(tmp_path / "src", 2, classes=("River",))
    bad = src / "River" / "River_2.tif"
    bad.write_bytes(b"II*\x00not really a tiff")
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"River_2\.tif"):
        eurosat_to_stac(src, dest)
    _no_leftovers(dest)


def test_wrong_band_count_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_chip(src / "River" / "River_1.tif", make_chip(8, np.random.default_rng(0), bands=3))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"River_1.tif: 3 bands, expected 13"):
        eurosat_to_stac(src, dest)
    _no_leftovers(dest)


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no EuroSAT chips"):
        eurosat_to_stac(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(NotFoundError, match="does not exist"):
        eurosat_to_stac(tmp_path / "missing", tmp_path / "out")
    _no_leftovers(tmp_path / "out")


def test_cli_door(eurosat_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["eurosat-to-stac", str(eurosat_tree), str(tmp_path / "cat")])
    assert e.value.code == 0
    assert (tmp_path / "cat" / "catalog.json").is_file()
    with pytest.raises(SystemExit) as e:
        main(["eurosat-to-stac", str(tmp_path / "nope"), str(tmp_path / "cat2")])
    assert e.value.code == 65  # EX_DATAERR: the input folder is missing
    assert "nope" in capsys.readouterr().err


# ---------------------------------------------------------------- real data
@pytest.mark.slow
def test_real_subset_to_stac(shared_data: Path, schemas: Path, tmp_path: Path) -> None:
    out = eurosat_to_stac(
        shared_data / "eurosat-ms-subset" / "train", tmp_path / "cat", geoparquet=True
    )
    items = _items(out)
    assert len(items) == 216
    assert validate_catalog(out, schemas) == 218
    counts = {n: 0 for n in EUROSAT_CLASS_NAMES}
    for i in items:
        counts[i["properties"][LABEL_PROPERTY][0]["name"]] += 1
    assert all(v >= 16 for v in counts.values()), counts
    # real chips are in UTM zones; their WGS84 footprints lie in Europe
    for i in items:
        w, s, e, n = i["bbox"]
        assert -25 < w < e < 45 and 34 < s < n < 72
        assert i["properties"]["proj:code"].startswith("EPSG:326")


# ---------------------------------------------------------------- golden output
GOLDEN = Path(__file__).parent / "golden" / "eurosat_stac"
# a transverse Mercator without an EPSG code: the item carries proj:wkt2 (and proj:code null)
CUSTOM_CRS_WKT = (
    'PROJCS["custom",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",14.5],'
    'PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],'
    'PARAMETER["false_northing",0],UNIT["metre",1]]'
)


def _golden_tree(root: Path) -> Path:
    """Two Forest and two River chips in two UTM zones, one Pasture chip in a custom CRS."""
    write_eurosat_tree(root, 2, classes=("Forest", "River"), seed=3)
    path = root / "Pasture" / "Pasture_1.tif"
    path.parent.mkdir(parents=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=13, dtype="uint16",
        crs=rasterio.CRS.from_wkt(CUSTOM_CRS_WKT),
        transform=rasterio.transform.from_origin(512345.5, 5800123.25, 10.0, 10.0),
    ) as dst:  # fmt: skip
        dst.write(make_chip(5, np.random.default_rng(9)))
    return root


def test_output_matches_golden(tmp_path: Path, regen_golden: bool) -> None:
    """Every JSON file of the catalog, byte for byte, as the pystac-built version wrote it
    (`pytest --regen-golden` rewrites tests/data/golden/eurosat_stac/ after a deliberate change:
    review the diff)."""
    splits = {"Forest_1": "train", "River_2": "test", "Pasture_1": "val"}
    out = eurosat_to_stac(
        _golden_tree(tmp_path / "src"), tmp_path / "cat", collection_id="golden", splits=splits
    )
    root = out.parent
    written = {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.json"))}
    if regen_golden:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, data in written.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(data)
    golden = {p.relative_to(GOLDEN): p.read_bytes() for p in sorted(GOLDEN.rglob("*.json"))}
    assert sorted(written) == sorted(golden)
    for rel, data in golden.items():
        assert written[rel] == data, f"{rel} differs from {GOLDEN / rel}"


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_parallel_catalog_same_bytes_as_serial(eurosat_tree: Path, tmp_path: Path) -> None:
    """Worker processes write the same files, byte for byte, as the calling process alone."""
    splits = {"Forest_1": "train", "River_2": "val"}

    def build(dest: Path, workers: int) -> Path:
        return eurosat_to_stac(
            eurosat_tree, dest, geoparquet=True, collection_id="t", splits=splits, workers=workers
        )

    serial = build(tmp_path / "serial", 1)
    # 60 chips make 3 chunks of 25: both workers get some
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("app_package.data.eurosat_stac.CHUNK_CHIPS", 25)
        parallel = build(tmp_path / "parallel", 2)
    a, b = _files(serial.parent), _files(parallel.parent)
    assert len(a) == 2 + 60 * 2 + 1  # catalog, collection, item + chip each, parquet
    assert sorted(a) == sorted(b)
    assert [rel for rel in a if a[rel] != b[rel]] == []


def test_parallel_error_leaves_nothing(tmp_path: Path) -> None:
    src = write_eurosat_tree(tmp_path / "src", 3, classes=("River", "Forest"))
    (src / "River" / "River_2.tif").write_bytes(b"II*\x00not really a tiff")
    dest = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("app_package.data.eurosat_stac.CHUNK_CHIPS", 2)
        with pytest.raises(DataError, match=r"River_2\.tif"):
            eurosat_to_stac(src, dest, workers=2)
    _no_leftovers(dest)


def test_workers_must_be_positive(eurosat_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="workers=0"):
        eurosat_to_stac(eurosat_tree, tmp_path / "out", workers=0)
    assert not (tmp_path / "out").exists()
