"""Toil on Slurm benchmark: products classified per minute by the tile-classification package with
`toil-cwl-runner --batchSystem slurm` against the local engine, in the same run, for 4 and 8
copies of the bundled product (the real 1536x768 px L1C subset, 13 JP2 bands), and Toil+Slurm's
overhead per product.

The cluster is the tests' (tests/support/slurm.py): munge, slurmctld and slurmd on this host, one
node offering all its cores, so the Slurm jobs compete for the same cores as the local runs did.
  local       the local engine's work (APP_PACKAGE_ENGINE=local): the library, `app-package
              classify`, once per product, one after another
  cwltool     `cwltool --no-container` on the package (its scatter runs serially)
  toil_slurm  the server engine's Toil command line with `--batchSystem slurm`: every classify step
              and the merge are Slurm jobs; from the `sbatch` of each to its end, Slurm's own
              times (squeue) give the queueing and running seconds
overhead_per_product_s = (toil_slurm wall - local wall) / products; with two product counts, a
line through both (`fit`) splits each runner's wall time into a fixed part and seconds per product.
The machine is shared: each runner's 1-minute load average at its start is recorded.

Run: `.venv/bin/python -m bench.slurm_bench` (needs `apt-get install slurm-wlm munge`).
Writes bench/results/slurm.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one command (it must succeed)."""
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} … failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall


def _rate(products: int, wall: float, load: float) -> dict[str, float]:
    return {"wall_s": round(wall, 2), "products_per_min": round(products * 60 / wall, 2),
            "loadavg_1m_before": round(load, 2)}  # fmt: skip


def _fit(runs: list[dict[str, Any]], runner: str) -> dict[str, float]:
    """wall = fixed + per_product × products, through the first and last run."""
    first, last = runs[0], runs[-1]
    walls = first[runner]["wall_s"], last[runner]["wall_s"]
    per = (walls[1] - walls[0]) / (last["products"] - first["products"])
    return {"fixed_s": round(walls[0] - per * first["products"], 2),
            "per_product_s": round(per, 2)}  # fmt: skip


def measure(n: int, root: Path, model: str, cluster_env: dict[str, str]) -> dict[str, Any]:
    """The three runners on `n` copies of the bundled product."""
    from app_package.jobs.cwl_engine import SLURM_COMMENT, runner_argv, slurm_env
    from app_package.jobs.cwl_local import local_copy
    from tests.support.cwl import BIN, CLASSIFICATION, directory, runner_env, write_product

    work = root / f"n{n}"
    products = [write_product(work / "staged", f"s2-l1c-{i}") for i in range(n)]
    env = runner_env(work)
    package = local_copy(CLASSIFICATION, work / "package")
    job = work / "job.json"
    job.write_text(json.dumps({"product": [directory(p) for p in products], "model": model}))
    entry = f"{package}#tile-classification"

    loads = [os.getloadavg()[0]]
    local = sum(
        _run([str(BIN / "app-package"), "classify", str(p), "--model", model,
              "--output", str(work / "local" / p.name)], work, env)
        for p in products
    )  # fmt: skip
    print(f"  {n} products: local {local:.1f} s", file=sys.stderr)
    (work / "cwltool").mkdir()
    loads.append(os.getloadavg()[0])
    cwltool = _run(
        [str(BIN / "cwltool"), "--no-container", "--outdir", str(work / "cwltool" / "out"),
         "--tmpdir-prefix", f"{work}/cwltool/tmp/", entry, str(job)], work / "cwltool", env,
    )  # fmt: skip
    print(f"  {n} products: cwltool {cwltool:.1f} s", file=sys.stderr)
    toil_work = work / "toil"
    toil_work.mkdir()
    loads.append(os.getloadavg()[0])
    comment = SLURM_COMMENT.format(job_id=f"bench-{n}")
    toil_env = {**env, **cluster_env, **slurm_env(comment, env)}
    argv = runner_argv("toil", package, "tile-classification", toil_work, "slurm")
    toil = _run([*argv, str(job)], toil_work, toil_env)
    print(f"  {n} products: toil+slurm {toil:.1f} s", file=sys.stderr)
    return {
        "products": n,
        "local": _rate(n, local, loads[0]),
        "cwltool": _rate(n, cwltool, loads[1]),
        "toil_slurm": {**_rate(n, toil, loads[2]), "slurm_jobs": _slurm_times(comment, toil_env)},
        "overhead_per_product_s": round((toil - local) / n, 2),
        "cwltool_overhead_per_product_s": round((cwltool - local) / n, 2),
    }


def _slurm_times(comment: str, env: dict[str, str]) -> dict[str, Any]:
    """Slurm's record of the run's jobs: how many, seconds queued and running (sums, max)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%k|%j|%V|%S|%e|%T"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def t(stamp: str) -> float:
        return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))

    rows = [line.split("|") for line in out.splitlines() if line.startswith(comment + "|")]
    queued = [t(start) - t(submit) for _, _, submit, start, _, _ in rows]
    running = [t(end) - t(start) for _, _, _, start, end, _ in rows]
    return {
        "jobs": len(rows),
        "classify_jobs": sum(name.endswith(".classify") for _, name, *_ in rows),
        "states": sorted({state for *_, state in rows}),
        "queued_s_sum": sum(queued), "queued_s_max": max(queued, default=0),
        "running_s_sum": sum(running), "running_s_max": max(running, default=0),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "slurm.json")
    p.add_argument("--products", type=int, nargs="+", default=[4, 8])
    args = p.parse_args(argv)

    from app_package.defaults import DEFAULT_MODEL_CATALOG
    from tests.support.slurm import SlurmCluster, machine

    load_before = os.getloadavg()
    cpus, mem = machine()
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "slurm_node": {"cpus": cpus, "real_memory_mib": mem}},
        "product": "the bundled L1C subset (app_package/sample/s2-l1c: 1536x768 px at 10 m, "
                   "13 JP2 bands), copied once per product",
        "model": "the shipped model (app_package/model/default)",
        "local_is": "app-package classify per product, one after another (the local engine's "
                    "library call)",
        "runs": [],
    }  # fmt: skip
    cluster = SlurmCluster().start()
    try:
        with tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp:
            for n in args.products:
                result["runs"].append(
                    measure(n, Path(tmp), str(DEFAULT_MODEL_CATALOG), cluster.env)
                )
    finally:
        cluster.stop()
    if len(result["runs"]) > 1:  # Toil+Slurm's start (fixed) apart from its cost per product
        result["fit"] = {r: _fit(result["runs"], r) for r in ("local", "cwltool", "toil_slurm")}
        per = result["fit"]["toil_slurm"]["per_product_s"] - result["fit"]["local"]["per_product_s"]
        result["fit"]["toil_slurm_minus_local_per_product_s"] = round(per, 2)
    result["loadavg_1_5_15_before"] = [round(x, 2) for x in load_before]
    result["loadavg_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
