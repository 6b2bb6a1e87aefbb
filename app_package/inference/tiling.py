"""The chip grid over a product, strips of chip rows, chip extraction and stitching (pure numpy).

The output map has one cell per stride step: cell (r, c) covers product pixels
[r·s, (r+1)·s) × [c·s, (c+1)·s), so its transform is the product's with pixel size s × 10 m and
each cell sits exactly over its chip when the stride equals the chip size. The chip starting at
cell (r, c) covers cells r…r+k-1 × c…c+k-1 (k = chip / stride); a cell's class probabilities are
the mean over the chips covering it that do not touch nodata. Chips that run past the right or
bottom edge are filled by mirroring the product's edge pixels, and are classified, not dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from numpy.lib.stride_tricks import sliding_window_view

from app_package.errors import InputError

NODATA_CLASS = 255


@dataclass(frozen=True)
class ChipGrid:
    """Chips of `chip` pixels every `stride` pixels over a `width` × `height` product grid."""

    width: int
    height: int
    chip: int
    stride: int

    def __post_init__(self) -> None:
        if self.chip < 1 or self.width < 1 or self.height < 1:
            raise InputError(f"empty chip grid: {self}")
        if not 1 <= self.stride <= self.chip or self.chip % self.stride:
            divisors = [d for d in range(1, self.chip + 1) if self.chip % d == 0]
            raise InputError(
                f"stride {self.stride} does not fit chip size {self.chip}: use a divisor of the "
                f"chip size ({', '.join(map(str, divisors))}) so every map cell is covered by "
                "whole chips"
            )

    @property
    def per(self) -> int:
        """Cells per chip side (chip / stride)."""
        return self.chip // self.stride

    @property
    def n_rows(self) -> int:
        return math.ceil(self.height / self.stride)

    @property
    def n_cols(self) -> int:
        return math.ceil(self.width / self.stride)

    @property
    def n_chips(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def padded_width(self) -> int:
        """Pixel columns the chips span, the mirrored right edge included."""
        return (self.n_cols - 1) * self.stride + self.chip

    def cell_transform(self, transform: Affine) -> Affine:
        """The output map's transform: the product's, with pixels `stride` times larger."""
        return transform @ Affine.scale(self.stride)

    def strips(self, chip_rows: int) -> list[tuple[int, int]]:
        """Chip-row ranges [r0, r1) of at most `chip_rows` rows, covering the grid."""
        step = max(1, chip_rows)
        return [(r, min(r + step, self.n_rows)) for r in range(0, self.n_rows, step)]

    def strip_rows(self, r0: int, r1: int) -> tuple[int, int]:
        """Pixel rows [y0, y1) that chip rows [r0, r1) need (y1 may pass the bottom edge)."""
        return r0 * self.stride, (r1 - 1) * self.stride + self.chip


def default_strip_chip_rows(grid: ChipGrid, target_rows: int = 1024) -> int:
    """Chip rows per strip so a strip is about `target_rows` pixel rows (JPEG2000 tile height)."""
    return max(1, (target_rows - grid.chip) // grid.stride + 1)


def pad_to(block: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror a [..., h, w] block's bottom/right edge out to `height` × `width`."""
    h, w = block.shape[-2:]
    if h == height and w == width:
        return block
    pad = [(0, 0)] * (block.ndim - 2) + [(0, height - h), (0, width - w)]
    return np.pad(block, pad, mode="symmetric")


def mirror_fill(block: np.ndarray, h: int, w: int) -> np.ndarray:
    """In place: fill a [..., H, W] block beyond its first `h` rows / `w` columns by mirroring
    (like `pad_to`, without copying the block)."""
    height, width = block.shape[-2:]
    for x in range(w, width):  # column w + k mirrors column w - 1 - k (repeatedly if needed)
        k = x - w
        src = _mirror_index(w - 1 - k, w)
        block[..., :h, x] = block[..., :h, src]
    for y in range(h, height):
        src = _mirror_index(h - 1 - (y - h), h)
        block[..., y, :] = block[..., src, :]
    return block


def _mirror_index(i: int, n: int) -> int:
    """Index into [0, n) of position i on numpy's 'symmetric' extension."""
    period = 2 * n
    i %= period
    return i if i < n else period - 1 - i


def native_rows(y0: int, y1: int, factor: int) -> tuple[int, int]:
    """Native-resolution rows [n0, n1) that hold 10 m rows [y0, y1) for a band `factor`× coarser."""
    return y0 // factor, -(-y1 // factor)


def upsample_nearest(
    native: np.ndarray, factor: int, y_offset: int, height: int, width: int
) -> np.ndarray:
    """Nearest-neighbour upsampling of a [h, w] native block by an integer factor.

    Each 10 m cell takes the value of the coarse pixel it lies in; `y_offset` is the first wanted
    row inside the upsampled block. Returns [height, width] (cropped to what exists).
    """
    if factor == 1:
        return native[y_offset : y_offset + height, :width]
    h, w = native.shape
    up = np.broadcast_to(native[:, None, :, None], (h, factor, w, factor)).reshape(
        h * factor, w * factor
    )
    return up[y_offset : y_offset + height, :width]


