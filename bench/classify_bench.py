"""Whole-tile classification benchmark: decode floor, classify command, model throughput, peak RSS.

Builds (once, cached outside the repo) a full-size L1C tile from the real 1536×768 subset by
mirrored tiling: 10980² at 10 m, 5490² at 20 m, 1830² at 60 m, all 13 bands, lossless OpenJPEG
JPEG2000 with 1024² tiles like ESA's products, in a SAFE layout (baseline 04.00, so the offset
path is timed too). Then measures on `--threads` cores:
  (a) decoding every band and nothing else, (b) `app-package classify` end to end (COG + STAC),
  (c) model-only chip throughput, (d) the classify command's peak RSS; (b) includes the cloud
  mask (s2cloudless, the default for L1C), whose own time classify logs and this reports.

Then the same tile at stride 16 (b16: window features, `classify --stride 16`), against (b).

Then a full-size L2A product in earth-search's layout (`tests.support.l2a.write_cog_product`:
the same real bands mirrored to 10980², 12 deflate COGs with 1024² blocks and overviews, SCL,
a STAC item with raster offsets; built once, cached): (a) decoding its 12 bands, (m) the
classifier step alone on the tile's own chips (2 threads: all cores; 1 thread: what classify
gives it beside the reader), (b) `app-package classify` end to end, (d) its peak RSS.

Run: `.venv/bin/python -m bench.classify_bench [--device cuda] [--arch resnet18]`.
Writes bench/results/classify.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SUBSET = REPO.parent / "shared" / "data" / "s2-l1c-T33UUU-subset"
BUNDLED_SUBSET = REPO / "app_package" / "sample" / "s2-l1c"  # the same real files, bundled
DEFAULT_TILE_DIR = Path.home() / ".cache" / "app-package" / "bench-tile"
TILE = 10980
STAMP = "20170216T102101"
SAFE_NAME = f"S2A_MSIL1C_{STAMP}_N0400_R065_T33UUU_BENCH.SAFE"


def build_tile(tile_dir: Path, subset: Path = SUBSET) -> Path:
    """The full-size SAFE product (built once; reused while its marker file exists)."""

    from app_package.eo.bands import S2_BANDS

    safe = tile_dir / SAFE_NAME
    marker = tile_dir / "complete.json"
    if marker.is_file() and safe.is_dir():
        return safe
    if not subset.is_dir():
        subset = BUNDLED_SUBSET
    if not subset.is_dir():
        raise SystemExit(f"real L1C subset not found at {subset}: the bench tile is built from it")
    shutil.rmtree(tile_dir, ignore_errors=True)
    img = safe / "GRANULE" / f"L1C_T33UUU_A008000_{STAMP}" / "IMG_DATA"
    img.mkdir(parents=True)
    from tests.support.datagen import write_mtd

    write_mtd(safe / "MTD_MSIL1C.xml", baseline="04.00")
    t0 = time.perf_counter()
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(len(S2_BANDS), os.cpu_count() or 1)) as pool:
        jobs = [(subset, img, b.name, b.resolution_m) for b in S2_BANDS]
        for name in pool.map(_encode_band, jobs):
            print(f"encoded {name} at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    marker.write_text(json.dumps({"built_s": time.perf_counter() - t0, "size": TILE}))
    return safe


def _encode_band(job: tuple[Path, Path, str, int]) -> str:
    """Mirror-tile one band of the subset to full tile size; write lossless tiled JPEG2000."""
    import rasterio
    from rasterio.transform import from_origin

    subset, img, name, resolution_m = job
    src = subset / f"T33UUU_{STAMP}_{name}.jp2"
    with rasterio.open(src) as ds:
        small = ds.read(1)
        crs, t = ds.crs, ds.transform
    size = TILE * 10 // resolution_m
    h, w = small.shape
    full = np.pad(small, ((0, size - h), (0, size - w)), mode="symmetric")
    dst = img / f"T33UUU_{STAMP}_{name}.jp2"
    with rasterio.open(
        dst, "w", driver="JP2OpenJPEG", width=size, height=size, count=1, dtype="uint16",
        crs=crs, transform=from_origin(t.c, t.f, t.a, t.a), QUALITY="100", REVERSIBLE="YES",
        BLOCKXSIZE="1024", BLOCKYSIZE="1024", NUM_THREADS="ALL_CPUS",
    ) as out:  # fmt: skip
        out.write(full, 1)
    return name


def measure_decode(safe: Path, threads: int) -> tuple[float, float]:
    """(a) Wall and CPU seconds to decode every band once, whole, with GDAL's JPEG2000 threads.

    CPU seconds (all threads) are reported too: on a shared machine wall time inflates, CPU time
    much less, and CPU / cores is what an idle machine would take at best.
    """
    import rasterio

    c0 = time.process_time()
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS=str(threads), GDAL_CACHEMAX=64):
        for f in sorted(safe.glob("GRANULE/*/IMG_DATA/*.jp2")):
            with rasterio.open(f) as ds:
                ds.read(1)
    return time.perf_counter() - t0, time.process_time() - c0


def make_model(tile_dir: Path, arch: str) -> Path:
    """A model folder of `arch` over the default model's bands (random weights: speed is the
    point)."""
    import torch

    from app_package.eo.bands import DEFAULT_MODEL_BANDS
    from app_package.model.networks import build_model, save_local
    from app_package.model.spec import ModelSpec

    folder = tile_dir / f"model-{arch}"
    spec = ModelSpec.for_bands(arch, DEFAULT_MODEL_BANDS)
    saved = folder / "model.json"
    if not saved.is_file() or json.loads(saved.read_text()) != spec.to_dict():
        torch.manual_seed(0)  # (re)built when the default model changes: the default is timed
        save_local(build_model(spec), spec, folder)
    return folder


def measure_model(model_dir: Path, device: str, batch_size: int, n_chips: int) -> dict[str, Any]:
    """(c) Chips/s of the classifier step (normalise + model + softmax) and the network alone."""
    import torch

    from app_package.inference.classifier import ChipClassifier
    from app_package.model.networks import resolve_device
    from app_package.model.source import load_model

    module, spec = load_model(str(model_dir))
    dev = resolve_device(device)
    rng = np.random.default_rng(0)
    chips = rng.integers(300, 4000, size=(n_chips, len(spec.bands), 64, 64), dtype=np.uint16)
    out: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        clf = ChipClassifier(module, spec, dev, batch_size, precision)
        clf(chips[: batch_size * 2])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        probs = clf(chips)
        dt = time.perf_counter() - t0
        out[f"{precision}_chips_per_s"] = round(n_chips / dt, 1)
        out[f"{precision}_classes"] = probs.argmax(1)
    same = float((out.pop("fp32_classes") == out.pop("bf16_classes")).mean())
    out["bf16_fp32_class_agreement"] = same
    # the network alone (bf16 where used), on chips already normalised into channels_last
    clf = ChipClassifier(module, spec, dev, batch_size, "auto")
    from app_package.model.networks import normalise

    x = normalise(chips[:batch_size], spec).to(dev).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(dev.type, torch.bfloat16, enabled=clf.autocast):
        clf.module(x)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, done = time.perf_counter(), 0
        while done < n_chips:
            clf.module(x)
            done += len(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out["network_only_chips_per_s"] = round(done / (time.perf_counter() - t0), 1)
    out["n_chips"] = n_chips
    return out


def build_l2a(tile_dir: Path) -> Path:
    """The full-size L2A COG product's item (built once; reused while its marker exists)."""
    from tests.support.l2a import write_cog_product

    folder = tile_dir / "l2a"
    marker = folder / "complete.json"
    item = folder / "product" / "item.json"
    if marker.is_file() and item.is_file():
        return item
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    write_cog_product(folder / "product", level="L2A", size=TILE, blocksize=1024)
    marker.write_text(json.dumps({"built_s": time.perf_counter() - t0, "size": TILE}))
    return item


