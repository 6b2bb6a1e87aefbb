"""Classifier-step throughput: PyTorch (fp32, and bf16 autocast as `classify` uses it where the
CPU computes bf16) against ONNX Runtime (CPU, fp32) on the same chips, in one run, with the same
number of threads.

The classifier step is what `app-package classify` runs per strip: uint16 chips → normalise →
network → softmax (`app_package.inference.classifier.ChipClassifier`), with the shipped default
model (its `model.pt` and its `model.onnx`). Each runtime is timed `--repeats` times after a
warm-up, alternating the runtimes so a change in the machine's load hits them alike; the median
is reported, with the class agreement between runtimes and the load average before and after.

Run: `.venv/bin/python -m bench.onnx_bench [--threads 2] [--chips 8192]`.
Writes bench/results/onnx.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "onnx.json")
    p.add_argument("--threads", type=int, default=2, help="threads for both runtimes (default 2)")
    p.add_argument("--chips", type=int, default=8192, help="chips per timed pass")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    import onnxruntime
    import torch

    from app_package.defaults import DEFAULT_MODEL_CATALOG
    from app_package.inference.classifier import ChipClassifier, use_bf16
    from app_package.model.source import resolve_model

    torch.set_num_threads(args.threads)  # ChipClassifier gives ONNX Runtime the same number
    load_before = os.getloadavg()
    ref = resolve_model(str(DEFAULT_MODEL_CATALOG))
    module, spec = ref.load().module, ref.spec
    cpu = torch.device("cpu")
    classifiers = {
        "torch_fp32": ChipClassifier(module, spec, cpu, args.batch_size, "fp32"),
        "torch_bf16": ChipClassifier(module, spec, cpu, args.batch_size, "bf16"),
        "onnx_fp32": ChipClassifier(ref.load_onnx(), spec, cpu, args.batch_size),
    }
    rng = np.random.default_rng(0)
    chips = rng.integers(300, 4000, size=(args.chips, len(spec.bands), 64, 64), dtype=np.uint16)
    times: dict[str, list[float]] = {k: [] for k in classifiers}
    classes: dict[str, np.ndarray] = {}
    for clf in classifiers.values():  # warm-up
        clf(chips[: args.batch_size * 2])
    for r in range(args.repeats):
        for name, clf in classifiers.items():
            t0 = time.perf_counter()
            probs = clf(chips)
            times[name].append(time.perf_counter() - t0)
            classes[name] = probs.argmax(1)
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{k} {args.chips / v[-1]:,.0f}/s" for k, v in times.items()
        ), file=sys.stderr)  # fmt: skip
    rates = {k: round(args.chips / statistics.median(v), 1) for k, v in times.items()}
    result: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_has_native_bf16": use_bf16(cpu, "auto"),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        },
        "model": {"catalog": str(DEFAULT_MODEL_CATALOG.relative_to(REPO)), "arch": spec.arch},
        "chips": args.chips, "batch_size": args.batch_size, "repeats": args.repeats,
        "chips_per_s_median": rates,
        "chips_per_s_all": {
            k: [round(args.chips / t, 1) for t in v] for k, v in times.items()
        },
        "onnx_over_torch_fp32": round(rates["onnx_fp32"] / rates["torch_fp32"], 3),
        "onnx_over_torch_bf16": round(rates["onnx_fp32"] / rates["torch_bf16"], 3),
        "class_agreement": {
            "onnx_vs_torch_fp32": float((classes["onnx_fp32"] == classes["torch_fp32"]).mean()),
            "onnx_vs_torch_bf16": float((classes["onnx_fp32"] == classes["torch_bf16"]).mean()),
        },
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
