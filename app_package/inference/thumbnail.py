"""Thumbnails for people: a class map (or water mask) with its legend beside a true-colour
quicklook of the product, one PNG of at most 1024 px.

The drawing is pure (`thumbnail_png`: arrays in, PNG bytes out; `legend_entries` says what the
legend shows); `read_quicklook` is the I/O: B04/B03/B02 read at a decimated resolution
(`out_shape`: GDAL takes a JPEG2000 resolution level or a COG overview, never the full-size band),
brought to the pre-04.00 DN scale as classification does, and scaled like EuroSAT's RGB chips.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from app_package.eo.bands import band
from app_package.errors import DataError

if TYPE_CHECKING:
    from app_package.eo.sentinel2 import Product

logger = logging.getLogger(__name__)

THUMBNAIL_MAX_PX: Final[int] = 1024  # longest side of the PNG
QUICKLOOK_MAX_PX: Final[int] = 512  # longest side the quicklook is read at
RGB_BANDS: Final[tuple[str, str, str]] = (band("red").name, band("green").name, band("blue").name)
RGB_MAX_DN: Final[float] = 2750.0  # EuroSAT's RGB chips: DN 0–2750 → 1–255
NODATA_LABEL: Final[str] = "No data"
NODATA_HATCH: Final[str] = "////"
NODATA_EDGE: Final[str] = "#757575"

Bounds = tuple[float, float, float, float]  # left, bottom, right, top (the map's CRS units)


@dataclass(frozen=True)
class Swatch:
    """A value of a map as the legend shows it."""

    value: int
    label: str
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: label, colour (None: nodata, drawn hatched), share of the map's cells
    (of the valid cells for a class, of all cells for nodata)."""

    label: str
    rgb: tuple[int, int, int] | None
    share: float

    @property
    def text(self) -> str:
        pct = 100.0 * self.share
        return f"{self.label}  {pct:.1f} %" if pct >= 0.1 or pct == 0 else f"{self.label}  <0.1 %"


@dataclass(frozen=True)
class MapLayer:
    """A class map to draw: values, what they mean, the nodata value and where it lies."""

    values: np.ndarray  # 2-D, integer
    swatches: Sequence[Swatch]
    nodata: int
    extent: Bounds  # of the whole array
    title: str


def legend_entries(layer: MapLayer) -> list[LegendEntry]:
    """The classes present in the map, in swatch order, then nodata when any cell is nodata."""
    v = layer.values
    total = v.size
    nodata = int(np.count_nonzero(v == layer.nodata))
    valid = total - nodata
    out = []
    for s in layer.swatches:
        n = int(np.count_nonzero(v == s.value))
        if n:
            out.append(LegendEntry(s.label, s.rgb, n / valid))
    if nodata:
        out.append(LegendEntry(NODATA_LABEL, None, nodata / total))
    return out


