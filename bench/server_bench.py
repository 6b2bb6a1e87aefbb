"""Server benchmark: execute and status-poll latency under 20 concurrent clients; a job burst.

Starts `app-package serve` on a free loopback port (test configuration: the `sleep` process, so
the numbers measure the service, not training), then 20 client threads submit the jobs at once
(`POST …/execution` → 201) while the concurrency limit is 2, poll every job's status until all are
terminal, and check that every job finished exactly once.

`--store sqlite` (default): one worker, the embedded SQLite store, 100 jobs → server.json.
`--store postgresql`: a throwaway PostgreSQL (tests/pgserve.py), the same burst with 1 and with 2
server workers (`serve --workers N`), reporting execute → 201 p50/p95 and jobs/min for each.

Usage: `.venv/bin/python -m bench.server_bench [--out bench/results/server.json]`
       `.venv/bin/python -m bench.server_bench --store postgresql \\
            --out bench/results/server_pg.json`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "tests" / "support" / "server-config.yml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(_pct(ms, 50), 2),
        "p95_ms": round(_pct(ms, 95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def run(
    jobs: int, clients: int, max_jobs: int, steps: int, store: str = "", workers: int = 1
) -> dict[str, Any]:
    """One server (`workers` processes, job store `store` or SQLite), one burst of `jobs`."""
    data = Path(tempfile.mkdtemp(prefix="server-bench-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(REPO), APP_PACKAGE_DATA_DIR=str(data / "var"),
               APP_PACKAGE_MAX_JOBS=str(max_jobs), APP_PACKAGE_URL=url,
               APP_PACKAGE_JOB_STORE=store)  # fmt: skip
    log = (data / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", "from app_package.cli import main; main()", "serve",
         "--port", str(port), "--config", str(CONFIG), "--workers", str(workers)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(url + "/conformance", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start; see {data / 'server.log'}")
            time.sleep(0.3)

        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return local.s

        def submit(i: int) -> tuple[float, int, str]:
            t = time.perf_counter()
            r = session().post(
                f"{url}/processes/sleep/execution",
                json={"inputs": {"steps": steps, "seconds": 0.05}},
                headers={"Prefer": "respond-async"},
                timeout=60,
            )
            return (time.perf_counter() - t) * 1000, r.status_code, r.json().get("jobID", "")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            submitted = list(pool.map(submit, range(jobs)))
        submit_s = time.perf_counter() - t0
        ids = [job for _, code, job in submitted if code == 201]

        poll_ms: list[float] = []
        final: dict[str, str] = {}
        lock = threading.Lock()

        def poll(job: str) -> None:
            while True:
                t = time.perf_counter()
                r = session().get(f"{url}/jobs/{job}", timeout=60)
                with lock:
                    poll_ms.append((time.perf_counter() - t) * 1000)
                status = r.json()["status"]
                if status in ("successful", "failed", "dismissed"):
                    with lock:
                        final[job] = status
                    return
                time.sleep(0.25)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(poll, ids))
        drain_s = time.perf_counter() - t0
        listed = requests.get(f"{url}/jobs", params={"limit": 1000}, timeout=30).json()
        outputs = sorted(p.name for p in (data / "var" / "outputs").iterdir() if p.is_dir())
        return {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "job_store": "postgresql" if store else "sqlite",
            "server_workers": workers,
            "clients": clients,
            "jobs": jobs,
            "max_concurrent_jobs": max_jobs,
            "job": f"sleep process, {steps} steps x 0.05 s (child process start dominates)",
            "execute_201": _summary([ms for ms, _, _ in submitted]),
            "status_poll": _summary(poll_ms),
            "submit_all_s": round(submit_s, 2),
            "all_finished_s": round(drain_s, 2),
            "jobs_per_s": round(len(ids) / drain_s, 2),
            "jobs_per_min": round(60 * len(ids) / drain_s, 1),
            "answered_201": len(ids),
            "unique_job_ids": len(set(ids)),
            "successful": sum(1 for s in final.values() if s == "successful"),
            "listed_by_/jobs": listed["numberMatched"],
            "output_folders": len(outputs),
            "none_lost_or_duplicated": (
                len(set(ids)) == jobs
                and sum(1 for s in final.values() if s == "successful") == jobs
                and listed["numberMatched"] == jobs
                and outputs == sorted(set(ids))
            ),
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "server.json")
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--max-jobs", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--load", default="", help="what else ran on the machine (recorded as is)")
    args = p.parse_args(argv)
    if args.store == "sqlite":
        result = run(args.jobs, args.clients, args.max_jobs, args.steps)
        ok = bool(result["none_lost_or_duplicated"])
    else:
        result = run_postgres(args.jobs, args.clients, args.max_jobs, args.steps)
        ok = all(r["none_lost_or_duplicated"] for r in result["runs"])
    result["machine_load"] = {"loadavg_1_5_15_before": list(LOADAVG), "note": args.load}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


LOADAVG = os.getloadavg()


def run_postgres(jobs: int, clients: int, max_jobs: int, steps: int) -> dict[str, Any]:
    """The burst on a PostgreSQL job store with 1, then 2 server workers (a fresh database each)."""
    sys.path.insert(0, str(REPO))
    from tests.support.pgserve import PostgresServer

    pg = PostgresServer().start()
    try:
        runs = [
            run(jobs, clients, max_jobs, steps, pg.create_database(f"bench{w}"), workers=w)
            for w in (1, 2)
        ]
    finally:
        pg.destroy()
    return {
        "what": "execute -> 201 latency and sleep-job throughput, PostgreSQL job store, "
        "1 vs 2 server workers (one host, one port)",
        "postgresql": "Debian server binaries, throwaway cluster on loopback (fsync off)",
        "runs": runs,
        "summary": [_brief(r) for r in runs],
    }


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "server_workers": r["server_workers"],
        "execute_201_p50_ms": r["execute_201"]["p50_ms"],
        "execute_201_p95_ms": r["execute_201"]["p95_ms"],
        "jobs_per_min": r["jobs_per_min"],
    }


if __name__ == "__main__":
    raise SystemExit(main())