def measure_decode_cogs(item: Path, threads: int) -> tuple[float, float]:
    """(a) of the L2A product: wall and CPU seconds to decode its 12 bands once, whole."""
    import rasterio

    doc = json.loads(item.read_text())
    files = [item.parent / a["href"] for k, a in doc["assets"].items() if k != "scl"]
    c0, t0 = time.process_time(), time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS=str(threads), GDAL_CACHEMAX=64):
        for f in files:
            with rasterio.open(f) as ds:
                ds.read(1)
    return time.perf_counter() - t0, time.process_time() - c0


def measure_model_on_tile(
    item: Path, model_dir: Path, batch_size: int, threads: tuple[int, ...]
) -> dict[str, Any]:
    """(m): the classifier step (uint16 → normalise → network → softmax) alone on every chip of
    the product, as classify reads them; timed around the classifier only, per thread count."""
    import torch

    from app_package.eo.sentinel2 import open_product
    from app_package.inference.classifier import ChipClassifier
    from app_package.inference.reader import product_grid, read_strips
    from app_package.inference.tiling import ChipGrid
    from app_package.model.source import load_model

    module, spec = load_model(str(model_dir))
    sources = open_product(str(item)).require(spec.bands)
    pgrid = product_grid(sources)
    grid = ChipGrid(pgrid.width, pgrid.height, spec.chip_size, spec.chip_size)
    clf = ChipClassifier(module, spec, torch.device("cpu"), batch_size)
    before = torch.get_num_threads()
    out: dict[str, Any] = {}
    for n in threads:
        torch.set_num_threads(n)
        clf(np.ones((batch_size, len(spec.bands), 64, 64), np.uint16))  # warm-up
        model_s, chips = 0.0, 0
        for strip in read_strips(sources, pgrid, grid, apply_offset=True, buffers=2):
            assert strip.chips is not None
            t0 = time.perf_counter()
            clf(strip.chips[strip.valid.reshape(-1)])
            model_s += time.perf_counter() - t0
            chips += int(strip.valid.sum())
        out[f"threads_{n}_s"] = round(model_s, 2)
        out[f"threads_{n}_chips_per_s"] = round(chips / model_s, 1)
    out["chips"] = chips
    torch.set_num_threads(before)
    return out


