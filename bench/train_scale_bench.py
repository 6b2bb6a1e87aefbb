"""Training at EuroSAT scale: `app-package eurosat-to-stac` and `app-package train` on 27,000 chips.

    .venv/bin/python -m bench.train_scale_bench     # 27,000 chips: a few minutes on 2 cores, ~3 GB
                                                    # of disk (the catalog's copies of the chips)
    .venv/bin/python -m bench.train_scale_bench --chips 3000 --out /tmp/train_scale_3k.json \
        --work-dir ~/.cache/app-package/eurosat-3k  # a check in about a minute

1. The chips: the real EuroSAT-MS chips of ../shared/data/eurosat-ms-subset (else the bundled
   sample) repeated to `--chips` files in EuroSAT class folders (`<Class>/<Class>_<k>.tif`, k the
   copy's global number: deterministic names), hard-linked where the file system allows. Kept in
   the work folder between runs (rebuilt when the count or the source changes).
2. `app-package eurosat-to-stac` in a child process: wall and CPU time (its worker processes
   included). Goal: ≤ 60 s at 27,000 chips on 2 cores.
3. `app-package train --epochs 1` on that catalog (the default recipe otherwise: 12 bands,
   smallcnn, refit on train + validation, ONNX export and check, MLflow sqlite store in the work
   folder) in a child process: its peak RSS (its own VmHWM, polled from /proc; `wait4`'s figure,
   which also covers the processes it starts, is recorded beside it), chips/s and load time from
   its log. Goal: peak RSS ≤ 1.5 × the chip data (N × 13 × 64 × 64 × 2 bytes, all 13 bands as on
   disk).
4. The RSS of a child that only imports what `train` imports (python, torch, mlflow, rasterio):
   the fixed part of the peak, to tell it from the part that grows with the chips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "eurosat-ms-subset"
SAMPLE_DATA = REPO / "app_package" / "sample" / "eurosat"
DEFAULT_WORK_DIR = Path("~/.cache/app-package/eurosat-27k").expanduser()
CHIP_BYTES = 13 * 64 * 64 * 2  # one EuroSAT-MS chip: 13 bands of 64 × 64 uint16
RSS_GOAL = 1.5  # peak RSS ≤ 1.5 × the chip data
CATALOG_GOAL_S = 60.0  # eurosat-to-stac ≤ 60 s
GOAL_CHIPS = 27_000  # the size the goals are set for
MARKER = ".chips.json"
IMPORTS = (
    "import torch, mlflow, rasterio, onnxruntime, app_package.training.train, "
    "app_package.data.dataset, app_package.model.networks, app_package.model.onnx"
)


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: its times, its peak RSS and what it wrote to stderr."""

    command: list[str]
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int | None  # the process's own high-water mark (VmHWM), last seen alive
    peak_rss_with_children_bytes: int  # wait4: the largest of it and the processes it waited for
    stderr: str


def app_package_command() -> list[str]:
    """The `app-package` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "app-package"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from app_package.cli import main; main()"]


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set size of a live process in bytes (Linux), None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def run_child(
    command: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> ChildRun:
    """Run `command` to its end, its stderr kept in `log`; wall time, CPU time (`wait4`: the
    child and every process it waited for, e.g. a worker pool) and peak RSS: its own, polled
    from /proc while it runs, and wait4's, which also covers its children (e.g. the one MLflow
    starts to infer the model's pip requirements)."""
    t0 = time.perf_counter()
    with open(log, "w+") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        hwm: list[int] = []
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.05):
                value = _vm_hwm(proc.pid)
                if value is not None:
                    hwm.append(value)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return ChildRun(
        command=command,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=max(hwm) if hwm else None,
        peak_rss_with_children_bytes=usage.ru_maxrss * 1024,  # KiB on Linux
        stderr=stderr,
    )


