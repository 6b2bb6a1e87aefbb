"""Opening Sentinel-2 products: bands by name, metadata, offsets, staged-in folders, bad input."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app_package.eo.bands import EUROSAT_FILE_BAND_ORDER, S2_BAND_NAMES
from app_package.eo.sentinel2 import needs_offset, open_product, parse_mtd
from app_package.errors import DataError, NotFoundError
from app_package.inference.reader import Strip, product_grid, read_strips
from app_package.inference.tiling import ChipGrid
from tests.support.datagen import write_jp2, write_s2_item, write_safe

METADATA = "s2-l1c-metadata"


@pytest.mark.parametrize("style", ["B", "common", "eo"])
@pytest.mark.parametrize("stac_11", [False, True])
def test_bands_found_by_name_whatever_the_asset_keys(
    tmp_path: Path, s2_jp2: dict, style: str, stac_11: bool
) -> None:
    item = write_s2_item(tmp_path / "item.json", s2_jp2, style=style, stac_11_bands=stac_11)
    p = open_product(item)
    assert sorted(p.bands) == sorted(S2_BAND_NAMES)
    for name, f in s2_jp2.items():
        assert Path(p.bands[name].href) == f.resolve(), name  # each band its own file
    assert "thumbnail" in p.asset_keys and p.datetime.year == 2017


def test_eurosat_band_order_maps_b8a_last_by_name(tmp_path: Path, s2_jp2: dict) -> None:
    """A model listing bands in EuroSAT file order (B8A last) gets B8A's pixels in channel 12."""
    p = open_product(write_s2_item(tmp_path / "item.json", s2_jp2, style="common"))
    sources = p.require(EUROSAT_FILE_BAND_ORDER)
    assert [s.name for s in sources] == list(EUROSAT_FILE_BAND_ORDER)
    assert sources[-1].asset_key == "nir08" and sources[8].asset_key == "nir09"
    pgrid = product_grid(sources)
    grid = ChipGrid(pgrid.width, pgrid.height, 64, 64)
    strip = next(read_strips(sources, pgrid, grid, apply_offset=True))
    assert strip.chips is not None
    import rasterio

    with rasterio.open(s2_jp2["B8A"]) as ds:
        b8a = ds.read(1)
    # chip 1 (row 0, col 1) channel 12: B8A (20 m) upsampled by nearest neighbour
    expect = np.repeat(np.repeat(b8a[:32, 32:64], 2, 0), 2, 1)
    assert np.array_equal(strip.chips[1, 12], expect)
    assert not np.array_equal(strip.chips[1, 7], expect)  # B08 is channel 7, not B8A


def test_real_metadata_offsets(shared_data: Path) -> None:
    folder = shared_data / METADATA
    new = parse_mtd(next(folder.glob("*N0400*")))
    old = parse_mtd(next(folder.glob("*N0209*")))
    assert new.processing_baseline == "04.00" and needs_offset(new.processing_baseline)
    assert set(new.offsets.values()) == {-1000.0} and len(new.offsets) == 13
    assert old.processing_baseline == "02.09" and not needs_offset(old.processing_baseline)
    assert set(old.offsets.values()) == {0.0}
    assert new.quantification_value == old.quantification_value == 10000.0
    assert new.start_time is not None and new.start_time.year == 2022
    assert new.product_uri.startswith("S2B_MSIL1C_20220615")


