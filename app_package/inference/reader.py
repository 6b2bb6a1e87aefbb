"""Reading a Sentinel-2 product for inference: its 10 m grid, the radiometric offset, and the
bands in strips of chip rows, read ahead of the model.

Speed by design: each band is read once, in strips of chip rows about one JPEG2000 tile high
(GDAL decodes a strip's tiles on several threads); a reader thread prepares the next strip while
the model classifies the current one (torch and GDAL both release the GIL); memory holds a few
strips at most (13 bands as uint16, never the whole tile as float32).

20 m and 60 m bands are brought to the 10 m grid by nearest neighbour: each 10 m cell takes the
value of the coarse pixel it lies in. Why: no radiometry is invented, a nodata (DN 0) pixel marks
exactly the cells it covers instead of bleeding into its neighbours, and it costs nothing next to
JPEG2000 decoding. Caveat, checked on the real EuroSAT-MS chips in ../shared: EuroSAT's 20/60 m
bands were NOT made this way — they are smooth (B01 changes pixel by pixel, no 6×6 blocks), i.e.
interpolated (bilinear/bicubic), so a EuroSAT-trained model sees blockier coarse bands here than
in training. Bilinear upsampling (with a nodata mask kept by nearest) is the candidate follow-up,
to be chosen by accuracy on labelled scenes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from app_package.eo.sentinel2 import GRID_RESOLUTION_M, BandSource
from app_package.errors import DataError
from app_package.inference.tiling import (
    ChipGrid,
    chips_touching_nodata,
    default_strip_chip_rows,
    extract_chips,
    mirror_fill,
    native_rows,
    upsample_nearest_into,
)

if TYPE_CHECKING:
    from rasterio.crs import CRS


logger = logging.getLogger(__name__)

PREFETCH_DEPTH = 2  # strips read ahead of the model


@dataclass(frozen=True)
class ProductGrid:
    """The 10 m grid of a product's bands (checked to be shared by all of them)."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    factors: dict[str, int]  # band -> native pixel size / 10 m

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


def _gdal_path(href: str) -> str:
    return href


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under `taskset`)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def product_grid(sources: list[BandSource]) -> ProductGrid:
    """Open each band's header: one CRS, one extent, pixel sizes that are multiples of 10 m."""
    import rasterio
    from rasterio.errors import RasterioIOError

    crss: dict[str, Any] = {}
    infos: dict[str, tuple[Affine, int, int]] = {}
    for s in sources:
        try:
            with rasterio.open(_gdal_path(s.href)) as ds:
                crss[s.name] = ds.crs
                infos[s.name] = (ds.transform, ds.width, ds.height)
        except RasterioIOError as e:
            raise DataError(f"cannot open band {s.name} ({s.href}): {e}") from e
    distinct = {str(c) for c in crss.values()}
    if len(distinct) > 1:
        raise DataError(
            "bands are in different CRSs ("
            + ", ".join(f"{n}: {c}" for n, c in crss.items())
            + "): all bands of a product must share one grid"
        )
    first = sources[0].name
    t0, w0, h0 = infos[first]
    left, top = t0.c, t0.f
    width_m, height_m = t0.a * w0, -t0.e * h0
    factors: dict[str, int] = {}
    for name, (t, w, h) in infos.items():
        f = round(t.a / GRID_RESOLUTION_M)
        if f < 1 or abs(t.a - f * GRID_RESOLUTION_M) > 1e-6 or abs(t.e + t.a) > 1e-6:
            raise DataError(
                f"band {name} has pixel size {t.a} × {-t.e} m: expected 10, 20 or 60 m, north up"
            )
        tol = t.a / 2
        if (
            abs(t.c - left) > tol
            or abs(t.f - top) > tol
            or abs(t.a * w - width_m) > tol
            or abs(-t.e * h - height_m) > tol
        ):
            raise DataError(
                f"band {name} covers a different extent than band {first}: "
                "all bands of a product must share one grid"
            )
        factors[name] = f
    width = round(width_m / GRID_RESOLUTION_M)
    height = round(height_m / GRID_RESOLUTION_M)
    transform = Affine(GRID_RESOLUTION_M, 0.0, left, 0.0, -GRID_RESOLUTION_M, top)
    return ProductGrid(crss[first], transform, width, height, factors)


def offset_lut(offset: float) -> np.ndarray:
    """A 65536-entry table DN -> DN + offset clipped to ≥ 1 (valid stays valid); 0 stays 0."""
    dn = np.arange(65536, dtype=np.int64)
    lut = np.clip(dn + round(offset), 1, 65535).astype(np.uint16)
    lut[0] = 0
    return lut


