"""The water-bodies job: NDWI + Otsu core, reading by name and AOI, COG + STAC, every door.

Synthetic products are written by code (JP2 bands and STAC items from tests/datagen.py) with a
known lake, so the mask can be checked pixel by pixel; the real L1C subset bundled in
app_package/sample (Brandenburg, the Havel river and its lakes) checks that real water is found.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from app_package.eo.bbox import check_aoi, from_ogc_bbox, parse_aoi
from app_package.errors import AppPackageError, DataError, InputError
from app_package.inference.water import (
    MASK_NODATA,
    NOT_WATER,
    WATER,
    bin_edges,
    ndwi,
    ndwi_histogram,
    otsu_threshold,
    water_fraction,
    water_mask,
)
from app_package.inference.water_bodies import (
    Window,
    grid_window,
    read_ndwi,
    strip_edges,
    water_bodies,
)
from app_package.service.ogc import OGCError
from tests.conftest import REPO, SCHEMAS
from tests.inference.pictures import count, left_panel, not_blank, pixels
from tests.support.datagen import S2_TEST_ORIGIN, write_jp2_bands, write_s2_item, write_safe

SAMPLE_ITEM = REPO / "app_package" / "sample" / "s2-l1c" / "item.json"
BIN = Path(sys.executable).parent

# The synthetic scene: 120 × 160 px at 10 m, a 40 × 60 px lake, nodata patches.
H, W = 120, 160
LAKE = (slice(30, 70), slice(40, 100))
NIR_NODATA = (slice(0, 10), slice(0, 10))  # DN 0 in B08 only
GREEN_NODATA = (slice(110, 120), slice(150, 160))  # DN 0 in B03 only


def scene(offset: int = 0) -> dict[str, np.ndarray]:
    """Green and NIR DNs (+ `offset`, as baseline ≥ 04.00 products store them) and a red band."""
    rng = np.random.default_rng(7)
    green = rng.normal(900, 40, (H, W))
    nir = rng.normal(2600, 150, (H, W))
    green[LAKE] = rng.normal(1100, 40, green[LAKE].shape)
    nir[LAKE] = rng.normal(400, 40, nir[LAKE].shape)
    bands = {
        "B03": np.clip(green + offset, 1, 65535).astype(np.uint16),
        "B04": np.clip(rng.normal(800, 40, (H, W)) + offset, 1, 65535).astype(np.uint16),
        "B08": np.clip(nir + offset, 1, 65535).astype(np.uint16),
    }
    bands["B08"][NIR_NODATA] = 0
    bands["B03"][GREEN_NODATA] = 0
    return bands


def expected_mask() -> np.ndarray:
    m = np.full((H, W), NOT_WATER, dtype=np.uint8)
    m[LAKE] = WATER
    m[NIR_NODATA] = MASK_NODATA
    m[GREEN_NODATA] = MASK_NODATA
    return m


@pytest.fixture(scope="module")
def jp2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic scene as L1C-like JP2 band files (no offset in the DNs)."""
    return write_jp2_bands(tmp_path_factory.mktemp("water-jp2"), scene())


def item(path: Path, files: dict[str, Path], **kw: Any) -> str:
    return str(write_s2_item(path, files, **kw))


def read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with rasterio.open(path) as ds:
        return ds.read(1), {"crs": ds.crs, "transform": ds.transform, "nodata": ds.nodata}


def items_of(catalog: Path) -> list[dict[str, Any]]:
    doc = json.loads(catalog.read_text())
    hrefs = [link["href"] for link in doc["links"] if link["rel"] == "item"]
    return [json.loads((catalog.parent / h).read_text()) | {"_dir": (catalog.parent / h).parent}
            for h in hrefs]  # fmt: skip


def mask_of(item_doc: dict[str, Any]) -> Path:
    return Path(item_doc["_dir"]) / item_doc["assets"]["water"]["href"]


# ---------------------------------------------------------------- the pure core
def test_otsu_threshold_lies_between_the_modes() -> None:
    rng = np.random.default_rng(0)
    land = rng.normal(-0.35, 0.06, 20000)
    water = rng.normal(0.25, 0.05, 3000)  # unequal classes, as in a real scene
    counts = ndwi_histogram(np.concatenate([land, water]).astype(np.float32))
    t = otsu_threshold(counts, bin_edges())
    assert -0.2 < t < 0.1
    # two separated spikes: the middle of the empty gap between them
    counts = ndwi_histogram(np.array([-0.5] * 50 + [0.5] * 50, dtype=np.float32))
    assert otsu_threshold(counts, bin_edges()) == pytest.approx(0.0, abs=2e-3)
    with pytest.raises(ValueError, match="empty"):
        otsu_threshold(np.zeros(10), np.linspace(0, 1, 11))