@pytest.mark.parametrize(("baseline", "shift"), [("04.00", -1000), ("02.09", 0)])
def test_offset_applied_for_baseline_04_only(
    tmp_path: Path, s2_jp2: dict, s2_bands10: dict, baseline: str, shift: int
) -> None:
    safe = write_safe(tmp_path, s2_jp2, baseline=baseline)
    p = open_product(safe)
    assert p.processing_baseline == baseline
    sources = p.require(("B02",))
    pgrid = product_grid(sources)
    grid = ChipGrid(pgrid.width, pgrid.height, 64, 64)
    strip = next(read_strips(sources, pgrid, grid, apply_offset=True))
    assert strip.chips is not None
    raw = s2_bands10["B02"][:64, :64].astype(np.int32)
    expect = np.where(raw == 0, 0, np.clip(raw + shift, 1, None))
    assert np.array_equal(strip.chips[0, 0].astype(np.int32), expect)
    assert (strip.chips[0, 0] == 0).sum() == (raw == 0).sum()  # nodata stays nodata, no more
    # a model trained on offset-corrected DNs disabled: raw DNs
    strip = next(read_strips(sources, pgrid, grid, apply_offset=False))
    assert strip.chips is not None
    assert np.array_equal(strip.chips[0, 0].astype(np.int32), raw)


def test_item_offsets_from_baseline_or_raster_extension(tmp_path: Path, s2_jp2: dict) -> None:
    item = write_s2_item(tmp_path / "a.json", s2_jp2, baseline="05.10")
    assert open_product(item).bands["B02"].offset == -1000.0
    d = json.loads(item.read_text())
    d["properties"].pop("s2:processing_baseline")
    d["assets"]["B04"]["raster:bands"] = [{"offset": -0.1, "scale": 0.0001}]
    item.write_text(json.dumps(d))
    p = open_product(item)
    assert p.bands["B04"].offset == pytest.approx(-1000.0)
    assert p.bands["B02"].offset == 0.0


def test_staged_in_folder_and_catalog(tmp_path: Path, s2_jp2: dict) -> None:
    stage = tmp_path / "stage"
    item = write_s2_item(stage / "item" / "item.json", s2_jp2, style="common")
    cat = {
        "type": "Catalog", "id": "staged", "stac_version": "1.0.0", "description": "stage-in",
        "links": [{"rel": "item", "href": "./item/item.json", "type": "application/json"}],
    }  # fmt: skip
    (stage / "catalog.json").write_text(json.dumps(cat))
    p = open_product(stage)
    assert p.source_href == str(item.resolve())
    assert sorted(p.bands) == sorted(S2_BAND_NAMES)


def test_item_over_http(tmp_path: Path, s2_jp2: dict) -> None:
    """A STAC item URL: relative asset hrefs resolve to URLs that GDAL reads."""
    root = next(iter(s2_jp2.values())).parent.parent
    write_s2_item(root / "items" / "item.json", s2_jp2, style="B")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/items/item.json"
        p = open_product(url)
        assert p.bands["B03"].href.startswith("http://127.0.0.1")
        pgrid = product_grid(p.require(("B03", "B09")))
        assert (pgrid.width, pgrid.height) == (420, 300)
    finally:
        server.shutdown()
        server.server_close()


def test_missing_band_names_band_and_assets(tmp_path: Path, s2_jp2: dict) -> None:
    files = {k: v for k, v in s2_jp2.items() if k != "B10"}
    p = open_product(write_s2_item(tmp_path / "i.json", files, style="common"))
    with pytest.raises(DataError, match=r"B10 missing .*assets present are .*coastal"):
        p.require(EUROSAT_FILE_BAND_ORDER)


def test_item_without_datetime(tmp_path: Path, s2_jp2: dict) -> None:
    item = write_s2_item(tmp_path / "i.json", s2_jp2, datetime_str=None)
    with pytest.raises(DataError, match="no datetime"):
        open_product(item)


def test_mixed_crs_is_refused(tmp_path: Path, s2_jp2: dict, s2_bands10: dict) -> None:
    files = dict(s2_jp2)
    files["B03"] = write_jp2(tmp_path / "B03.jp2", s2_bands10["B03"], 10.0, epsg=32632)
    p = open_product(write_s2_item(tmp_path / "i.json", files))
    with pytest.raises(DataError, match="different CRSs"):
        product_grid(p.require(("B02", "B03")))


def test_not_found_and_safe_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        open_product(tmp_path / "nope.json")
    (tmp_path / "X.SAFE").mkdir()
    with pytest.raises(DataError, match=r"MTD_MSIL1C\.xml"):
        open_product(tmp_path / "X.SAFE")


