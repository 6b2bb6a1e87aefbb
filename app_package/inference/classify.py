"""Classifying a whole Sentinel-2 product chip by chip into a COG class map and a STAC catalog:
the product is read strip by strip (`reader`), each strip's chips are classified
(`classifier`), the probabilities stitched into the map grid (`tiling`), cells under clouds or
snow given the cloud class (`clouds`), and the map written as COGs (`cog`) with its STAC item
(`items`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from affine import Affine

from app_package import __version__
from app_package.eo.bands import CLOUD_CLASS
from app_package.eo.sentinel2 import Product, open_product
from app_package.errors import ModelError
from app_package.inference.classifier import ChipClassifier, Network
from app_package.inference.clouds import (
    DEFAULT_CLOUD_MASK,
    DEFAULT_CLOUD_THRESHOLD,
    MASK_VALUES,
    CloudMask,
    CloudMaskMethod,
    apply_cloud_class,
    begin_cloud_mask,
    cell_shares,
    check_threshold,
    choose_method,
    cloud_cover,
)
from app_package.inference.items import (
    CLASS_ASSET,
    CLOUD_MAP_CLASS,
    CLOUD_MASK_ASSET,
    CONFIDENCE_ASSET,
    PREVIEW_ASSET,
    THUMBNAIL_ASSET,
    CloudSummary,
    MapClass,
    OutputGrid,
    build_catalog,
    build_item,
    map_classes,
    output_id,
    value_colors,
)
from app_package.inference.reader import (
    PREFETCH_DEPTH,
    Prefetch,
    ProductGrid,
    Strip,
    product_grid,
    read_strips,
    strip_chip_rows,
    usable_cpus,
)
from app_package.inference.tiling import (
    ChipGrid,
    ProbabilityMosaic,
    extract_chips,
)
from app_package.util.outputs import atomic_dir, check_output_free
from app_package.util.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from app_package.model.spec import ModelSpec

logger = logging.getLogger(__name__)

CATALOG = "catalog.json"
THUMBNAIL_FILE = "thumbnail.png"
CLOUD_MASK_FILE = "cloud-mask.tif"


class _Stages:
    """Wall seconds of a run's stages, in order (the INFO line benchmarks read)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._t
        self._t = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in self.laps.items())


class ProductClassification(NamedTuple):
    """What `classify_product` returns (a tuple: unpacks as before, the cloud mask last)."""

    classes: np.ndarray  # [rows, cols] uint8 class values, CLASS_NODATA, CLOUD_CLASS
    confidence: np.ndarray  # [rows, cols] float32 top-class probability, NaN where none
    transform: Affine  # of the map's cells
    pgrid: ProductGrid
    grid: ChipGrid
    times: dict[str, float]  # model_s, chips, cloud_mask_s (reading + computing the mask)
    clouds: CloudMask | None  # the mask the cloud class came from, at its own resolution


def check_cloud_class_free(spec: ModelSpec) -> None:
    """ModelError when a model's classes reach the cloud class's value."""
    if len(spec.classes) > CLOUD_CLASS.value:
        raise ModelError(
            f"the model has {len(spec.classes)} classes: its class {CLOUD_CLASS.value} "
            f"({spec.classes[CLOUD_CLASS.value]}) would be mistaken for the cloud class; "
            "classify it with the cloud mask 'none'"
        )