def make_chip_folder(source: Path, dest: Path, n: int) -> dict[str, Any]:
    """`n` chips in EuroSAT class folders under `dest`: the source chips taken class by class in
    turn (so every class gets n/10 ± 1), each copy named `<Class>_<k>.tif` with k its number.

    Hard links where possible (no disk space, the same page cache), else copies. Reused when
    `dest` already holds the same count from the same source; otherwise built beside and renamed.
    """
    from app_package.data.eurosat import find_chips
    from app_package.eo.bands import EUROSAT_CLASS_NAMES

    chips = find_chips(source)
    wanted = {"chips": n, "source": str(source.resolve()), "source_chips": len(chips)}
    marker = dest / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return {**wanted, "reused": True, "linked": None, "seconds": 0.0}
    by_class = [[c for c in chips if c.class_name == name] for name in EUROSAT_CLASS_NAMES]
    by_class = [members for members in by_class if members]
    t0 = time.perf_counter()
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    linked = 0
    for k in range(n):
        members = by_class[k % len(by_class)]
        chip = members[(k // len(by_class)) % len(members)]
        target = tmp / chip.class_name / f"{chip.class_name}_{k + 1}.tif"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(chip.path, target)
            linked += 1
        except OSError:
            shutil.copyfile(chip.path, target)
    (tmp / MARKER).write_text(json.dumps(wanted))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return {**wanted, "reused": False, "linked": linked, "seconds": round(time.perf_counter() - t0)}


def parse_train_log(stderr: str) -> dict[str, Any]:
    """chips/s of each training epoch and the load time, from `train -v`'s log."""
    rates = [float(m) for m in re.findall(r"epoch \d+/\d+ .*?\((\d+(?:\.\d+)?) chips/s\)", stderr)]
    loaded = re.search(r"loaded (\d+) chips \(([0-9.]+) MB\) in ([0-9.]+) s", stderr)
    return {
        "epoch_chips_per_s": rates,
        "loaded_chips": int(loaded.group(1)) if loaded else None,
        "loaded_array_mb": float(loaded.group(2)) if loaded else None,
        "load_s": float(loaded.group(3)) if loaded else None,
    }


def machine() -> dict[str, Any]:
    """What ran it: CPU model, cores usable, memory, OS."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
    }


def _mb(n: float) -> float:
    return round(n / 1e6, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_scale.json")
    p.add_argument("--chips", type=int, default=GOAL_CHIPS, help="default: 27000")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                   help=f"chips, catalog, MLflow store (default: {DEFAULT_WORK_DIR})")  # fmt: skip
    p.add_argument("--source", type=Path, default=None,
                   help="real chips to repeat (default: ../shared/data/eurosat-ms-subset, "
                   "else the bundled sample)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=1, help="training epochs (default: 1)")
    p.add_argument("--skip-train", action="store_true", help="only build and time the catalog")
    p.add_argument("--app", default=None,
                   help="command line that runs app-package (default: this environment's entry "
                   "point), e.g. to measure another checkout")  # fmt: skip
    args = p.parse_args(argv)
    if args.chips < 30:
        p.error(f"--chips {args.chips}: give at least 30 (3 per class for the splits)")
    source = args.source or (REAL_DATA if REAL_DATA.is_dir() else SAMPLE_DATA)
    work = args.work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    app = shlex.split(args.app) if args.app else app_package_command()
    results: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python -m bench.train_scale_bench", *(argv or sys.argv[1:])]),
        "load_average_before": list(os.getloadavg()),
    }
    t_all = time.perf_counter()

    chips_dir = work / "chips"
    results["chips"] = make_chip_folder(source, chips_dir, args.chips)
    data_bytes = args.chips * CHIP_BYTES
    results["chip_data_mb"] = _mb(data_bytes)
    print(f"{args.chips} chips ({_mb(data_bytes)} MB) in {chips_dir}", file=sys.stderr)

    catalog = work / "stac"
    shutil.rmtree(catalog, ignore_errors=True)
    stac = run_child(
        [*app, "eurosat-to-stac", str(chips_dir), str(catalog)],
        cwd=work,
        log=work / "eurosat-to-stac.log",
    )
    results["eurosat_to_stac"] = {
        "command": " ".join(stac.command),
        "wall_s": round(stac.wall_s, 2),
        "cpu_s": round(stac.cpu_s, 2),
        "ms_per_chip": round(1000 * stac.wall_s / args.chips, 3),
        "load_average_after": list(os.getloadavg()),
    }
    print(f"eurosat-to-stac: {stac.wall_s:.1f} s wall, {stac.cpu_s:.1f} s CPU", file=sys.stderr)

    goals: dict[str, Any] = {
        "at_goal_size": args.chips == GOAL_CHIPS,
        "catalog_le_60_s": stac.wall_s <= CATALOG_GOAL_S,
    }
    if not args.skip_train:
        base = run_child([sys.executable, "-c", IMPORTS], cwd=work, log=work / "imports.log")
        output = work / "model-output"
        shutil.rmtree(output, ignore_errors=True)
        (work / "mlflow.db").unlink(missing_ok=True)
        shutil.rmtree(work / "mlruns", ignore_errors=True)
        cmd = [
            *app, "-v", "train", "--stac", str(catalog / "catalog.json"), "--output", str(output),
            "--epochs", str(args.epochs), "--device", "cpu",
            "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--experiment", "train-scale",
            "--model-name", "train-scale-bench",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        tr = run_child(cmd, cwd=work, log=work / "train.log", env=env)
        log = parse_train_log(tr.stderr)
        peak = tr.peak_rss_bytes or tr.peak_rss_with_children_bytes
        base_rss = base.peak_rss_with_children_bytes  # it starts no process
        ratio = peak / data_bytes
        results["import_baseline_rss_mb"] = _mb(base_rss)
        results["train"] = {
            "command": " ".join(tr.command),
            "wall_s": round(tr.wall_s, 2),
            "cpu_s": round(tr.cpu_s, 2),
            "peak_rss_mb": _mb(peak),
            "peak_rss_with_children_mb": _mb(tr.peak_rss_with_children_bytes),
            "peak_rss_over_chip_data": round(ratio, 3),
            # what grows with the chips, per byte of chip data: the peak less the imports' RSS
            "rss_above_imports_over_chip_data": round((peak - base_rss) / data_bytes, 3),
            **log,
            "load_average_after": list(os.getloadavg()),
        }
        goals["train_rss_le_1_5x_chip_data"] = ratio <= RSS_GOAL
        print(
            f"train: {tr.wall_s:.1f} s, peak RSS {_mb(peak)} MB = {ratio:.2f} × chip data "
            f"(imports alone {_mb(base_rss)} MB), load {log['load_s']} s, "
            f"{log['epoch_chips_per_s']} chips/s",
            file=sys.stderr,
        )
    results["goals_met"] = goals
    results["total_seconds"] = round(time.perf_counter() - t_all, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