def to_model_scale(
    native: np.ndarray, offset: float, apply: bool, out: np.ndarray | None = None
) -> np.ndarray:
    """DN -> the model's DN scale, exactly `offset_lut(offset)[native]`, into `out` when given.

    The usual negative offset (-1000) is three uint16 passes: max(x, k + 1) - k is x - k above
    k + 1 and 1 below it, and min(that, x) sends 0 back to 0. A table look-up (`np.take`) first
    casts every index to int64: ~3x slower, seconds of CPU per tile.
    """
    if not apply or offset == 0:
        if out is None:
            return native
        np.copyto(out, native)
        return out
    k = -round(offset)
    if native.dtype == np.uint16 and 0 < k < 65535:
        if out is None:
            out = np.empty_like(native)
        np.maximum(native, np.uint16(k + 1), out=out)
        np.subtract(out, np.uint16(k), out=out)
        return np.minimum(out, native, out=out)
    if out is None:
        return offset_lut(offset)[native]
    return np.take(offset_lut(offset), native, out=out, mode="wrap")  # uint16: never wraps


class BandRows:
    """Rows of one band, each JPEG2000 tile row decoded once.

    GDAL's JPEG2000 driver does not keep decoded tiles between windowed reads, so a 20 m band
    read in 10 m strips would be decoded twice and a 60 m band six times. This reads whole
    block rows (the file's tile height) and keeps the rows later strips still need; strips move
    down the band.
    """

    def __init__(self, ds: Any, name: str, href: str) -> None:
        self.ds, self.name, self.href = ds, name, href
        block_h = int(ds.block_shapes[0][0])
        self.block = block_h if 0 < block_h <= 4096 else 1  # untiled/huge blocks: exact windows
        self.start = self.next = 0  # rows holds native rows [start, next); next is block-aligned
        self.rows = np.empty((0, ds.width), dtype=np.uint16)

    def _read(self, n0: int, n1: int) -> np.ndarray:
        from rasterio.errors import RasterioIOError
        from rasterio.windows import Window

        try:
            return np.asarray(self.ds.read(1, window=Window(0, n0, self.ds.width, n1 - n0)))
        except RasterioIOError as e:
            raise DataError(
                f"cannot decode band {self.name} ({self.href}) rows {n0}–{n1}: {e}: "
                "the file is corrupt or truncated"
            ) from e

    def read(self, n0: int, n1: int) -> np.ndarray:
        """Native rows [n0, n1) as a [n1 - n0, width] array."""
        if n0 < self.start or n0 > self.next:  # not moving down: start over at n0's block
            self.start = self.next = n0 - n0 % self.block
            self.rows = self.rows[:0]
        if n1 > self.next:
            keep = self.rows[n0 - self.start :]  # rows before n0 are not needed again
            stop = min(self.ds.height, -(-n1 // self.block) * self.block)
            new = self._read(self.next, stop)
            if len(keep):
                self.rows, self.start = np.concatenate([keep, new]), n0
            else:
                self.rows, self.start = new, self.next
            self.next = stop
        return self.rows[n0 - self.start : n1 - self.start]


# at most this much of extracted chips per strip: 8-9 chip rows of a 10980-wide product at
# stride 64 (~140 MB). Decoding is not repeated for smaller strips (`BandRows` keeps the
# decoded tile rows); the ring of strips held (`read_strips`' buffers) is what this bounds
STRIP_CHIP_BYTES = 160 * 2**20


@dataclass
class Strip:
    """Chip rows [r0, r0 + nr) of the product: their chips, or the pixel block they lie in."""

    r0: int
    valid: np.ndarray  # [nr, nc] bool (chips not touching nodata)
    chips: np.ndarray | None = None  # [nr·nc, C, chip, chip] uint16, model band order
    block: np.ndarray | None = None  # [C, (nr - 1)·stride + chip, padded width] uint16


def strip_chip_rows(grid: ChipGrid, n_bands: int, extract: bool) -> int:
    """Chip rows per strip: about a JPEG2000 tile of pixel rows; with extracted chips also at
    most `STRIP_CHIP_BYTES` of them (at stride 16 a tile's rows hold 16 × the pixels as
    overlapping chips: 4 GB for a 10980-wide product)."""
    rows = default_strip_chip_rows(grid)
    if extract:
        row_bytes = grid.n_cols * n_bands * grid.chip * grid.chip * 2
        rows = min(rows, max(1, STRIP_CHIP_BYTES // row_bytes))
    return rows


def read_strips(
    sources: list[BandSource],
    pgrid: ProductGrid,
    grid: ChipGrid,
    *,
    apply_offset: bool,
    chip_rows: int | None = None,
    threads: int | None = None,
    buffers: int = 0,
    extract: bool = True,
) -> Iterator[Strip]:
    """Strips of chips in model band order, each band read once in large windows.

    `extract`: the strips carry their chips (`Strip.chips`), extracted here, in the reader
    thread; else the pixel block the chips lie in (`Strip.block`), for window features.

    `buffers` > 0: strip k is built in buffer k % `buffers`, reused, instead of fresh arrays
    (a 10980-wide strip of 13 bands is 290 MB twice over: new ones each time cost the kernel
    page faults and zeroing, seconds of system time per tile). The caller must be done with
    strip k before strip k + `buffers` is built: `Prefetch(depth)` + a consumer that takes
    one strip at a time needs `depth + 2`.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    rows = chip_rows or strip_chip_rows(grid, len(sources), extract)
    # BandRows keeps decoded rows itself: GDAL's block cache only needs to serve one read.
    # rasterio.Env is per thread: each band worker enters its own.
    gdal_env = {"GDAL_NUM_THREADS": str(threads or usable_cpus()), "GDAL_CACHEMAX": 256}
    datasets = {}
    # two bands at a time: one decodes (GDAL's threads) while the other's rows are looked up
    # and upsampled (numpy, one thread), so the cores are not idle between decodes
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="classify-band")
    try:
        with rasterio.Env(**gdal_env):
            for s in sources:
                try:
                    datasets[s.name] = rasterio.open(_gdal_path(s.href))
                except RasterioIOError as e:
                    raise DataError(f"cannot open band {s.name} ({s.href}): {e}") from e
        bands = [BandRows(datasets[s.name], s.name, s.href) for s in sources]
        # the block is only used while its strip is built: one is enough; chips go out
        ring: list[dict[tuple[int, ...], np.ndarray]] = [{} for _ in range(buffers + 1)]

        def array(slot_no: int, shape: tuple[int, ...]) -> np.ndarray:
            if not buffers:
                return np.empty(shape, dtype=np.uint16)
            slot = ring[slot_no]
            if shape not in slot:
                slot.clear()  # the last strip may be shorter: its own arrays
                slot[shape] = np.empty(shape, dtype=np.uint16)
            return slot[shape]

        def fill(i: int, block: np.ndarray, y0: int, y1c: int) -> None:
            """Band i's rows [y0, y1c) of the 10 m grid into block[i], in the model's scale."""
            s, band, f = sources[i], bands[i], pgrid.factors[sources[i].name]
            n0, n1 = native_rows(y0, y1c, f)
            dest = block[i, : y1c - y0, : pgrid.width]
            with rasterio.Env(**gdal_env):
                rows_ = band.read(n0, n1)
            if f == 1:  # the offset straight into the strip: no intermediate copy
                to_model_scale(rows_, s.offset, apply_offset, out=dest)
            else:
                native = to_model_scale(rows_, s.offset, apply_offset)
                upsample_nearest_into(native, f, y0 - n0 * f, dest)

        for k, (r0, r1) in enumerate(grid.strips(rows)):
            y0, y1 = grid.strip_rows(r0, r1)
            y1c = min(y1, pgrid.height)
            shape_ = (len(sources), y1 - y0, grid.padded_width)
            # extracted: one block, reused at once; else the block is the strip, in the ring
            block = array(buffers if extract else k % max(buffers, 1), shape_)
            for done in [pool.submit(fill, i, block, y0, y1c) for i in range(len(sources))]:
                done.result()  # re-raises a band's error here
            mirror_fill(block, y1c - y0, pgrid.width)
            valid = ~chips_touching_nodata(block, grid)
            if not extract:
                yield Strip(r0, valid, block=block)
                continue
            shape = (valid.size, len(sources), grid.chip, grid.chip)
            chips = extract_chips(block, grid, array(k % buffers if buffers else 0, shape))
            yield Strip(r0, valid, chips=chips)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for ds in datasets.values():
            ds.close()


class Prefetch:
    """Runs `it` in a reader thread from construction on, at most `depth` strips ahead; iterating
    yields the strips and re-raises the reader's errors here. Use it as a context manager: on
    exit the reader is stopped, whether or not the strips were consumed."""

    def __init__(self, it: Iterator[Strip], depth: int = 1) -> None:
        self._q: queue.Queue[Strip | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(it,), name="classify-reader", daemon=True
        )
        self._thread.start()

    def _work(self, it: Iterator[Strip]) -> None:
        try:
            for s in it:
                while not self._stop.is_set():
                    try:
                        self._q.put(s, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._q.put(None)
        except BaseException as e:  # handed to the consumer, which re-raises
            self._q.put(e)
        finally:  # a generator stopped early closes its files and threads now, not when collected
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Strip]:
        while True:
            s = self._q.get()
            if s is None:
                return
            if isinstance(s, BaseException):
                raise s
            yield s

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.1)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