def classify_product(
    product: Product,
    module: Network | Callable[[], Network],
    spec: ModelSpec,
    *,
    stride: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: ProgressCallback | Callable[[float, str], None] = no_progress,
    read_threads: int | None = None,
    precision: str = "auto",
    inference_threads: int | None = None,
    cloud_mask: str | CloudMaskMethod = DEFAULT_CLOUD_MASK,
    cloud_threshold: float = DEFAULT_CLOUD_THRESHOLD,
    per_chip: bool = False,
) -> ProductClassification:
    """Classify every chip; cells more than `cloud_threshold` under clouds or snow (by the
    `cloud_mask` method, see `clouds`) take the cloud class.

    At strides below the chip size a SmallCNN computes its features once per strip and pools
    them per chip window (`window_features`; `times["windows"]` is 1) instead of classifying
    every overlapping chip from scratch; `per_chip` keeps the exact per-chip path. At the chip
    size's stride both are the per-chip path.

    `module`: the network, or a function that loads it (`ModelRef.loader`): decoding starts
    first, while torch is imported and the weights load (a core's time otherwise spent before
    the first band is read).

    `inference_threads`: threads that classify on the CPU beside the reader (default: the
    usable CPUs), each running torch with one thread of its own on its share of a strip's
    chips (or windows). Not torch's own OpenMP threads: those spin while they wait at their
    barriers and take the cores that JPEG2000 decoding needs (on 2 cores, 2 OpenMP threads
    made the benchmark tile slower than 1, and the L2A benchmark product 2.9 x slower beside
    another busy process).
    Torch's thread count is restored afterwards.

    The cloud mask's reads come before the bands are decoded (a decimated read of a JPEG2000
    band after the product was decoded in full was measured ~80 x slower, see
    `thumbnail.quicklook_or_none`); the rest of it (s2cloudless's import and LightGBM, or the
    SCL read) runs in a thread beside the decoding. `times["cloud_mask_s"]` is its wall time,
    `times["cloud_mask_cpu_s"]` that thread's CPU time; `times["model_cpu_s"]` is the
    inference threads' CPU time.
    """
    sources = product.require(spec.bands)
    method = choose_method(product, cloud_mask)
    threshold = check_threshold(cloud_threshold)
    if method is not CloudMaskMethod.NONE:
        check_cloud_class_free(spec)
    pgrid = product_grid(sources)
    grid = ChipGrid(pgrid.width, pgrid.height, spec.chip_size, stride or spec.chip_size)
    t0 = time.perf_counter()
    mask_rest = begin_cloud_mask(product, method, read_threads)  # the reads that must come first
    cloud_s = time.perf_counter() - t0 if mask_rest is not None else 0.0
    # the rest of the mask (s2cloudless: its import and LightGBM, seconds of CPU) beside the
    # decoding, in a thread of its own: the cores are not all busy all the time
    # (the pool waits for it on the way out, after an error too: no thread left running)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-mask") as mask_pool:
        mask_job = mask_pool.submit(_timed, mask_rest) if mask_rest is not None else None
        windows = not per_chip and window_features(spec, grid)
        strips = read_strips(
            sources,
            pgrid,
            grid,
            apply_offset=spec.radiometric_offset_applied,
            threads=read_threads,
            buffers=PREFETCH_DEPTH + 2,
            extract=not windows,
        )
        with Prefetch(strips, PREFETCH_DEPTH) as ahead:  # one strip at a time (see read_strips)
            import torch

            from app_package.model.networks import resolve_device

            dev = resolve_device(device)
            before = torch.get_num_threads()
            workers = 1
            if dev.type == "cpu":
                torch.set_num_threads(1)
                workers = max(1, inference_threads or usable_cpus())
            pool = ThreadPoolExecutor(workers, "classify") if workers > 1 else None
            try:
                from app_package.model.onnx import OnnxNetwork

                net = module if isinstance(module, torch.nn.Module | OnnxNetwork) else module()
                classifier = ChipClassifier(net, spec, dev, batch_size, precision)
                if windows and not classifier.windows_supported():
                    logger.info("%s: no window features, every chip classified", type(net).__name__)
                    windows = False
                classes, confidence, times = _classify_strips(
                    ahead, classifier, grid, progress, windows, pool
                )
            finally:
                torch.set_num_threads(before)
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        t0 = time.perf_counter()
        masked = mask_job.result() if mask_job is not None else None
        waited = time.perf_counter() - t0
    transform = grid.cell_transform(pgrid.transform)
    clouds: CloudMask | None = None
    if masked is not None:
        clouds, mask_s, mask_cpu_s = masked
        logger.info(
            "cloud mask: %.2f s (%.2f s CPU) beside the decoding, %.2f s waited for",
            mask_s, mask_cpu_s, waited,
        )  # fmt: skip
        cloud_s += mask_s
        times["cloud_mask_cpu_s"] = mask_cpu_s
    if clouds is not None:
        t0 = time.perf_counter()
        shares = cell_shares(clouds, transform, classes.shape)
        classes, confidence = apply_cloud_class(classes, confidence, shares, threshold)
        cloud_s += time.perf_counter() - t0
        logger.info(
            "cloud mask of %s (%s): %.1f %% of its pixels, %.1f %% of the map's cells; %.2f s",
            product.id, method.value, 100 * clouds.masked_share(), cloud_cover(classes), cloud_s,
        )  # fmt: skip
    times["cloud_mask_s"] = cloud_s
    return ProductClassification(classes, confidence, transform, pgrid, grid, times, clouds)


