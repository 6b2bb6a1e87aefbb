"""Clouds and snow are not land cover: the cloud mask (SCL for L2A, s2cloudless for L1C), the
cloud class in the map, the mask's COG and `eo:cloud_cover`, and L2A products end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from rasterio.crs import CRS
from rio_cogeo.cogeo import cog_validate

from app_package.cli import main
from app_package.defaults import SAMPLE_PRODUCT
from app_package.eo.bands import (
    CLASS_NODATA,
    CLOUD_CLASS,
    EUROSAT_FILE_BAND_ORDER,
    L2A_ABSENT_BANDS,
    SCL_CLASSES,
)
from app_package.eo.sentinel2 import L1C, L2A, open_product
from app_package.errors import DataError, InputError
from app_package.inference.classify import classify, classify_product
from app_package.inference.clouds import (
    CLOUD_MASK_METHODS,
    DEFAULT_CLOUD_MASK,
    DEFAULT_CLOUD_THRESHOLD,
    MASK_CIRRUS,
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_CLOUD_SHADOW,
    MASK_NODATA,
    MASK_SNOW,
    CloudMask,
    CloudMaskMethod,
    apply_cloud_class,
    cell_shares,
    check_threshold,
    choose_method,
    cloud_cover,
    scl_to_mask,
)
from app_package.inference.reader import product_grid, read_strips
from app_package.inference.tiling import ChipGrid
from app_package.model.source import resolve_model
from app_package.stac.validation import validate_catalog
from tests.conftest import REPO, SCHEMAS
from tests.inference.pictures import count, pixels
from tests.support.l2a import CLOUD_CHIPS, SHADOW_CHIP, SNOW_CHIP, write_cog_product
from tests.support.models import random_model

L2A_BANDS = tuple(b for b in EUROSAT_FILE_BAND_ORDER if b not in L2A_ABSENT_BANDS)
UTM33 = CRS.from_epsg(32633)


@pytest.fixture(scope="module")
def l2a_item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled subset as an earth-search L2A product (COGs, SCL with a written cloud)."""
    return write_cog_product(tmp_path_factory.mktemp("l2a") / "product")


@pytest.fixture(scope="module")
def model12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained SmallCNN on the 12 L2A bands (no B10)."""
    return random_model(tmp_path_factory.mktemp("m12") / "model", L2A_BANDS)


@pytest.fixture(scope="module")
def model13(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained SmallCNN on all 13 bands."""
    return random_model(tmp_path_factory.mktemp("m13") / "model")


def cloud_cells() -> np.ndarray:
    """The map cells (12 x 24) the written SCL makes Cloud at the default threshold."""
    expect = np.zeros((12, 24), dtype=bool)
    (r0, r1), (c0, c1) = CLOUD_CHIPS
    expect[r0:r1, c0:c1] = True
    expect[SNOW_CHIP] = True  # 3/4 snow; the 1/4 cloud-shadow chip stays land cover
    return expect


# ---------------------------------------------------------------- the pure core
def test_scl_classes_map_to_mask_values() -> None:
    scl = np.array(sorted(SCL_CLASSES), dtype=np.uint8)
    got = dict(zip(scl.tolist(), scl_to_mask(scl).tolist(), strict=True))
    assert got == {
        0: MASK_NODATA, 1: MASK_CLEAR, 2: MASK_CLEAR, 3: MASK_CLOUD_SHADOW, 4: MASK_CLEAR,
        5: MASK_CLEAR, 6: MASK_CLEAR, 7: MASK_CLEAR, 8: MASK_CLOUD, 9: MASK_CLOUD,
        10: MASK_CIRRUS, 11: MASK_SNOW,
    }  # fmt: skip


