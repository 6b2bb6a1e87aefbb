"""Thumbnails: the legend lists what the map holds, the class colours are in the picture, the
true-colour side is not blank, nodata is drawn and listed, the quicklook is read decimated with
the baseline-04.00 offset removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app_package.eo.sentinel2 import open_product
from app_package.errors import DataError
from app_package.inference.thumbnail import (
    NODATA_LABEL,
    LegendEntry,
    MapLayer,
    Swatch,
    legend_entries,
    product_thumbnail,
    read_quicklook,
    thumbnail_png,
    true_colour,
)
from tests.inference.pictures import count, left_panel, pixels
from tests.support.datagen import S2_TEST_ORIGIN, write_jp2_bands, write_s2_item

SWATCHES = (
    Swatch(0, "Annual crop", (230, 194, 41)),
    Swatch(1, "Forest", (27, 94, 32)),
    Swatch(2, "River", (33, 150, 243)),
    Swatch(3, "Industrial", (183, 28, 28)),
)
QUICKLOOK_GREEN = (10, 200, 30)  # a colour no swatch has


def layer(values: np.ndarray, extent: tuple[float, float, float, float]) -> MapLayer:
    return MapLayer(values, SWATCHES, 255, extent, "Land cover")


def test_legend_lists_the_classes_present_their_shares_and_nodata() -> None:
    values = np.array([[0, 0, 1, 255], [0, 1, 1, 1]], dtype=np.uint8)
    entries = legend_entries(layer(values, (0, 0, 4, 2)))
    assert entries == [
        LegendEntry("Annual crop", (230, 194, 41), 3 / 7),  # of the valid cells
        LegendEntry("Forest", (27, 94, 32), 4 / 7),
        LegendEntry(NODATA_LABEL, None, 1 / 8),  # of all cells
    ]
    assert [e.text for e in entries] == ["Annual crop  42.9 %", "Forest  57.1 %", "No data  12.5 %"]
    assert legend_entries(layer(np.zeros((3, 3), np.uint8), (0, 0, 3, 3))) == [
        LegendEntry("Annual crop", (230, 194, 41), 1.0)
    ]


def test_true_colour_scales_like_eurosat_rgb_and_hides_nodata() -> None:
    dn = np.array([[0, 1, 1375, 2750, 9000]], dtype=np.uint16)
    rgba = true_colour(dn, dn, np.full_like(dn, 500))
    assert rgba[0, :, 0].tolist() == [1, 1, 127, 255, 255]
    assert rgba[0, :, 3].tolist() == [0, 255, 255, 255, 255]  # DN 0 in any band: transparent


@pytest.mark.parametrize("shape", [(60, 120), (90, 90), (150, 40)])
def test_picture_has_the_map_colours_the_quicklook_and_fits_1024(
    shape: tuple[int, int],
) -> None:
    rows, cols = shape
    values = np.zeros(shape, np.uint8)
    values[:, cols // 3 :] = 1
    values[rows // 2 :, : cols // 2] = 2
    values[: rows // 5, : cols // 5] = 255
    extent = (0.0, 0.0, cols * 100.0, rows * 100.0)
    quicklook = np.zeros((rows, cols, 4), np.uint8)
    quicklook[...] = (*QUICKLOOK_GREEN, 255)
    png = thumbnail_png(
        layer(values, extent), extent, title="S2A_TEST", subtitle="model x", quicklook=quicklook
    )
    img = pixels(png)
    for s in SWATCHES[:3]:  # in the map panel and the legend
        assert count(img, s.rgb) > 200, s
    assert count(img, SWATCHES[3].rgb) == 0  # absent: neither drawn nor in the legend
    assert (
        count(left_panel(img), QUICKLOOK_GREEN)
        > 0.9 * left_panel(img).shape[0] * left_panel(img).shape[1]
    )
    # nodata: transparent over white with grey hatching, so no class colour where it lies
    alone = pixels(thumbnail_png(layer(values, extent), extent, title="S2A_TEST"))
    assert count(alone, QUICKLOOK_GREEN) == 0 and count(alone, SWATCHES[0].rgb) > 200


def test_quicklook_nodata_is_in_the_legend_even_when_the_map_has_none() -> None:
    values = np.zeros((10, 10), np.uint8)
    extent = (0.0, 0.0, 1000.0, 1000.0)
    quicklook = np.full((50, 50, 4), 120, np.uint8)
    quicklook[..., 3] = 255
    quicklook[:5, :5, 3] = 0
    without = pixels(
        thumbnail_png(
            layer(values, extent),
            extent,
            title="t",
            quicklook=np.where(quicklook > 0, quicklook, 255),
        )
    )
    with_ = pixels(thumbnail_png(layer(values, extent), extent, title="t", quicklook=quicklook))
    # the legend's hatched nodata patch adds grey hatch pixels
    hatch = (117, 117, 117)
    assert count(with_, hatch) > count(without, hatch)


def test_quicklook_is_read_decimated_with_the_offset_removed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bands = {
        b: rng.integers(200, 3000, (200, 300)).astype(np.uint16) for b in ("B02", "B03", "B04")
    }
    bands["B02"][:10, :10] = 0
    shifted = {b: np.where(a > 0, a + 1000, 0).astype(np.uint16) for b, a in bands.items()}
    old = write_s2_item(
        tmp_path / "old.json", write_jp2_bands(tmp_path / "old", bands), baseline="02.09"
    )
    new = write_s2_item(
        tmp_path / "new.json", write_jp2_bands(tmp_path / "new", shifted), baseline="04.00"
    )
    x0, y0 = S2_TEST_ORIGIN
    view = (x0, y0 - 2000, x0 + 3000, y0)
    a = read_quicklook(open_product(str(old)), view, max_px=150)
    b = read_quicklook(open_product(str(new)), view, max_px=150)
    assert a is not None and b is not None
    assert a.shape == (100, 150, 4)  # read at out_shape, not at 200 × 300
    assert np.array_equal(a, b)
    assert a[0, 0, 3] == 0 and a[50, 50, 3] == 255
    # nearest decimation by 2 takes the pixel at the centre of each 2 × 2 block: (2r + 1, 2c + 1)
    expect = true_colour(*(bands[n][1::2, 1::2] for n in ("B04", "B03", "B02")))
    assert np.array_equal(a[5:, 5:], expect[5:, 5:])
    # a window: the quicklook of a water mask's AOI
    part = read_quicklook(open_product(str(old)), (x0 + 1000, y0 - 1000, x0 + 2000, y0), max_px=50)
    assert part is not None and part.shape == (50, 50, 4)
    assert np.array_equal(part[10, 10, :3], a[10, 60, :3])
    # without B02 there is no true colour: None, and the map is drawn alone
    no_blue = write_s2_item(
        tmp_path / "nb.json",
        {k: v for k, v in write_jp2_bands(tmp_path / "nb", bands).items() if k != "B02"},
    )
    assert read_quicklook(open_product(str(no_blue)), view) is None


def test_an_unreadable_quicklook_costs_the_picture_its_quicklook_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(2)
    bands = {b: rng.integers(200, 3000, (60, 90)).astype(np.uint16) for b in ("B02", "B03", "B04")}
    files = write_jp2_bands(tmp_path / "jp2", bands)
    files["B04"].write_bytes(files["B04"].read_bytes()[:300])  # truncated
    product = open_product(str(write_s2_item(tmp_path / "item.json", files)))
    x0, y0 = S2_TEST_ORIGIN
    view = (x0, y0 - 600, x0 + 900, y0)
    with pytest.raises(DataError, match="B04"):
        read_quicklook(product, view)
    values = np.zeros((6, 9), np.uint8)
    with caplog.at_level("WARNING"):
        png = product_thumbnail(product, layer(values, view), view, title="t", subtitle="s")
    assert "without its quicklook" in caplog.text and "B04" in caplog.text
    img = pixels(png)
    assert count(img, SWATCHES[0].rgb) > 1000