def _timed[T](work: Callable[[], T]) -> tuple[T, float, float]:
    """work() and its wall and CPU seconds (this thread's)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    return work(), time.perf_counter() - t0, time.thread_time() - c0


def window_features(spec: ModelSpec, grid: ChipGrid) -> bool:
    """Whether the map is made from window features (`ChipClassifier.window_probabilities`):
    strides below the chip size, a SmallCNN, chip and stride multiples of its feature stride.
    Decided from the spec alone: torch is imported while the first strips decode, not before."""
    from app_package.model.spec import SMALLCNN_FEATURE_STRIDE as step

    return (
        spec.arch == "smallcnn"
        and grid.stride < grid.chip
        and grid.stride % step == 0
        and grid.chip % step == 0
    )


def _strip_probabilities(
    strip: Strip,
    classifier: ChipClassifier,
    grid: ChipGrid,
    windows: bool,
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """[nr·nc, K] probabilities of a strip's chips (zero where not valid), the work shared
    over `pool`'s threads."""
    nr, nc = strip.valid.shape
    flat = strip.valid.reshape(-1)
    if windows:
        assert strip.block is not None
        probs = classifier.window_probabilities(strip.block, grid, strip.valid, pool)
        return probs.reshape(nr * nc, -1)
    chips = strip.chips
    if chips is None:  # a block without window features: its chips, a few rows at a time
        assert strip.block is not None
        rows = strip_chip_rows(grid, strip.block.shape[0], extract=True)
        return np.concatenate([
            _strip_probabilities(
                Strip(r, strip.valid[r:r + rows], chips=extract_chips(
                    strip.block[:, r * grid.stride : (min(r + rows, nr) - 1) * grid.stride
                                + grid.chip], grid)),
                classifier, grid, False, pool,
            )
            for r in range(0, nr, rows)
        ])  # fmt: skip
    probs = np.zeros((nr * nc, len(classifier.spec.classes)), dtype=np.float32)
    if flat.all():  # the usual case: no 290 MB copy of the valid chips
        probs[:] = classifier.in_threads(chips, pool)
    elif flat.any():
        probs[flat] = classifier.in_threads(chips[flat], pool)
    return probs


