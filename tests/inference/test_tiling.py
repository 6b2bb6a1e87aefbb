"""The chip grid, strips, chip extraction, nodata and probability stitching (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from app_package.errors import InputError
from app_package.inference.tiling import (
    ChipGrid,
    ProbabilityMosaic,
    chips_touching_nodata,
    default_strip_chip_rows,
    extract_chips,
    mirror_fill,
    native_rows,
    pad_to,
    upsample_nearest,
    upsample_nearest_into,
)


def test_full_tile_grid_keeps_partial_edge_chips() -> None:
    g = ChipGrid(10980, 10980, 64, 64)
    # 171 whole chips and a 36 px strip per side: the strip gets its own (partial) chip
    assert (g.n_rows, g.n_cols, g.n_chips) == (172, 172, 172 * 172)
    assert g.padded_width == 172 * 64
    strips = g.strips(default_strip_chip_rows(g))
    assert strips[0] == (0, 16) and strips[-1][1] == 172
    assert g.strip_rows(0, 16) == (0, 1024)  # one JPEG2000 tile row


def test_stride_must_divide_chip() -> None:
    with pytest.raises(InputError, match="divisor"):
        ChipGrid(100, 100, 64, 48)
    with pytest.raises(InputError):
        ChipGrid(100, 100, 64, 0)
    assert ChipGrid(100, 100, 64, 16).per == 4


def test_cell_transform_puts_cells_over_chips() -> None:
    t = Affine(10, 0, 330000, 0, -10, 5822040)
    g = ChipGrid(420, 300, 64, 64)
    ct = g.cell_transform(t)
    for r, c in ((0, 0), (2, 3), (4, 6)):
        assert ct @ (c, r) == t @ (c * 64, r * 64)
        assert ct @ (c + 1, r + 1) == t @ ((c + 1) * 64, (r + 1) * 64)


def test_extract_chips_matches_slicing() -> None:
    rng = np.random.default_rng(0)
    g = ChipGrid(20, 12, 8, 4)
    block = rng.integers(1, 1000, size=(3, (2 - 1) * 4 + 8, g.padded_width), dtype=np.uint16)
    chips = extract_chips(block, g)
    assert chips.shape == (2 * g.n_cols, 3, 8, 8)
    for r in range(2):
        for c in range(g.n_cols):
            expect = block[:, r * 4 : r * 4 + 8, c * 4 : c * 4 + 8]
            assert np.array_equal(chips[r * g.n_cols + c], expect)


def test_nodata_marks_every_chip_touching_it() -> None:
    g = ChipGrid(16, 16, 8, 4)  # 4×4 cells, chips cover 2×2 cells
    block = np.ones((2, 4 * 4 + 4, g.padded_width), dtype=np.uint16)
    block[1, 5, 5] = 0  # one pixel in one band, cell (1, 1)
    touching = chips_touching_nodata(block, g)
    assert touching.shape == (4, 4)
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:2] = True  # chips starting at cells (0..1, 0..1) cover cell (1, 1)
    assert np.array_equal(touching, expected)


def test_mosaic_averages_overlapping_chips_and_skips_nodata() -> None:
    g = ChipGrid(8, 4, 4, 2)  # cells 2×4, each chip covers 2×2 cells
    m = ProbabilityMosaic(g, 2)
    probs = np.zeros((2, 4, 2), np.float32)
    probs[..., 0] = 0.9
    probs[..., 1] = 0.1
    probs[0, 1] = (0.1, 0.9)  # chip at cell (0, 1) votes class 1
    valid = np.ones((2, 4), bool)
    valid[1, 3] = False
    m.add(0, probs, valid)
    classes, conf = m.result()
    # cell (0, 1): chips (0, 0) and (0, 1) -> mean (0.5, 0.5): argmax picks the first class
    # cell (0, 2): chips (0, 1), (0, 2) -> (0.5, 0.5); cell (1, 1): chips (0,0),(0,1),(1,0),(1,1)
    assert m.counts[1, 1] == 4
    assert m.counts[1, 3] == 3  # the nodata chip at (1, 3) is left out
    np.testing.assert_allclose(conf[1, 1], (0.9 * 3 + 0.1) / 4, rtol=1e-6)
    assert classes[0, 0] == 0
    assert classes.dtype == np.uint8


def test_mosaic_cell_without_valid_chip_is_nodata() -> None:
    g = ChipGrid(8, 8, 8, 8)
    m = ProbabilityMosaic(g, 3)
    m.add(0, np.full((1, 1, 3), 1 / 3, np.float32), np.zeros((1, 1), bool))
    classes, conf = m.result()
    assert classes[0, 0] == 255 and np.isnan(conf[0, 0])


def test_upsample_nearest_and_native_rows() -> None:
    native = np.arange(12, dtype=np.uint16).reshape(3, 4)  # a 60 m band: factor 6
    n0, n1 = native_rows(8, 14, 6)
    assert (n0, n1) == (1, 3)
    up = upsample_nearest(native[n0:n1], 6, 8 - n0 * 6, 6, 24)
    assert up.shape == (6, 24)
    # 10 m row 8..11 lies in 60 m row 1, rows 12..13 in 60 m row 2; column x in x // 6
    assert np.array_equal(up[0], np.repeat(native[1], 6))
    assert np.array_equal(up[4], np.repeat(native[2], 6))


@pytest.mark.parametrize("factor", [1, 2, 6])
@pytest.mark.parametrize("height", [1, 7, 12, 13])
def test_upsample_into_equals_upsample(factor: int, height: int) -> None:
    """The in-place upsampling writes what `upsample_nearest` returns, for every row phase,
    into a strided slice of a larger block (as read_strips does), touching nothing else."""
    rng = np.random.default_rng(factor * 100 + height)
    native = rng.integers(0, 65536, size=(height // factor + 2, 5), dtype=np.uint16)
    for y_offset in range(factor):
        block = np.zeros((2, 20, 40), np.uint16)
        out = block[1, :height, : 5 * factor]
        upsample_nearest_into(native, factor, y_offset, out)
        assert np.array_equal(out, upsample_nearest(native, factor, y_offset, height, 5 * factor))
        assert not block[0].any() and not block[1, height:].any() and not block[1, :, 30:].any()


def test_pad_mirrors_edges() -> None:
    a = np.arange(6, dtype=np.uint16).reshape(1, 2, 3)
    p = pad_to(a, 3, 5)
    assert p.shape == (1, 3, 5)
    assert list(p[0, 0]) == [0, 1, 2, 2, 1]
    assert list(p[0, 2, :3]) == [3, 4, 5]


@pytest.mark.parametrize(("h", "w"), [(5, 7), (2, 3), (1, 1), (5, 2)])
def test_mirror_fill_equals_symmetric_pad(h: int, w: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 100, size=(2, h, w)).astype(np.uint16)
    block = np.zeros((2, 9, 11), np.uint16)
    block[:, :h, :w] = a
    assert np.array_equal(mirror_fill(block, h, w), pad_to(a, 9, 11))
