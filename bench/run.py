"""Run every benchmark in turn; each writes bench/results/<name>.json (quoted by the README).

Usage: `make bench` (all) or `.venv/bin/python -m bench.run train classify` (some).
Each benchmark is its own module with its own options (`python -m bench.train_bench --help`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = {
    "train": "bench.train_bench",
    "classify": "bench.classify_bench",
    "server": "bench.server_bench",
    "job_list": "bench.job_list_bench",
    "onnx": "bench.onnx_bench",
    "landcover": "bench.landcover_bench",
    "train_scale": "bench.train_scale_bench",
    "slurm": "bench.slurm_bench",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}: choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in names:
        out = RESULTS / f"{name}.json"
        print(f"== {name} -> {out}", flush=True)
        code = subprocess.call([sys.executable, "-m", BENCHMARKS[name], "--out", str(out)])
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