@pytest.mark.parametrize("block", [16, 1])
def test_band_rows_decodes_each_block_once(tmp_path: Path, block: int) -> None:
    """Strips moving down a band get exactly the rows of direct windowed reads, while each file
    block row is decoded once (GDAL's JPEG2000 driver would decode it again per strip)."""
    import rasterio
    from rasterio.transform import from_origin

    from app_package.inference.reader import BandRows

    rng = np.random.default_rng(3)
    data = rng.integers(1, 5000, size=(70, 48), dtype=np.uint16)
    path = tmp_path / "b.tif"
    opts = {"tiled": True, "blockxsize": 16, "blockysize": 16} if block == 16 else {}
    with rasterio.open(
        path, "w", driver="GTiff", width=48, height=70, count=1, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(0, 0, 60, 60), **opts,
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    with rasterio.open(path) as ds:
        reads: list[tuple[int, int]] = []
        real = ds.read

        def spy(*args: Any, window: Any = None, **kw: Any) -> Any:  # the decodes GDAL does
            reads.append((int(window.row_off), int(window.row_off + window.height)))
            return real(*args, window=window, **kw)

        ds.read = spy  # the dataset's own read: what BandRows asks GDAL to decode
        rows = BandRows(ds, "B01", str(path))
        for n0, n1 in [(0, 5), (4, 11), (10, 17), (17, 40), (39, 70)]:  # overlapping, like 60 m
            assert np.array_equal(rows.read(n0, n1), data[n0:n1])
        decoded = [r for a, b in reads for r in range(a, b)]
        assert sorted(decoded) == list(range(70))  # every row decoded exactly once
        assert np.array_equal(rows.read(2, 6), data[2:6])  # moving up starts over, still right


def _pixels(strip: Strip) -> np.ndarray:
    """A copy of what a strip carries: its chips, or its pixel block."""
    pixels = strip.chips if strip.chips is not None else strip.block
    assert pixels is not None
    return pixels.copy()


@pytest.mark.parametrize("extract", [True, False], ids=["chips", "blocks"])
def test_reused_strip_buffers_give_the_strips_of_fresh_arrays(
    tmp_path: Path, s2_jp2: dict, extract: bool
) -> None:
    """Strips built in a ring of reused buffers, consumed one at a time behind the reader thread
    as classify_product does, equal strips built in fresh arrays (no strip overwritten early),
    whether they carry extracted chips or the pixel block (window features)."""
    from app_package.inference.reader import PREFETCH_DEPTH, Prefetch

    p = open_product(write_s2_item(tmp_path / "item.json", s2_jp2, style="common"))
    sources = p.require(EUROSAT_FILE_BAND_ORDER)
    pgrid = product_grid(sources)
    grid = ChipGrid(pgrid.width, pgrid.height, 64, 32)  # overlapping chips, many strips
    fresh = [
        (s.r0, _pixels(s), s.valid.copy())
        for s in read_strips(sources, pgrid, grid, apply_offset=True, chip_rows=1, extract=extract)
    ]
    assert len(fresh) > PREFETCH_DEPTH + 2
    reused = read_strips(
        sources, pgrid, grid, apply_offset=True, chip_rows=1, buffers=PREFETCH_DEPTH + 2,
        extract=extract,
    )  # fmt: skip
    seen = []
    with Prefetch(reused, PREFETCH_DEPTH) as ahead:
        import time

        time.sleep(0.2)  # the reader starts at once: it fills the queue before we iterate
        for strip in ahead:
            time.sleep(0.01)  # the reader runs ahead while this strip is "classified"
            seen.append((strip.r0, _pixels(strip), strip.valid.copy()))
    assert len(seen) == len(fresh)
    for (r0, chips, valid), (f0, fchips, fvalid) in zip(seen, fresh, strict=True):
        assert r0 == f0 and np.array_equal(chips, fchips) and np.array_equal(valid, fvalid)
