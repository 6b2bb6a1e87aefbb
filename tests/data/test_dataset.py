"""Loading labelled chips from STAC: static (file and HTTP), GeoParquet, a real STAC API server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests

from app_package.data.dataset import (
    LabelledChips,
    list_items,
    load_labelled_chips,
    stratified_split,
)
from app_package.data.eurosat_stac import eurosat_to_stac
from app_package.eo.bands import EUROSAT_CLASS_NAMES
from app_package.errors import DataError, InputError, NotFoundError
from tests.support.datagen import write_eurosat_tree
from tests.support.httpserve import serve_directory
from tests.support.stac_api import running_stac_api

COUNTS = {name: 5 + (i % 3) for i, name in enumerate(EUROSAT_CLASS_NAMES)}  # 5, 6 or 7 chips


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_eurosat_tree(tmp_path_factory.mktemp("ds") / "EuroSAT_MS", COUNTS, seed=3)


@pytest.fixture(scope="module")
def catalog(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = {f"{n}_{k}": ("train", "val", "test")[k % 3] for n in COUNTS for k in range(1, 8)}
    dest = tmp_path_factory.mktemp("cat") / "cat"
    return eurosat_to_stac(tree, dest, geoparquet=True, splits=splits)


@pytest.fixture(scope="module")
def catalog_no_parquet(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return eurosat_to_stac(tree, tmp_path_factory.mktemp("cat2") / "cat")


def _collection(catalog_json: Path) -> Path:
    return catalog_json.parent / "eurosat-ms" / "collection.json"


def _same(a: LabelledChips, b: LabelledChips) -> None:
    assert a.item_ids == b.item_ids
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.digest() == b.digest()


def test_static_load_all_matches_files(catalog_no_parquet: Path, tree: Path) -> None:
    assert list_items(str(catalog_no_parquet))[1] == "static"
    d = load_labelled_chips(str(catalog_no_parquet), bands=["B04", "B8A"])
    assert d.x.dtype == np.uint16 and d.y.dtype == np.int64
    assert d.x.shape == (sum(COUNTS.values()), 2, 64, 64)
    assert d.counts() == COUNTS
    assert d.bands == ("B04", "B8A")
    i = d.item_ids.index("Highway_4")
    assert EUROSAT_CLASS_NAMES[d.y[i]] == "Highway"
    with rasterio.open(tree / "Highway" / "Highway_4.tif") as src:
        raw = src.read()
    np.testing.assert_array_equal(d.x[i, 0], raw[3])  # B04: 4th band in the file
    np.testing.assert_array_equal(d.x[i, 1], raw[12])  # B8A: LAST band in the file


def test_geoparquet_preferred_and_identical(catalog: Path, catalog_no_parquet: Path) -> None:
    assert list_items(str(_collection(catalog)))[1] == "geoparquet"
    a = load_labelled_chips(str(_collection(catalog)), samples_per_class=4, seed=7)
    b = load_labelled_chips(str(catalog_no_parquet), samples_per_class=4, seed=7)
    _same(a, b)
    assert a.source.endswith("collection.json")


def test_sampling_is_stratified_seeded_not_first_n(catalog_no_parquet: Path) -> None:
    ref = str(catalog_no_parquet)
    a = load_labelled_chips(ref, bands=["B02"], samples_per_class=3, seed=1)
    assert a.counts() == dict.fromkeys(EUROSAT_CLASS_NAMES, 3)
    _same(a, load_labelled_chips(ref, bands=["B02"], samples_per_class=3, seed=1))
    draws = {
        load_labelled_chips(ref, bands=["B02"], samples_per_class=3, seed=s).digest()
        for s in range(4)
    }
    assert len(draws) > 1, "different seeds must draw different chips"
    firsts = {f"{n}_{k}" for n in EUROSAT_CLASS_NAMES for k in (1, 2, 3)}
    assert set(a.item_ids) != firsts


def test_digest_tracks_bands_and_ids(catalog_no_parquet: Path) -> None:
    ref = str(catalog_no_parquet)
    a = load_labelled_chips(ref, bands=["B02", "B03"], samples_per_class=2)
    b = load_labelled_chips(ref, bands=["B03", "B02"], samples_per_class=2)
    assert a.item_ids == b.item_ids and a.digest() != b.digest()
    np.testing.assert_array_equal(a.x[:, 0], b.x[:, 1])


def test_split_property_filter(catalog: Path) -> None:
    d = load_labelled_chips(str(catalog), bands=["B02"], split="val")
    assert all(int(i.rsplit("_", 1)[1]) % 3 == 1 for i in d.item_ids)  # see `catalog`
    assert len(d.item_ids) == sum(len(range(1, c + 1, 3)) for c in COUNTS.values())
    with pytest.raises(InputError, match="split='dev'"):
        load_labelled_chips(str(catalog), split="dev")


def test_errors(catalog_no_parquet: Path, tmp_path: Path) -> None:
    ref = str(catalog_no_parquet)
    with pytest.raises(InputError, match=r"class AnnualCrop has only 5 chips"):
        load_labelled_chips(ref, samples_per_class=6)
    with pytest.raises(InputError, match="unknown band 'B13'"):
        load_labelled_chips(ref, bands=["B13"])
    assert list_items(str(catalog_no_parquet.parent))[0] == list_items(ref)[0]  # a folder
    with pytest.raises(NotFoundError, match=r"holds no catalog\.json"):
        load_labelled_chips(str(tmp_path))
    with pytest.raises(NotFoundError, match=r"nope\.json"):
        load_labelled_chips(str(tmp_path / "nope.json"))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"type": "Catalog", "id": "e", "links": []}))
    with pytest.raises(DataError, match=r"no items found in .*empty\.json"):
        load_labelled_chips(str(empty))
    port = free_port()
    with pytest.raises(NotFoundError, match=f"127.0.0.1:{port}"):
        load_labelled_chips(f"http://127.0.0.1:{port}/catalog.json")


def test_missing_chip_named(tree: Path, tmp_path: Path) -> None:
    out = eurosat_to_stac(tree, tmp_path / "c")
    (out.parent / "eurosat-ms" / "River_2" / "River_2.tif").unlink()
    with pytest.raises(DataError, match=r"River_2\.tif"):
        load_labelled_chips(str(out), bands=["B02"])


def test_stratified_split() -> None:
    y = np.repeat(np.arange(4), [10, 20, 5, 40])
    tr, va, te = stratified_split(y, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == 0
    assert len(np.intersect1d(va, te)) == 0
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(len(y)))
    for c, n in zip(range(4), [10, 20, 5, 40], strict=True):
        assert (y[va] == c).sum() == max(1, round(n * 0.2))
        assert (y[te] == c).sum() == max(1, round(n * 0.2))
    again = stratified_split(y, val_fraction=0.2, test_fraction=0.2, seed=0)
    for a, b in zip((tr, va, te), again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = stratified_split(y, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert not np.array_equal(va, other[1])
    with pytest.raises(InputError, match=r"class Highway has 2 chips"):
        stratified_split(np.array([0, 0, 0, 3, 3]), val_fraction=0.3, test_fraction=0.3, seed=0)
    with pytest.raises(InputError, match="sum must be < 1"):
        stratified_split(y, val_fraction=0.5, test_fraction=0.5, seed=0)


def test_static_over_http(catalog_no_parquet: Path, catalog: Path) -> None:
    local = load_labelled_chips(str(catalog_no_parquet), samples_per_class=2, seed=5)
    with serve_directory(catalog.parent) as (base, log):
        remote = load_labelled_chips(f"{base}catalog.json", samples_per_class=2, seed=5)
        parquet = load_labelled_chips(
            f"{base}eurosat-ms/collection.json", samples_per_class=2, seed=5
        )
    _same(local, remote)
    _same(local, parquet)
    assert any(p.endswith("items.parquet") for p, _ in log.requests)


# ---------------------------------------------------------------- STAC API on loopback
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stac_api(catalog_no_parquet: Path) -> Iterator[str]:
    with running_stac_api(catalog_no_parquet) as url:
        yield url


@pytest.mark.slow
def test_stac_api_same_chips(stac_api: str, catalog_no_parquet: Path) -> None:
    ref = f"{stac_api}/collections/eurosat-ms"
    landing = requests.get(f"{stac_api}/", timeout=10).json()
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    items, how = list_items(ref)
    assert how == "api" and len(items) == sum(COUNTS.values())
    api = load_labelled_chips(ref, bands=["B8A", "B02"], samples_per_class=3, seed=11)
    static = load_labelled_chips(
        str(catalog_no_parquet), bands=["B8A", "B02"], samples_per_class=3, seed=11
    )
    _same(api, static)
    assert api.source == ref
    with pytest.raises(InputError, match="landing page"):
        load_labelled_chips(f"{stac_api}/")


# ---------------------------------------------------------------- real data
def test_real_subset(shared_data: Path, tmp_path: Path) -> None:
    out = eurosat_to_stac(
        shared_data / "eurosat-ms-subset" / "train", tmp_path / "c", geoparquet=True
    )
    a = load_labelled_chips(str(out), samples_per_class=10, seed=0)
    b = load_labelled_chips(
        str(out.parent / "eurosat-ms" / "collection.json"), samples_per_class=10, seed=0
    )
    _same(a, b)
    assert a.x.shape == (100, 13, 64, 64)
    assert a.counts() == dict.fromkeys(EUROSAT_CLASS_NAMES, 10)
    # real L1C DNs: B10 (cirrus) is tiny, visible/NIR bands are in the thousands
    b10, b08 = a.bands.index("B10"), a.bands.index("B08")
    assert a.x[:, b10].mean() < 100 < a.x[:, b08].mean()


@pytest.mark.slow
def test_real_subset_through_stac_api(shared_data: Path, tmp_path: Path) -> None:
    out = eurosat_to_stac(shared_data / "eurosat-ms-subset" / "train", tmp_path / "c")
    static = load_labelled_chips(str(out), bands=["B04", "B03", "B02"], samples_per_class=8)
    with running_stac_api(out) as url:
        ref = f"{url}/collections/eurosat-ms"
        assert list_items(ref)[1] == "api"
        api = load_labelled_chips(ref, bands=["B04", "B03", "B02"], samples_per_class=8)
    _same(static, api)
    assert len(api.item_ids) == 80