def true_colour(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """RGBA uint8 of three bands' DNs (pre-04.00 scale): 0–2750 → 1–255 as EuroSAT's RGB
    chips; DN 0 in any band (nodata) is transparent."""
    rgb = np.stack([red, green, blue], axis=-1).astype(np.float32)
    scaled = np.clip(rgb * (255.0 / RGB_MAX_DN), 1, 255).astype(np.uint8)
    alpha = np.where((rgb > 0).all(axis=-1), 255, 0).astype(np.uint8)
    return np.concatenate([scaled, alpha[..., None]], axis=-1)


def decimate(values: np.ndarray, max_px: int) -> np.ndarray:
    """Every k-th row and column so the longest side is at most `max_px` (classes stay classes)."""
    step = -(-max(values.shape[:2]) // max_px)
    return values[::step, ::step] if step > 1 else values


def _rgba(layer: MapLayer, max_px: int) -> np.ndarray:
    small = decimate(layer.values, max_px)
    lut = np.zeros((max(256, int(small.max(initial=0)) + 1), 4), dtype=np.uint8)
    for s in layer.swatches:
        lut[s.value] = (*s.rgb, 255)
    lut[layer.nodata] = 0  # transparent: the hatched nodata background shows
    rgba: np.ndarray = lut[small]
    return rgba


def _ellipsize(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 3] + "…" + text[len(text) - (keep - keep // 3) :]


def thumbnail_png(
    layer: MapLayer,
    view: Bounds,
    *,
    title: str,
    subtitle: str = "",
    quicklook: np.ndarray | None = None,
    quicklook_title: str = "True colour (B04, B03, B02)",
    max_px: int = THUMBNAIL_MAX_PX,
) -> bytes:
    """A PNG (longest side ≤ `max_px`): the true-colour quicklook (RGBA over `view`) beside the
    map, both over `view`, the legend of `legend_entries` below, the title above.

    Nodata is transparent over a hatched background, in both panels and in the legend.
    Without a quicklook the map is drawn alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    entries = legend_entries(layer)
    has_nodata = quicklook is not None and bool((quicklook[..., 3] == 0).any())
    if has_nodata and not any(e.rgb is None for e in entries):
        entries.append(LegendEntry(NODATA_LABEL, None, 0.0))
    panels = 2 if quicklook is not None else 1
    left, bottom, right, top = view
    aspect = (right - left) / (top - bottom)

    # layout in pixels (dpi 100): title, panel titles, panels, legend rows
    pad, head, caption = 16, 52 if subtitle else 34, 24
    ncol = min(len(entries), 4 if panels == 2 else 3) or 1
    legend_h = 26 * -(-len(entries) // ncol) + 14
    panel_w = min((max_px - pad * (panels + 1)) / panels, 0.7 * max_px)  # one panel: not huge
    panel_h = panel_w / aspect
    max_panel_h = max_px - head - caption - legend_h - 2 * pad
    if panel_h > max_panel_h:
        panel_h, panel_w = max_panel_h, max_panel_h * aspect
    fig_w = max(panel_w * panels + pad * (panels + 1), 560.0)
    fig_h = head + caption + panel_h + legend_h + 2 * pad
    fig_w, fig_h = min(fig_w, max_px), min(fig_h, max_px)

    fig = Figure(figsize=(fig_w / 100, fig_h / 100), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    fig.text(
        pad / fig_w,
        1 - 12 / fig_h,
        _ellipsize(title, 100),
        ha="left",
        va="top",
        fontsize=12,
        fontweight="bold",
    )
    if subtitle:
        fig.text(
            pad / fig_w,
            1 - 34 / fig_h,
            _ellipsize(subtitle, 130),
            ha="left",
            va="top",
            fontsize=9.5,
            color="#424242",
        )
    x0 = (fig_w - panels * panel_w - (panels - 1) * pad) / 2
    y0 = legend_h + pad
    images: list[tuple[str, np.ndarray, Bounds, str]] = []
    if quicklook is not None:
        images.append((quicklook_title, quicklook, view, "antialiased"))
    images.append((layer.title, _rgba(layer, int(panel_w) + 1), layer.extent, "nearest"))
    for i, (name, rgba, extent, interpolation) in enumerate(images):
        ax = fig.add_axes(
            (
                (x0 + i * (panel_w + pad)) / fig_w,
                y0 / fig_h,
                panel_w / fig_w,
                panel_h / fig_h,
            )
        )
        ax.add_patch(
            Rectangle(
                (left, bottom),
                right - left,
                top - bottom,
                facecolor="white",
                edgecolor=NODATA_EDGE,
                hatch=NODATA_HATCH,
                linewidth=0,
                zorder=0,
            )
        )
        el, eb, er, et = extent
        ax.imshow(rgba, extent=(el, er, eb, et), interpolation=interpolation, zorder=1)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=10, pad=5)
    handles = [
        Patch(facecolor="white", edgecolor=NODATA_EDGE, hatch=NODATA_HATCH, label=e.text)
        if e.rgb is None
        else Patch(
            facecolor="#{:02X}{:02X}{:02X}".format(*e.rgb), edgecolor="#616161", label=e.text
        )
        for e in entries
    ]
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 4 / fig_h),
            ncol=ncol,
            frameon=False,
            fontsize=9.5,
            handlelength=1.6,
            handleheight=1.1,
            columnspacing=1.6,
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def read_quicklook(
    product: Product,
    view: Bounds | None = None,
    *,
    max_px: int = QUICKLOOK_MAX_PX,
    threads: int | None = None,
) -> np.ndarray | None:
    """True-colour RGBA of `view` (in the bands' CRS; None: the whole product, as its 10 m
    bands cover it), longest side ≤ `max_px`, read decimated.

    None when the product lacks B04, B03 or B02 (a water mask needs only B03 and B08).
    DataError when a band cannot be read.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    from app_package.inference.reader import to_model_scale, usable_cpus

    if any(b not in product.bands for b in RGB_BANDS):
        logger.info("product %s has no %s: thumbnail without quicklook", product.id, RGB_BANDS)
        return None
    dns = []
    with rasterio.Env(GDAL_NUM_THREADS=str(threads or usable_cpus())):
        for name in RGB_BANDS:
            s = product.bands[name]
            try:
                with rasterio.open(s.href) as ds:
                    left, bottom, right, top = view = view or tuple(ds.bounds)
                    ratio = (right - left) / (top - bottom)
                    w = max(1, round(max_px if ratio >= 1 else max_px * ratio))
                    h = max(1, round(max_px / ratio if ratio >= 1 else max_px))
                    window = ds.window(left, bottom, right, top)
                    shape = (
                        max(1, min(h, round(window.height))),
                        max(1, min(w, round(window.width))),
                    )
                    native = ds.read(
                        1, window=window, out_shape=shape, resampling=Resampling.nearest
                    )
            except RasterioIOError as e:
                raise DataError(f"cannot read band {name} ({s.href}) for the quicklook: {e}") from e
            dns.append(to_model_scale(native, s.offset, True))
    shape = min((d.shape for d in dns), key=lambda t: t[0] * t[1])
    return true_colour(*(d[: shape[0], : shape[1]] for d in dns))


def quicklook_or_none(product: Product, view: Bounds | None = None) -> np.ndarray | None:
    """`read_quicklook`, or None (and a warning) when it cannot be read: a quicklook costs the
    picture its quicklook, not the job its outputs.

    Read it before the product is decoded in full: measured on the 10980² bench tile, the same
    decimated read took 0.5 s in a fresh process and 40 s after `classify_product` had decoded
    the tile (GDAL 3.12's JPEG2000 driver; not reproduced by reading one band in full, cause
    not found)."""
    try:
        return read_quicklook(product, view)
    except DataError as e:
        logger.warning("thumbnail of %s drawn without its quicklook: %s", product.id, e)
        return None


def product_thumbnail(
    product: Product,
    layer: MapLayer,
    view: Bounds,
    *,
    title: str,
    subtitle: str,
    quicklook: np.ndarray | bool | None = True,
) -> bytes:
    """`thumbnail_png` of a product's map beside its quicklook over `view` (`quicklook`: the
    RGBA read already by `quicklook_or_none`, None for none, True to read it now)."""
    if quicklook is True:
        quicklook = quicklook_or_none(product, view)
    rgba = quicklook if isinstance(quicklook, np.ndarray) else None
    return thumbnail_png(layer, view, title=title, subtitle=subtitle, quicklook=rgba)