def test_cell_shares_are_area_shares_of_the_valid_mask_pixels() -> None:
    rng = np.random.default_rng(0)
    values = rng.choice([MASK_CLEAR, MASK_CLOUD, MASK_SNOW, MASK_NODATA], size=(64, 96))
    values = values.astype(np.uint8)
    values[:32, :32] = MASK_NODATA  # cells with no valid pixel at all
    mask = CloudMask(values, Affine(20, 0, 330000, 0, -20, 5822040), UTM33, CloudMaskMethod.SCL)
    cells = Affine(640, 0, 330000, 0, -640, 5822040)  # 32 x 32 mask pixels per cell
    got = cell_shares(mask, cells, (2, 3))
    blocks = values.reshape(2, 32, 3, 32).transpose(0, 2, 1, 3).reshape(2, 3, -1)
    valid = (blocks != MASK_NODATA).sum(-1)
    masked = np.isin(blocks, [MASK_CLOUD, MASK_SNOW]).sum(-1)
    with np.errstate(invalid="ignore"):
        expect = masked / valid
    assert np.isnan(got[0, 0]) and np.isnan(expect[0, 0])
    np.testing.assert_allclose(got[~np.isnan(expect)], expect[~np.isnan(expect)], atol=1e-6)
    # a coarser mask (160 m) over finer cells (320 m, stride 32): each cell one quarter pixel
    coarse = CloudMask(
        np.array([[MASK_CLOUD, MASK_CLEAR]], dtype=np.uint8),
        Affine(640, 0, 0, 0, -640, 0),
        UTM33,
        CloudMaskMethod.S2CLOUDLESS,
    )
    np.testing.assert_array_equal(
        cell_shares(coarse, Affine(320, 0, 0, 0, -320, 0), (2, 4)), [[1, 1, 0, 0], [1, 1, 0, 0]]
    )


def test_cells_above_the_threshold_become_cloud_nodata_stays() -> None:
    classes = np.array([[1, 2, 3, CLASS_NODATA]], dtype=np.uint8)
    confidence = np.array([[0.9, 0.8, 0.7, np.nan]], dtype=np.float32)
    shares = np.array([[0.5, 0.51, np.nan, 1.0]], dtype=np.float32)
    got, conf = apply_cloud_class(classes, confidence, shares, 0.5)
    assert got.tolist() == [[1, CLOUD_CLASS.value, 3, CLASS_NODATA]]  # above, not at
    assert np.isnan(conf[0, 1]) and conf[0, 0] == np.float32(0.9)
    assert classes[0, 1] == 2  # the input is not changed
    assert cloud_cover(got) == pytest.approx(100 / 3, abs=0.01)
    assert cloud_cover(np.full((2, 2), CLASS_NODATA, dtype=np.uint8)) == 0.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", float("nan")])
def test_threshold_must_be_a_share(bad: object) -> None:
    with pytest.raises(InputError, match="cloud threshold") as e:
        check_threshold(bad)  # type: ignore[arg-type]
    assert e.value.field == "cloud_threshold"