def upsample_nearest_into(native: np.ndarray, factor: int, y_offset: int, out: np.ndarray) -> None:
    """`out[:] = upsample_nearest(native, factor, y_offset, *out.shape)` without the intermediate
    full-resolution copy: one pass over `out` per row phase (a 10 m row y lies in native row
    (y + y_offset) // factor)."""
    height, width = out.shape
    nw = -(-width // factor)
    if factor == 1 or width != nw * factor or out.strides[1] != out.itemsize:
        out[:] = upsample_nearest(native, factor, y_offset, height, width)
        return
    if factor == 2 and out.dtype == np.uint16 and native.dtype == np.uint16:
        # a 20 m pixel v is the uint32 v * 0x10001 (v in both halves, whatever the byte order)
        # over its two 10 m cells: contiguous 4-byte writes, faster than numpy's broadcast copy
        # of 2-byte values
        pairs = np.multiply(native[:, :nw], np.uint32(0x10001), dtype=np.uint32)
        out32 = out.view(np.uint32)  # [height, nw]
        for phase in range(2):
            first = (phase - y_offset) % 2
            if first < height:
                n0 = (first + y_offset) // 2
                out32[first::2] = pairs[n0 : n0 + len(range(first, height, 2))]
        return
    cols = out.reshape(height, nw, factor)  # a view: each native column spans `factor` cells
    for phase in range(factor):
        first = (phase - y_offset) % factor  # first output row with (y + y_offset) % f == phase
        if first >= height:
            continue
        n_rows = len(range(first, height, factor))
        n0 = (first + y_offset) // factor
        cols[first::factor] = native[n0 : n0 + n_rows, :nw, None]


def extract_chips(block: np.ndarray, grid: ChipGrid, out: np.ndarray | None = None) -> np.ndarray:
    """[C, H, W] strip (H = rows·stride + chip − stride, W = padded width) -> [N, C, chip, chip].

    Chips are in row-major order of their start cells. `out`: an array of that shape and dtype
    to write into (reused by the caller), else a new one.
    """
    c = block.shape[0]
    win = sliding_window_view(block, (grid.chip, grid.chip), axis=(1, 2))
    win = win[:, :: grid.stride, :: grid.stride]  # [C, nr, nc, chip, chip]
    nr, nc = win.shape[1:3]
    shape = (nr * nc, c, grid.chip, grid.chip)
    if out is None:
        return np.ascontiguousarray(win.transpose(1, 2, 0, 3, 4)).reshape(shape)
    if out.shape != shape or out.dtype != block.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous {block.dtype} array of shape {shape}")
    np.copyto(out.reshape(nr, nc, c, grid.chip, grid.chip), win.transpose(1, 2, 0, 3, 4))
    return out


def chips_touching_nodata(block: np.ndarray, grid: ChipGrid, nodata: int = 0) -> np.ndarray:
    """[nr, nc] bool: chips of a [C, H, W] strip with a nodata pixel in any band."""
    zero = (block.min(axis=0) == 0) if nodata == 0 else (block == nodata).any(axis=0)
    h, w = zero.shape
    s = grid.stride
    cells = zero.reshape(h // s, s, w // s, s).any(axis=(1, 3))
    k = grid.per
    return sliding_window_view(cells, (k, k)).any(axis=(2, 3))


class ProbabilityMosaic:
    """Sums chip class probabilities over the cells each chip covers (bounded: one map)."""

    def __init__(self, grid: ChipGrid, n_classes: int) -> None:
        self.grid = grid
        self.sums = np.zeros((n_classes, grid.n_rows, grid.n_cols), dtype=np.float32)
        self.counts = np.zeros((grid.n_rows, grid.n_cols), dtype=np.int32)

    def add(self, r0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        """Add chips starting at chip row `r0`: probs [nr, nc, K], valid [nr, nc] bool."""
        nr, nc = valid.shape
        p = np.where(valid[..., None], probs, 0.0).transpose(2, 0, 1).astype(np.float32)
        v = valid.astype(np.int32)
        g = self.grid
        for di in range(g.per):
            for dj in range(g.per):
                rr = min(nr, g.n_rows - r0 - di)
                cc = min(nc, g.n_cols - dj)
                if rr <= 0 or cc <= 0:
                    continue
                self.sums[:, r0 + di : r0 + di + rr, dj : dj + cc] += p[:, :rr, :cc]
                self.counts[r0 + di : r0 + di + rr, dj : dj + cc] += v[:rr, :cc]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(class map uint8 with 255 = nodata, confidence float32 with NaN = nodata)."""
        ok = self.counts > 0
        mean = self.sums / np.maximum(self.counts, 1)[None]
        classes = np.where(ok, mean.argmax(axis=0), NODATA_CLASS).astype(np.uint8)
        conf = np.where(ok, mean.max(axis=0), np.nan).astype(np.float32)
        return classes, conf