def _classify_strips(
    strips: Iterable[Strip],
    classifier: ChipClassifier,
    grid: ChipGrid,
    progress: ProgressCallback | Callable[[float, str], None],
    windows: bool = False,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    n_classes = len(classifier.spec.classes)
    mosaic = ProbabilityMosaic(grid, n_classes)
    times = {"model_s": 0.0, "chips": 0.0, "windows": float(windows)}
    done = 0
    for strip in strips:
        nr, nc = strip.valid.shape
        flat = strip.valid.reshape(-1)
        t0 = time.perf_counter()
        probs = _strip_probabilities(strip, classifier, grid, windows, pool)
        times["model_s"] += time.perf_counter() - t0
        times["chips"] += float(flat.sum())
        mosaic.add(strip.r0, probs.reshape(nr, nc, -1), strip.valid)
        done += nr
        progress(100.0 * done / grid.n_rows, f"classified chip rows {done}/{grid.n_rows}")
    classes, confidence = mosaic.result()
    times["model_cpu_s"] = classifier.cpu_s
    return classes, confidence, times


def class_map_thumbnail(
    product: Product,
    classes: np.ndarray,
    transform: Affine,
    pgrid: ProductGrid,
    mclasses: list[MapClass],
    model_uri: str,
    model_version: str | None,
    quicklook: np.ndarray | bool | None = True,
) -> bytes:
    """The PNG for people: the class map with its legend beside the product's quicklook
    (`quicklook`: read already, or True to read it now)."""
    from app_package.inference.cog import CLASS_NODATA
    from app_package.inference.thumbnail import MapLayer, Swatch, product_thumbnail

    rows, cols = classes.shape
    t = transform
    extent = (t.c, t.f + t.e * rows, t.c + t.a * cols, t.f)
    layer = MapLayer(
        classes,
        [Swatch(c.value, c.description, c.rgb) for c in mclasses],
        CLASS_NODATA,
        extent,
        f"Land cover ({abs(transform.a):g} m cells)",
    )
    version = f" (version {model_version})" if model_version else ""
    return product_thumbnail(
        product,
        layer,
        pgrid.bounds,
        title=product.id,
        subtitle=f"EuroSAT land cover · model {model_uri}{version} · "
        f"{product.datetime:%Y-%m-%d %H:%M} UTC",
        quicklook=quicklook,
    )


def classify(
    product: str,
    model: str,
    output: Path,
    *,
    stride: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    tracking_uri: str | None = None,
    progress: ProgressCallback | Callable[[float, str], None] = no_progress,
    runtime: str = "torch",
    cloud_mask: str = DEFAULT_CLOUD_MASK,
    cloud_threshold: float = DEFAULT_CLOUD_THRESHOLD,
    per_chip: bool = False,
) -> Path:
    """Classify a Sentinel-2 product (L1C or L2A) with a model; write COGs, pictures and STAC
    to `output`.

    `tracking_uri`: the MLflow store an MLflow model URI resolves against (as in training).
    `runtime`: "torch" (PyTorch) or "onnx" (the model's ONNX file, ONNX Runtime, CPU).
    `cloud_mask`: auto (SCL for L2A, s2cloudless for L1C with B10, else none), s2cloudless,
    scl or none; `cloud_threshold`: the share of a cell the mask must cover for the cell to
    be class Cloud (default 0.5). The mask is written as its own COG (`cloud-mask`).
    `per_chip`: classify every chip from scratch at strides below the chip size, instead of
    pooling features computed once per strip (see `classify_product`).

    Returns `output/catalog.json`. Nothing is left in `output` when anything fails.
    """
    from app_package.inference.cog import write_class_cog, write_confidence_cog, write_preview
    from app_package.inference.thumbnail import quicklook_or_none
    from app_package.model.source import resolve_model

    output = Path(output)
    check_output_free(output)
    clock = _Stages()
    progress(0.0, "opening product")
    prod = open_product(product)
    progress(1.0, "loading model")
    loaded = resolve_model(model, tracking_uri=tracking_uri)
    spec = loaded.spec
    missing = [b for b in spec.bands if b not in prod.bands]
    if missing:
        prod.require(spec.bands)  # raises, naming the bands and the assets present
        raise ModelError(f"model {model} needs bands {missing} the product lacks")  # unreachable
    method = choose_method(prod, cloud_mask)  # before any work: a wrong option fails now
    threshold = check_threshold(cloud_threshold)
    if method is not CloudMaskMethod.NONE:
        check_cloud_class_free(spec)

    # the quicklook first: after the whole product is decoded the same read is ~80 x slower
    clock.lap("open_s")
    quicklook = quicklook_or_none(prod)  # the whole product: the map's extent
    clock.lap("quicklook_s")
    classes, confidence, transform, pgrid, grid, times, clouds = classify_product(
        prod,
        loaded.loader_for(runtime),
        spec,
        stride=stride,
        batch_size=batch_size,
        device=device,
        progress=lambda p, m: progress(2.0 + 0.93 * p, m),
        cloud_mask=method,
        cloud_threshold=threshold,
        per_chip=per_chip,
    )
    clock.lap("classify_s")
    progress(95.0, "writing COGs and STAC")
    mclasses = map_classes(spec.classes)
    summary: CloudSummary | None = None
    hrefs = {
        CLASS_ASSET: "./classification.tif",
        CONFIDENCE_ASSET: "./confidence.tif",
        PREVIEW_ASSET: "./preview.png",
        THUMBNAIL_ASSET: f"./{THUMBNAIL_FILE}",
    }
    if clouds is not None:
        mclasses.append(CLOUD_MAP_CLASS)
        summary = CloudSummary(
            clouds.method.value, threshold, cloud_cover(classes), MASK_VALUES, clouds.resolution
        )
        hrefs[CLOUD_MASK_ASSET] = f"./{CLOUD_MASK_FILE}"
    colors = value_colors(mclasses)
    item_id = output_id(prod.id, "landcover")
    with atomic_dir(output) as tmp:
        folder = tmp / item_id
        folder.mkdir()
        write_class_cog(folder / "classification.tif", classes, transform, pgrid.crs, colors)
        write_confidence_cog(folder / "confidence.tif", confidence, transform, pgrid.crs)
        if clouds is not None:
            write_class_cog(
                folder / CLOUD_MASK_FILE,
                clouds.values,
                clouds.transform,
                clouds.crs,
                value_colors(MASK_VALUES),
                description="cloud_mask",
            )
        write_preview(folder / "preview.png", classes, colors)
        clock.lap("cogs_s")
        progress(97.0, "drawing the thumbnail")
        (folder / THUMBNAIL_FILE).write_bytes(
            class_map_thumbnail(
                prod, classes, transform, pgrid, mclasses, loaded.uri, loaded.version, quicklook
            )
        )
        clock.lap("thumbnail_s")
        item = build_item(
            item_id=item_id,
            source_id=prod.id,
            source_href=prod.source_href,
            source_type=prod.source_type,
            acquired=prod.datetime,
            grid=OutputGrid(pgrid.crs, transform, grid.n_cols, grid.n_rows, pgrid.bounds),
            classes=mclasses,
            model_uri=loaded.uri,
            model_version=loaded.version,
            software_version=__version__,
            stride=grid.stride,
            model_item_href=loaded.item_href,
            hrefs=hrefs,
            clouds=summary,
            window_features=bool(times["windows"]),
        )
        import pystac

        catalog = build_catalog(item)
        catalog.set_self_href(str(tmp / CATALOG))
        item.set_self_href(str(folder / f"{item_id}.json"))
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    clock.lap("stac_s")
    logger.info(
        "classify stages of %s: %s; of which model %.2f s, cloud mask %.2f s; CPU: model "
        "%.2f s, cloud mask %.2f s",
        prod.id, clock, times["model_s"], times["cloud_mask_s"], times["model_cpu_s"],
        times.get("cloud_mask_cpu_s", 0.0),
    )  # fmt: skip
    progress(100.0, f"wrote {output / CATALOG}")
    return output / CATALOG
