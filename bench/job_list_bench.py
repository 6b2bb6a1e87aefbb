"""Job-list benchmark: every filter of `/jobs` on a store holding 100,000 jobs, both stores.

Fills a SQLite store and a throwaway PostgreSQL store (tests/support/pgserve.py) with `--jobs`
job records (statuses, processes and creation times spread as a busy server's would be), then
times each query the job list makes (`JobStore.page`: the count and one page of 100) — the
store call behind `GET /jobs?...`, without HTTP — as the median of `--repeat` runs.

Usage: `.venv/bin/python -m bench.job_list_bench [--jobs 100000]`
       (writes bench/results/job_list.json, or --out)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app_package.jobs.store import JobQuery, JobStore, open_store

STATUSES = ("successful", "successful", "successful", "failed", "dismissed", "accepted", "running")
PROCESSES = ("tile-classification", "water-bodies", "eurosat-training")
QUERIES = {
    "all (first page)": JobQuery(limit=100),
    "status=running": JobQuery(statuses=frozenset({"running"}), limit=100),
    "status=failed,dismissed": JobQuery(statuses=frozenset({"failed", "dismissed"}), limit=100),
    "processID=eurosat-training": JobQuery(process_ids=frozenset({"eurosat-training"}), limit=100),
    "processID + status": JobQuery(
        process_ids=frozenset({"water-bodies"}), statuses=frozenset({"successful"}), limit=100
    ),
    "datetime=last day/..": JobQuery(created_from="2026-11-30T00:00:00.000000Z", limit=100),
    "minDuration=300": JobQuery(min_duration_s=300, limit=100),
    "deep page (offset 90,000)": JobQuery(limit=100, offset=90_000),
}


def _jobs(n: int) -> list[dict[str, Any]]:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        created = start + timedelta(seconds=i * 80)  # ~3 months of jobs
        status = STATUSES[i % len(STATUSES)]
        started: datetime | None = None
        finished: datetime | None = None
        if status != "accepted":
            started = created + timedelta(seconds=2)
            if status != "running":
                finished = started + timedelta(seconds=(i * 7) % 900)
        stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
        out.append(
            {
                "type": "process",
                "identifier": f"job-{i:06d}",
                "process_id": PROCESSES[i % 3],
                "status": status,
                "message": "",
                "progress": 100,
                "created": created.strftime(stamp),
                "started": started.strftime(stamp) if started else None,
                "finished": finished.strftime(stamp) if finished else None,
                "spec": {"inputs": {"product": f"/data/{i}.json"}},
            }
        )
    return out


def _fill(store: JobStore, jobs: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(jobs), 10_000):
        store.add_many(jobs[i : i + 10_000])
    return time.perf_counter() - t0


def _time(store: JobStore, repeat: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, query in QUERIES.items():
        times, matched = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            _, matched = store.page(query)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"median_ms": round(statistics.median(times), 2), "matched": matched}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench/results/job_list.json"))
    args = p.parse_args()
    from tests.support.pgserve import PostgresServer

    jobs = _jobs(args.jobs)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "jobs": args.jobs,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_store(str(Path(tmp) / "jobs.db"))
        result["sqlite"] = {
            "fill_s": round(_fill(sqlite, jobs), 1),
            "queries": _time(sqlite, args.repeat),
        }
        sqlite.close()
    pg = PostgresServer()
    pg.start()
    try:
        store = open_store(pg.create_database("bench"))
        result["postgresql"] = {
            "fill_s": round(_fill(store, jobs), 1),
            "queries": _time(store, args.repeat),
        }
        store.close()
    finally:
        pg.destroy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