# ---------------------------------------------------------------- choosing the method
def test_auto_picks_scl_for_l2a_s2cloudless_for_l1c_none_without_b10(
    l2a_item: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    l2a, l1c = open_product(l2a_item), open_product(SAMPLE_PRODUCT)
    assert (l2a.level, l1c.level) == (L2A, L1C)
    assert choose_method(l2a, "auto") is CloudMaskMethod.SCL
    assert choose_method(l1c, "auto") is CloudMaskMethod.S2CLOUDLESS
    # an L2A product without its SCL asset: nothing to mask with, and the log says why
    item = json.loads(l2a_item.read_text())
    del item["assets"]["scl"]
    for a in item["assets"].values():
        a["href"] = str(l2a_item.parent / a["href"])
    (tmp_path / "item.json").write_text(json.dumps(item))
    bare = open_product(tmp_path / "item.json")
    assert bare.level == L2A and bare.scl is None
    with caplog.at_level(logging.INFO, logger="app_package.inference.clouds"):
        assert choose_method(bare, "auto") is CloudMaskMethod.NONE
    assert "lacks B10 for s2cloudless" in caplog.text
    assert choose_method(bare, "none") is CloudMaskMethod.NONE


def test_a_method_the_product_cannot_use_is_refused(l2a_item: Path) -> None:
    l2a, l1c = open_product(l2a_item), open_product(SAMPLE_PRODUCT)
    with pytest.raises(InputError, match=r"has none .*use 's2cloudless' for L1C") as e:
        choose_method(l1c, "scl")
    assert e.value.field == "cloud_mask"
    with pytest.raises(InputError, match="is an L2A product: use 'scl'"):
        choose_method(l2a, "s2cloudless")
    with pytest.raises(InputError, match=r"unknown cloud mask 'fog'.*auto, s2cloudless, scl, none"):
        choose_method(l1c, "fog")


# ---------------------------------------------------------------- L2A end to end
def test_l2a_dns_after_the_offset_are_the_l1c_sources(l2a_item: Path) -> None:
    """earth-search's raster:bands (scale 0.0001, offset -0.1) give -1000 DN: the chips of the
    L2A COGs (DN + 1000) equal those of the L1C JP2s they were written from."""
    l2a, l1c = open_product(l2a_item), open_product(SAMPLE_PRODUCT)
    assert {s.offset for s in l2a.bands.values()} == {-1000.0}
    assert "B10" not in l2a.bands and l2a.scl is not None and l2a.scl.asset_key == "scl"
    strips = []
    for p in (l2a, l1c):
        sources = p.require(L2A_BANDS)
        pgrid = product_grid(sources)
        grid = ChipGrid(pgrid.width, pgrid.height, 64, 64)
        strips.append(next(read_strips(sources, pgrid, grid, apply_offset=True)))
    assert strips[0].chips is not None and strips[1].chips is not None
    assert np.array_equal(strips[0].chips, strips[1].chips)
    assert np.array_equal(strips[0].valid, strips[1].valid)


def test_l2a_classifies_end_to_end_with_its_cloud_patch_as_cloud(
    l2a_item: Path, model12: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cat = classify(str(l2a_item), str(model12), out)
    assert validate_catalog(cat, SCHEMAS) == 2  # eo extension (eo:cloud_cover) included
    (item_path,) = out.glob("*/*-landcover.json")
    d = json.loads(item_path.read_text())
    folder = item_path.parent
    with rasterio.open(folder / "classification.tif") as ds:
        classes = ds.read(1)
        assert ds.colormap(1)[CLOUD_CLASS.value][:3] == CLOUD_CLASS.rgb
    with rasterio.open(folder / "confidence.tif") as ds:
        confidence = ds.read(1)
    valid = classes != CLASS_NODATA
    expect = cloud_cells() & valid
    assert np.array_equal(classes == CLOUD_CLASS.value, expect)
    assert (classes[valid & ~expect] < 10).all()  # elsewhere the model's land cover
    assert np.isnan(confidence[expect]).all()
    props = d["properties"]
    assert props["eo:cloud_cover"] == round(100 * expect.sum() / valid.sum(), 2)
    assert props["app-package:cloud_mask"] == "scl"
    assert any("/eo/" in e for e in d["stac_extensions"])
    names = {c["value"]: c["name"] for c in d["assets"]["classification"]["classification:classes"]}
    assert names[CLOUD_CLASS.value] == CLOUD_CLASS.name and names[255] == "nodata"
    mask = d["assets"]["cloud-mask"]
    assert (
        mask["href"] == "./cloud-mask.tif" and mask["bands"][0]["raster:spatial_resolution"] == 20
    )
    values = {c["value"]: c["name"] for c in mask["classification:classes"]}
    assert values == {0: "clear", 1: "cloud", 2: "cloud_shadow", 3: "cirrus", 4: "snow",
                      255: "nodata"}  # fmt: skip
    ok, errors, _ = cog_validate(str(folder / "cloud-mask.tif"))
    assert ok, errors
    with rasterio.open(folder / "cloud-mask.tif") as ds:
        m = ds.read(1)
        assert ds.res == (20.0, 20.0) and m.shape == (384, 768) and ds.nodata == 255
    assert set(np.unique(m)) == {MASK_CLEAR, MASK_CLOUD, MASK_CLOUD_SHADOW, MASK_SNOW}
    thumb = pixels(folder / "thumbnail.png")
    assert count(thumb, CLOUD_CLASS.rgb) > 150  # cells and a legend patch
    assert count(pixels(folder / "preview.png"), CLOUD_CLASS.rgb) > 0


def test_threshold_and_none_change_the_cloud_cells(l2a_item: Path, model12: Path) -> None:
    product = open_product(l2a_item)
    ref = resolve_model(str(model12))
    low = classify_product(product, ref.loader, ref.spec, device="cpu", cloud_threshold=0.2)
    none = classify_product(product, ref.loader, ref.spec, device="cpu", cloud_mask="none")
    valid = low.classes != CLASS_NODATA
    expect = cloud_cells()
    expect[SHADOW_CHIP] = True  # 1/4 cloud shadow is above 0.2
    assert np.array_equal(low.classes == CLOUD_CLASS.value, expect & valid)
    assert none.clouds is None and not (none.classes == CLOUD_CLASS.value).any()
    same = low.classes != CLOUD_CLASS.value
    assert np.array_equal(low.classes[same], none.classes[same])  # the cloud class only replaces
    assert low.times["cloud_mask_s"] > 0 and none.times["cloud_mask_s"] == 0


def test_a_model_needing_b10_fails_on_l2a_before_any_work(
    l2a_item: Path, model13: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app_package.inference.classify as classify_module

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the bands were checked")

    for name in ("read_strips", "begin_cloud_mask", "quicklook_or_none", "product_grid"):
        monkeypatch.setattr(classify_module, name, no_work, raising=False)
    monkeypatch.setattr("app_package.inference.thumbnail.quicklook_or_none", no_work)
    with pytest.raises(DataError) as e:
        classify(str(l2a_item), str(model13), tmp_path / "out")
    msg = str(e.value)
    assert "band B10 missing from L2A product S2A_T33UUU_20170216T102101_L2A" in msg
    assert "L2A products have no B10" in msg and "use a model trained without B10" in msg
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- L1C: s2cloudless
def test_s2cloudless_on_the_real_february_subset(model13: Path) -> None:
    """The bundled L1C scene has visible cloud streaks: s2cloudless masks a sane share."""
    product = open_product(SAMPLE_PRODUCT)
    ref = resolve_model(str(model13))
    r = classify_product(product, ref.loader, ref.spec, device="cpu")
    assert r.clouds is not None and r.clouds.method is CloudMaskMethod.S2CLOUDLESS
    assert r.clouds.values.shape == (48, 96) and r.clouds.resolution == 160.0
    assert 0.05 < r.clouds.masked_share() < 0.4  # measured 0.178
    cloudy = r.classes == CLOUD_CLASS.value
    assert 0.03 < cloudy.mean() < 0.4
    assert r.times["cloud_mask_s"] > 0


def test_s2cloudless_finds_a_written_bright_cloud(tmp_path: Path, model13: Path) -> None:
    item = write_cog_product(tmp_path / "l1c", level="L1C", synthetic_cloud=True)
    product = open_product(item)
    ref = resolve_model(str(model13))
    r = classify_product(product, ref.loader, ref.spec, device="cpu")
    (r0, r1), (c0, c1) = CLOUD_CHIPS
    assert (r.classes[r0:r1, c0:c1] == CLOUD_CLASS.value).all()


# ---------------------------------------------------------------- the doors
def test_cli_cloud_mask_and_threshold_options(
    l2a_item: Path, model12: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none"
    with pytest.raises(SystemExit) as e:
        main(["classify", str(l2a_item), "--model", str(model12), "--output", str(out),
              "--cloud-mask", "none", "--device", "cpu"])  # fmt: skip
    assert e.value.code == 0
    (item_path,) = out.glob("*/*-landcover.json")
    d = json.loads(item_path.read_text())
    assert "cloud-mask" not in d["assets"] and "eo:cloud_cover" not in d["properties"]
    with rasterio.open(item_path.parent / "classification.tif") as ds:
        assert not (ds.read(1) == CLOUD_CLASS.value).any()
    capsys.readouterr()
    for argv, text in (
        (["--cloud-mask", "scl"], "(option --cloud-mask)"),
        (["--cloud-threshold", "2"], "(option --cloud-threshold)"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["classify", str(SAMPLE_PRODUCT), "--model", str(model12), "--output",
                  str(tmp_path / "bad"), *argv])  # fmt: skip
        assert e.value.code == 2
        assert text in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_process_and_cwl_offer_the_same_cloud_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from processes.classification import PROCESS_METADATA, ClassificationProcessor

    inputs = PROCESS_METADATA["inputs"]
    assert inputs["cloud_mask"]["schema"]["enum"] == list(CLOUD_MASK_METHODS)
    assert inputs["cloud_mask"]["schema"]["default"] == DEFAULT_CLOUD_MASK
    assert inputs["cloud_threshold"]["schema"]["default"] == DEFAULT_CLOUD_THRESHOLD
    doc = yaml.safe_load((REPO / "cwl" / "tile-classification.cwl").read_text())
    for g in doc["$graph"]:
        if g["id"] in ("tile-classification", "classify"):
            assert g["inputs"]["cloud_mask"]["type"][1]["symbols"] == list(CLOUD_MASK_METHODS)
            assert g["inputs"]["cloud_threshold"]["type"] == "float?"
    seen: list[dict[str, object]] = []

    def fake_classify(product: str, model: str, output: Path, **kw: object) -> Path:
        seen.append(kw)
        output.mkdir()
        (output / "catalog.json").write_text('{"type": "Catalog"}')
        return output / "catalog.json"

    monkeypatch.setattr("app_package.inference.classify.classify", fake_classify)
    proc = ClassificationProcessor({"name": "tile-classification", "data_dir": str(tmp_path)})
    proc.execute({"model": "m", "cloud_mask": "scl", "cloud_threshold": 0.2})
    proc.execute({"model": "m"})
    assert [(k["cloud_mask"], k["cloud_threshold"]) for k in seen] == [
        ("scl", 0.2),
        (DEFAULT_CLOUD_MASK, DEFAULT_CLOUD_THRESHOLD),
    ]


def test_the_shipped_default_model_classifies_l1c_and_l2a_alike(
    l2a_item: Path, tmp_path: Path
) -> None:
    """The default model (12 bands) runs on the bundled L1C subset and on the same pixels as an
    earth-search L2A product; clouds come out as Cloud in both (s2cloudless / SCL), and the land
    cover elsewhere is the same, since the L2A DNs are the L1C ones after BOA_ADD_OFFSET."""
    from app_package.defaults import DEFAULT_MODEL_CATALOG, SAMPLE_PRODUCT

    maps, props = [], []
    for name, product in (("l1c", SAMPLE_PRODUCT), ("l2a", l2a_item)):
        out = tmp_path / name
        classify(str(product), str(DEFAULT_MODEL_CATALOG), out)
        (item_path,) = out.glob("*/*-landcover.json")
        props.append(json.loads(item_path.read_text())["properties"])
        with rasterio.open(item_path.parent / "classification.tif") as ds:
            maps.append(ds.read(1))
    l1c, l2a = maps
    assert props[0]["app-package:cloud_mask"] == "s2cloudless"
    assert props[1]["app-package:cloud_mask"] == "scl"
    assert 5 < props[0]["eo:cloud_cover"] < 40  # the two cloud streaks of the February scene
    assert np.array_equal(l2a == CLOUD_CLASS.value, cloud_cells() & (l2a != CLASS_NODATA))
    land = (l1c < CLOUD_CLASS.value) & (l2a < CLOUD_CLASS.value)
    assert land.sum() > 100 and (l1c[land] == l2a[land]).all()


def test_the_benchmarks_full_size_l2a_product_mirrors_the_real_bands(tmp_path: Path) -> None:
    """`write_cog_product(size=…, blocksize=…)`, which builds the classify benchmark's L2A
    product: every band mirrored out to the size at its own resolution, the real pixels (+ the
    L2A offset) top left, valid COGs with the asked block size, the SCL on the 20 m grid."""
    from rio_cogeo.cogeo import cog_validate

    item = write_cog_product(tmp_path / "p", size=2048, blocksize=256)
    doc = json.loads(item.read_text())
    src = json.loads(SAMPLE_PRODUCT.read_text())
    for key, want in (("blue", 2048), ("swir16", 1024), ("coastal", 341), ("scl", 1024)):
        path = item.parent / doc["assets"][key]["href"]
        with rasterio.open(path) as ds:
            assert (ds.width, ds.height) == (want, want), key
            assert ds.block_shapes[0] == (256, 256) or want <= 256
            data = ds.read(1)
        assert cog_validate(str(path))[0], key
        if key == "blue":
            with rasterio.open(SAMPLE_PRODUCT.parent / src["assets"]["B02"]["href"]) as ds:
                real = ds.read(1).astype(np.int32)
            h, w = real.shape
            assert np.array_equal(data[:h, :w], np.where(real > 0, real + 1000, 0))
            assert np.array_equal(data[h : 2 * h, :w], data[:h, :w][::-1])  # mirrored