def test_ndwi_nodata_and_mask() -> None:
    green = np.array([[3000, 1000, 0, 500]], dtype=np.uint16)
    nir = np.array([[1000, 3000, 800, 0]], dtype=np.uint16)
    values = ndwi(green, nir)
    assert values[0, :2] == pytest.approx([0.5, -0.5])
    assert np.isnan(values[0, 2:]).all()  # DN 0 in either band is nodata
    assert water_mask(values, 0.0).tolist() == [[WATER, NOT_WATER, MASK_NODATA, MASK_NODATA]]
    assert water_fraction(water_mask(values, 0.0)) == 0.5
    assert ndwi_histogram(values).sum() == 2  # NaN never counts


def test_grid_window_snaps_to_pixels_and_clips() -> None:
    t = Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)
    assert grid_window((1100.0, 4500.0, 1300.0, 4800.0), t, 100, 80) == Window(10, 20, 20, 30)
    # partly covered pixels are in; the window is clipped to the grid
    assert grid_window((1095.0, 4495.0, 1301.0, 4801.0), t, 100, 80) == Window(9, 19, 22, 32)
    assert grid_window((0.0, 0.0, 1025.0, 4990.0), t, 100, 80) == Window(0, 1, 3, 79)
    assert grid_window((3000.0, 4000.0, 3100.0, 4100.0), t, 100, 80) is None
    assert grid_window((900.0, 4500.0, 1000.0, 4600.0), t, 100, 80) is None  # touches an edge