STAGES = re.compile(
    r"classify stages of \S+: (.*?); of which model ([0-9.]+) s.*?"
    r"CPU: model ([0-9.]+) s, cloud mask ([0-9.]+) s"
)


def measure_classify(
    safe: Path,
    model_dir: Path,
    device: str,
    batch_size: int,
    threads: int,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """(b) + (d): the CLI in a child process: wall time and its peak RSS (`extra`: more CLI
    options, e.g. the stride). The stages come from classify's INFO line."""
    out_dir = Path(tempfile.mkdtemp(prefix="classify-bench-")) / "out"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [
        sys.executable, "-c", "from app_package.cli import main; main()", "-v", "classify",
        str(safe), "--model", str(model_dir), "--output", str(out_dir), "--device", device,
        "--batch-size", str(batch_size), *extra,
    ]  # fmt: skip
    if shutil.which("taskset") and (os.cpu_count() or 1) > threads and device == "cpu":
        cmd = ["taskset", "-c", f"0-{threads - 1}", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # the peak RSS of this one child: GNU time where present (RUSAGE_CHILDREN's ru_maxrss is
    # the largest of all children so far)
    timed = ["/usr/bin/time", "-f", "MAXRSS_KB %M"] if Path("/usr/bin/time").is_file() else []
    proc = subprocess.run([*timed, *cmd], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"classify failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = re.search(r"MAXRSS_KB (\d+)", proc.stderr)
    rss_kib = int(peak.group(1)) if peak else usage.ru_maxrss
    cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
    item = next(out_dir.glob("*/*-landcover.json"))
    props = json.loads(item.read_text())["properties"]
    shutil.rmtree(out_dir.parent, ignore_errors=True)
    # the cloud mask's own time, from classify's INFO line ("cloud mask of … ; 3.02 s")
    mask = re.search(r"cloud mask of .*?; ([0-9.]+) s", proc.stderr)
    stages: dict[str, float] = {}
    found = STAGES.search(proc.stderr)
    if found:
        for part in found.group(1).split(", "):
            name, value = part.rsplit(" ", 1)
            stages[name] = float(value)
        # before classify's first stage and after its last: interpreter start, imports, exit
        stages["start_and_exit_s"] = round(wall - sum(stages.values()), 2)
        stages["model_s"] = float(found.group(2))  # within classify_s
        stages["model_cpu_s"] = float(found.group(3))  # the inference threads' CPU
        stages["cloud_mask_cpu_s"] = float(found.group(4))  # beside the decoding
    return {
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss_kib / 1024, 1),
        "cloud_mask": props.get("app-package:cloud_mask"),
        "cloud_mask_s": float(mask.group(1)) if mask else None,
        "eo_cloud_cover": props.get("eo:cloud_cover"),
        "window_features": props.get("app-package:window_features"),
        "stages_s": stages,
        "map_shape": props["proj:shape"], "command": " ".join(cmd[-14:]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tile-dir", type=Path, default=DEFAULT_TILE_DIR, help="tile cache folder")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classify.json")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--arch", default="smallcnn", help="smallcnn or resnet18")
    p.add_argument("--threads", type=int, default=2, help="CPU cores to use (default 2)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--model-chips", type=int, default=4096, help="chips for the model-only run")
    p.add_argument("--skip-classify", action="store_true", help="only (a) and (c)")
    p.add_argument("--skip-l2a", action="store_true", help="not the L2A COG product")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    safe = build_tile(args.tile_dir)
    model_dir = make_model(args.tile_dir, args.arch)
    if args.device == "cpu" and shutil.which("taskset") and (os.cpu_count() or 1) > args.threads:
        os.sched_setaffinity(0, set(range(args.threads)))
    result: dict[str, Any] = {
        "machine": {
            "cpu_cores_used": args.threads, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        },
        "tile": {"size_10m": TILE, "bands": 13, "path": str(safe)},
        "device": args.device, "arch": args.arch, "batch_size": args.batch_size,
    }  # fmt: skip
    print("(a) decoding all bands …", file=sys.stderr)
    wall, cpu = measure_decode(safe, args.threads)
    result["a_decode_s"] = round(wall, 2)
    result["a_decode_cpu_s"] = round(cpu, 2)
    print(f"    {result['a_decode_s']} s\n(c) model throughput …", file=sys.stderr)
    result["c_model"] = measure_model(model_dir, args.device, args.batch_size, args.model_chips)
    print(f"    {result['c_model']}", file=sys.stderr)
    if not args.skip_classify:
        print("(b) classify command …", file=sys.stderr)
        b = measure_classify(safe, model_dir, args.device, args.batch_size, args.threads)
        result["b_classify"] = b
        result["d_peak_rss_mb"] = b["peak_rss_mb"]
        result["b_over_a"] = round(b["wall_s"] / result["a_decode_s"], 3)
        result["b_over_a_cpu"] = round(b["cpu_s"] / result["a_decode_cpu_s"], 3)
        print(f"    {b['wall_s']} s\n(b16) classify --stride 16 …", file=sys.stderr)
        b16 = measure_classify(
            safe, model_dir, args.device, args.batch_size, args.threads, ("--stride", "16")
        )
        result["b16_classify"] = b16
        result["b16_over_b"] = round(b16["wall_s"] / b["wall_s"], 3)
        print(f"    {b16['wall_s']} s", file=sys.stderr)
        if not args.skip_l2a:
            result["l2a"] = measure_l2a(args, model_dir)
        result["load_average_1m_at_end"] = os.getloadavg()[0]
        result["goals"] = {
            "b_le_60s": b["wall_s"] <= 60, "b_le_1.15a": result["b_over_a"] <= 1.15,
            "b16_le_1.5b": result["b16_over_b"] <= 1.5,
            "d_le_3gb": max(b["peak_rss_mb"], b16["peak_rss_mb"]) <= 3072,
            "c_ge_3000": result["c_model"]["bf16_chips_per_s"] >= 3000
            or result["c_model"]["fp32_chips_per_s"] >= 3000,
            "c_network_only_ge_3000": result["c_model"].get("network_only_chips_per_s", 0) >= 3000,
        }  # fmt: skip
        if "l2a" in result:
            l2a = result["l2a"]
            result["goals"].update({
                "l2a_b_le_15s": l2a["b_classify"]["wall_s"] <= 15,
                "l2a_b_le_1.1_a_plus_m": l2a["b_over_a_plus_m"] <= 1.1,
                "l2a_d_le_3gb": l2a["b_classify"]["peak_rss_mb"] <= 3072,
            })  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def measure_l2a(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """(a), (m), (b), (d) of the full-size L2A COG product, in this order, same cores."""
    item = build_l2a(args.tile_dir)
    print("L2A (a) decoding its 12 bands …", file=sys.stderr)
    wall, cpu = measure_decode_cogs(item, args.threads)
    out: dict[str, Any] = {"product": str(item), "a_decode_s": round(wall, 2)}
    out["a_decode_cpu_s"] = round(cpu, 2)
    print(f"    {wall:.2f} s\nL2A (m) the classifier step on its chips …", file=sys.stderr)
    out["m_model"] = measure_model_on_tile(item, model_dir, args.batch_size, (args.threads, 1))
    print(f"    {out['m_model']}\nL2A (b) classify command …", file=sys.stderr)
    b = measure_classify(item, model_dir, args.device, args.batch_size, args.threads)
    out["b_classify"] = b
    m_all = out["m_model"][f"threads_{args.threads}_s"]
    out["b_over_a_plus_m"] = round(b["wall_s"] / (out["a_decode_s"] + m_all), 3)
    out["b_over_a_plus_m1"] = round(
        b["wall_s"] / (out["a_decode_s"] + out["m_model"]["threads_1_s"]), 3
    )
    print(f"    {b['wall_s']} s", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