@pytest.mark.parametrize(
    ("text", "needle"),
    [("1,2,3", "has 3 value"), ("a,b,c,d", "not four numbers"), ("3,2,1,4", "inverted"),
     ("1,2,1,4", "inverted"), ("nan,1,2,3", "finite"), ("", "not four numbers")],
)  # fmt: skip
def test_bad_aoi_syntax(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        parse_aoi(text)


def test_aoi_values() -> None:
    assert parse_aoi(" 12.5, 52.4,12.6 ,52.5") == (12.5, 52.4, 12.6, 52.5)
    assert check_aoi([1, 2, 3, 4]) == (1.0, 2.0, 3.0, 4.0)


# ---------------------------------------------------------------- synthetic products
def test_mask_finds_the_lake_and_keeps_nodata(tmp_path: Path, jp2: dict[str, Path]) -> None:
    from rio_cogeo.cogeo import cog_validate

    from app_package.stac.validation import validate_catalog

    src = item(tmp_path / "in" / "item.json", jp2, style="common")  # green/nir/red asset keys
    catalog = water_bodies([src], tmp_path / "out")
    assert validate_catalog(catalog, SCHEMAS) == 2
    (doc,) = items_of(catalog)
    mask, meta = read(mask_of(doc))
    assert np.array_equal(mask, expected_mask())
    assert meta["nodata"] == MASK_NODATA and meta["crs"].to_epsg() == 32633
    x0, y0 = S2_TEST_ORIGIN
    assert meta["transform"] == Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    valid, errors, _ = cog_validate(str(mask_of(doc)))
    assert valid, errors
    props = doc["properties"]
    lake_share = 40 * 60 / (H * W - 200)
    assert props["water:fraction"] == pytest.approx(lake_share, abs=1e-6)
    assert props["water:valid_pixels"] == H * W - 200
    assert -0.6 < props["water:ndwi_threshold"] < 0.4  # land ≈ -0.49, lake ≈ +0.47
    assert props["datetime"] == "2017-02-16T10:21:01Z"  # the source's acquisition time
    source = {"rel": "derived_from", "href": src, "type": "application/geo+json"}
    assert {**source, "title": "Source product"} in doc["links"]
    # the scene has no B02: the thumbnail is the mask alone, with its legend (nodata included)
    thumb = doc["assets"]["thumbnail"]
    assert thumb["roles"] == ["thumbnail"] and thumb["type"] == "image/png"
    img = pixels(Path(doc["_dir"]) / thumb["href"])
    assert count(img, (13, 71, 161)) > 1000 and count(img, (224, 224, 224)) > 1000
    assert count(img, (117, 117, 117)) > 20  # the hatching of nodata, drawn and in the legend


def test_offset_is_removed_for_baseline_04(tmp_path: Path) -> None:
    """Same radiometry, stored with +1000 (baseline 05.00): the same NDWI and mask."""
    plain = write_jp2_bands(tmp_path / "plain", scene())
    shifted = write_jp2_bands(tmp_path / "shifted", scene(offset=1000))
    old = item(tmp_path / "old.json", plain, baseline="02.09", item_id="old")
    new = item(tmp_path / "new.json", shifted, baseline="05.00", item_id="new")
    wrong = item(tmp_path / "wrong.json", shifted, baseline="02.09", item_id="wrong")
    from app_package.eo.sentinel2 import open_product

    def values(ref: str) -> np.ndarray:
        sources = open_product(ref).require(("B03", "B08"))
        return read_ndwi(sources, Window(0, 0, W, H))

    assert np.allclose(values(new), values(old), equal_nan=True)
    assert not np.allclose(values(wrong), values(old), equal_nan=True)  # offset left in
    catalog = water_bodies([old, new], tmp_path / "out")
    by_id = {d["id"]: d for d in items_of(catalog)}
    assert (
        by_id["old-water"]["properties"]["water:ndwi_threshold"]
        == (by_id["new-water"]["properties"]["water:ndwi_threshold"])
    )
    assert np.array_equal(read(mask_of(by_id["new-water"]))[0], expected_mask())
    # a .SAFE folder takes its offset from MTD_MSIL1C.xml
    safe = write_safe(tmp_path / "safe", bands10=scene(offset=1000), baseline="04.00")
    assert np.allclose(values(str(safe)), values(old), equal_nan=True)


def test_aoi_crops_to_its_window(tmp_path: Path, jp2: dict[str, Path]) -> None:
    src = item(tmp_path / "item.json", jp2)
    x0, y0 = S2_TEST_ORIGIN
    aoi = (x0 + 200, y0 - 900, x0 + 1200, y0 - 100)  # cols 20–120, rows 10–90, in UTM
    catalog = water_bodies([src], tmp_path / "out", aoi=aoi, aoi_crs="EPSG:32633")
    (doc,) = items_of(catalog)
    mask, meta = read(mask_of(doc))
    assert mask.shape == (80, 100)
    assert meta["transform"] == Affine(10.0, 0.0, x0 + 200, 0.0, -10.0, y0 - 100)
    assert np.array_equal(mask, expected_mask()[10:90, 20:120])
    assert doc["properties"]["proj:shape"] == [80, 100]
    assert doc["properties"]["water:aoi"] == {"bbox": list(aoi), "crs": "EPSG:32633"}
    # an AOI far larger than the product (the world in lon/lat) maps the whole product
    catalog = water_bodies([src], tmp_path / "world", aoi=(-179.0, -89.0, 179.0, 89.0))
    assert np.array_equal(read(mask_of(items_of(catalog)[0]))[0], expected_mask())


# ---------------------------------------------------------------- the real L1C subset
def test_real_subset_finds_the_havel_and_its_lakes(tmp_path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    from app_package.stac.validation import validate_catalog

    catalog = water_bodies([str(SAMPLE_ITEM)], tmp_path / "out")
    assert validate_catalog(catalog, SCHEMAS) == 2
    (doc,) = items_of(catalog)
    mask, meta = read(mask_of(doc))
    # the product's 10 m grid (proj:shape / proj:transform of its B03 asset)
    assert mask.shape == (768, 1536) and meta["crs"].to_epsg() == 32633
    assert meta["transform"] == Affine(10.0, 0.0, 330000.0, 0.0, -10.0, 5822040.0)
    assert set(np.unique(mask)) == {NOT_WATER, WATER}  # no nodata in this subset
    props = doc["properties"]
    # measured: threshold 0.002, water 9.4 % (the Havel, Schwielowsee and smaller lakes)
    assert 0.02 < props["water:fraction"] < 0.2
    assert -0.2 < props["water:ndwi_threshold"] < 0.2
    assert (mask[600:720, 440:520] == WATER).mean() > 0.6  # the lake south-west (12.57E 52.46N)
    river = mask[300:520] == WATER

    def longest_run(col: np.ndarray) -> int:
        best = cur = 0
        for v in col:
            cur = cur + 1 if v else 0
            best = max(best, cur)
        return best

    # the river crosses the scene: every column over 4.5 km has ≥ 30 m of water across it
    assert min(longest_run(river[:, c]) for c in range(700, 1150)) >= 3
    assert (mask[150:250, 150:250] == NOT_WATER).mean() > 0.95  # fields north-west
    with rasterio.open(mask_of(doc)) as ds:
        assert ds.overviews(1) and ds.colormap(1)[WATER][:3] == (13, 71, 161)
    valid, errors, _ = cog_validate(str(mask_of(doc)))
    assert valid, errors
    # the thumbnail: the mask (water, not water) beside the subset's true colour
    img = pixels(Path(doc["_dir"]) / doc["assets"]["thumbnail"]["href"])
    right = img[:, img.shape[1] // 2 :]
    assert count(right, (13, 71, 161)) > 5000 and count(right, (224, 224, 224)) > 50000
    assert not_blank(left_panel(img))


def test_real_subset_with_a_lon_lat_aoi(tmp_path: Path) -> None:
    aoi = (12.55, 52.46, 12.65, 52.50)
    catalog = water_bodies([str(SAMPLE_ITEM)], tmp_path / "out", aoi=aoi)
    (doc,) = items_of(catalog)
    mask, meta = read(mask_of(doc))
    t = meta["transform"]
    assert (t.a, t.e) == (10.0, -10.0)
    assert (t.c - 330000.0) % 10 == 0 and (5822040.0 - t.f) % 10 == 0  # on the product's grid
    assert t.c > 330000.0 and t.f < 5822040.0
    assert 0 < mask.shape[0] < 768 and 0 < mask.shape[1] < 1536
    # the footprint is the window's: it holds the AOI, give or take the UTM/lon-lat skew
    assert np.allclose(doc["bbox"], aoi, atol=0.005)
    assert WATER in mask and NOT_WATER in mask


# ---------------------------------------------------------------- bad input
def test_missing_band_names_it_and_the_assets(tmp_path: Path, jp2: dict[str, Path]) -> None:
    no_nir = item(tmp_path / "item.json", {k: v for k, v in jp2.items() if k != "B08"})
    with pytest.raises(DataError, match=r"band B08 missing .* assets present are B03, B04"):
        water_bodies([no_nir], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_when_a_later_item_fails(tmp_path: Path, jp2: dict[str, Path]) -> None:
    good = item(tmp_path / "good.json", jp2, item_id="good")
    gone = dict(jp2)
    broken = tmp_path / "broken.jp2"
    broken.write_bytes(jp2["B08"].read_bytes()[:2000])  # truncated: fails when decoded
    gone["B08"] = broken
    bad = item(tmp_path / "bad.json", gone, item_id="bad")
    with pytest.raises(AppPackageError):
        water_bodies([good, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_same_product_twice_is_refused(tmp_path: Path, jp2: dict[str, Path]) -> None:
    a = item(tmp_path / "a.json", jp2)
    b = item(tmp_path / "b.json", jp2)
    with pytest.raises(InputError, match="same product"):
        water_bodies([a, b], tmp_path / "out")


def app_package(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "app-package"), "water-bodies", *args], capture_output=True, text=True,
        cwd=cwd, check=False, timeout=300,
    )  # fmt: skip


def test_cli_two_items_into_one_catalog(tmp_path: Path, jp2: dict[str, Path]) -> None:
    from app_package.stac.validation import validate_catalog

    a = item(tmp_path / "a" / "item.json", jp2, item_id="a")
    b = item(tmp_path / "b" / "item.json", jp2, item_id="b", style="eo")
    r = app_package(a, b, "--output", "out", "--aoi=12.0,52.0,13.0,53.0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    catalog = tmp_path / "out" / "catalog.json"
    assert r.stdout.strip() == str(Path("out") / "catalog.json")
    assert validate_catalog(catalog, SCHEMAS) == 3
    docs = items_of(catalog)
    assert sorted(d["id"] for d in docs) == ["a-water", "b-water"]
    for d in docs:
        assert d["assets"]["water"]["href"] == "./water.tif"
        assert d["assets"]["water"]["roles"] == ["data", "water-mask"]
        classes = {c["name"]: c["value"] for c in d["assets"]["water"]["classification:classes"]}
        assert classes == {"not_water": 0, "water": 1, "nodata": 255}
        assert np.array_equal(read(mask_of(d))[0], expected_mask())


BAD_CLI = {  # case: (options, band to drop, output exists already, exit status, message)
    "aoi-syntax": (["--aoi", "1,2,3"], None, False, 2, ["AOI [1.0, 2.0, 3.0] has 3 value(s)"]),
    "aoi-crs": (["--aoi", "12,52,13,53", "--aoi-crs", "EPSG:nope"], None, False, 2,
                ["AOI CRS 'EPSG:nope'"]),
    "aoi-misses": (["--aoi", "100,10,101,11"], None, False, 2,
                   ["AOI [100.0, 10.0, 101.0, 11.0] (EPSG:4326) does not overlap product",
                    "its bounds are [12.49"]),
    "no-green": ([], "B03", False, 65, ["band B03 missing", "assets present are B04, B08"]),
    "output-exists": ([], None, True, 2, ["output folder out already exists"]),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_CLI)
def test_cli_bad_input_exits_with_its_status_and_writes_nothing(
    tmp_path: Path,
    jp2: dict[str, Path],
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app_package.cli import main

    args, drop, exists, status, needles = BAD_CLI[case]
    src = item(tmp_path / "in" / "item.json", {k: v for k, v in jp2.items() if k != drop})
    if exists:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["water-bodies", src, "--output", "out", *args])
    assert e.value.code == status
    message = capsys.readouterr().err.split("app-package water-bodies: error: ", 1)[1]
    for needle in needles:
        assert needle in message
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in", "out"] if exists else ["in"])
    if exists:
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------- the OGC process
def test_process_description_and_example() -> None:
    from jsonschema import Draft202012Validator

    from app_package.service.execute import validate_execute
    from app_package.service.hrefs import HrefPolicy
    from processes.water_bodies import PROCESS_METADATA as P

    assert P["id"] == "water-bodies"
    for name, spec in {**P["inputs"], **P["outputs"]}.items():
        assert spec["title"] and spec["description"], name
        Draft202012Validator.check_schema(spec["schema"])
    for spec in P["inputs"].values():
        assert "minOccurs" in spec and "maxOccurs" in spec
    values = validate_execute(P, P["example"], HrefPolicy()).inputs
    assert values == P["example"]["inputs"]
    assert P["inputs"]["aoi"]["schema"]["format"] == "ogc-bbox"
    # bad boxes: 400 before any job exists, naming the input and what is wrong
    utm = "http://www.opengis.net/def/crs/EPSG/0/32633"
    for aoi, needle in (
        ([12.5, 52.4, 12.6, 52.5], "is not of type 'object'"),  # the old array form
        ({"bbox": [1, 2, 3]}, "aoi"),  # wrong arity: the schema
        ({"bbox": [12.6, 52.4, 12.5, 52.5]}, "empty or inverted"),  # min > max
        ({"bbox": [12.5, 52.4, 12.6, 52.5], "crs": "urn:nowhere:crs"}, "is not a CRS"),
    ):
        with pytest.raises(OGCError) as e:
            validate_execute(P, {"inputs": {"aoi": aoi}}, HrefPolicy())
        assert e.value.status == 400 and "input 'aoi'" in e.value.detail, e.value.detail
        assert needle in e.value.detail, e.value.detail
    three_d = {"bbox": [330000, 5814360, 0, 345360, 5822040, 100], "crs": utm}
    assert validate_execute(P, {"inputs": {"aoi": three_d}}, HrefPolicy()).inputs["aoi"] == (
        three_d)  # fmt: skip
    assert from_ogc_bbox(three_d) == ((330000.0, 5814360.0, 345360.0, 5822040.0), utm)


def test_process_runs_like_the_library(tmp_path: Path) -> None:
    from processes.water_bodies import PROCESS_METADATA, WaterBodiesProcessor

    processor = WaterBodiesProcessor({"name": "water-bodies"})
    seen: list[float] = []
    catalog = processor.run(
        dict(PROCESS_METADATA["example"]["inputs"]), tmp_path / "job",
        lambda p, m: seen.append(p),
    )  # fmt: skip
    box = PROCESS_METADATA["example"]["inputs"]["aoi"]
    library = water_bodies(
        [str(SAMPLE_ITEM)], tmp_path / "lib", aoi=box["bbox"], aoi_crs=box["crs"]
    )
    (a,), (b,) = items_of(catalog), items_of(library)
    assert a["properties"] == b["properties"]
    assert np.array_equal(read(mask_of(a))[0], read(mask_of(b))[0])
    assert seen == sorted(seen) and seen[-1] == 100.0


@pytest.mark.slow
def test_live_server_runs_water_bodies_async(tmp_path: Path) -> None:
    import requests

    from app_package.service.execute import validate_execute
    from app_package.service.hrefs import HrefPolicy
    from tests.support.server import Server, assert_valid

    server = Server(tmp_path / "var").start()
    try:
        desc = server.get("/processes/water-bodies", params={"f": "json"}).json()
        assert_valid(desc, "process.yaml")
        validate_execute(desc, desc["example"], HrefPolicy())
        job = server.submit("water-bodies", desc["example"]["inputs"])
        status = server.wait(job, ("successful", "failed"), timeout=300)
        assert status["status"] == "successful", status.get("message")
        result = server.get(f"/jobs/{job}/results").json()
        assert result["type"] == "Catalog"
        (item_href,) = [lk["href"] for lk in result["links"] if lk["rel"] == "item"]
        doc = requests.get(item_href, timeout=10).json()
        assert doc["properties"]["water:fraction"] > 0
        cog = requests.compat.urljoin(item_href, doc["assets"]["water"]["href"])
        r = requests.get(cog, timeout=10)
        assert r.status_code == 200 and r.content[:4] in (b"II*\x00", b"MM\x00*"), cog
    finally:
        server.stop()


# ---------------------------------------------------------------- the CWL package
@pytest.mark.slow
def test_cwltool_scatters_over_two_items_into_one_catalog(tmp_path: Path) -> None:
    from app_package.stac.validation import validate_catalog
    from tests.support.cwl import WATER, cwltool, directory, run_cwl, write_product

    staged = tmp_path / "staged"
    products = [write_product(staged, "s2-l1c-a"), write_product(staged, "s2-l1c-b")]
    box = {
        "bbox": [12.55, 52.46, 12.6, 52.48],
        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    }
    job = {"items": [directory(p) for p in products], "aoi": box}
    _, out = run_cwl(cwltool(tmp_path, WATER, "water-bodies"), job, tmp_path)
    parent = Path(out["catalog"]["path"]) / "catalog.json"
    doc = json.loads(parent.read_text())
    assert doc["id"] == "water-bodies"
    children = [link["href"] for link in doc["links"] if link["rel"] == "child"]
    assert len(set(children)) == 2  # one catalog per item
    assert validate_catalog(parent, SCHEMAS) == 5  # parent, 2 children, 2 items
    masks = sorted(parent.parent.rglob("water.tif"))
    assert len(masks) == 2
    first, second = read(masks[0])[0], read(masks[1])[0]
    assert np.array_equal(first, second)
    assert first.shape[0] < 768 and first.shape[1] < 1536  # cropped to the AOI
    item_json = next(p for p in parent.parent.rglob("*-water.json"))
    aoi = json.loads(item_json.read_text())["properties"]["water:aoi"]
    assert aoi == box


@pytest.mark.slow
def test_cwltool_item_without_nir_fails_with_the_library_message(tmp_path: Path) -> None:
    from tests.support.cwl import WATER, cwltool, directory, run_cwl, write_product

    product = write_product(tmp_path / "staged", "s2-l1c-no-b08", drop_band="B08")
    job = {"items": [directory(product)]}
    r, _ = run_cwl(cwltool(tmp_path, WATER, "water-bodies"), job, tmp_path, check=False)
    assert r.returncode != 0
    message = r.stderr.split("app-package water-bodies: error:", 1)[1].splitlines()[0]
    assert "band B08 missing" in message


def test_strips_end_on_block_rows() -> None:
    """An AOI starting mid-tile reads up to the next tile row first, then whole tile rows."""
    assert strip_edges(0, 2500, 1024, 1024) == [0, 1024, 2048, 2500]
    assert strip_edges(700, 2000, 1024, 1024) == [700, 1024, 2048, 2700]
    assert strip_edges(700, 200, 1024, 1024) == [700, 900]
    assert strip_edges(10, 300, 64, 100) == [10, 64, 128, 192, 256, 310]
    assert strip_edges(5, 20, 10980, 1024) == [5, 25]  # untiled file: plain strips
