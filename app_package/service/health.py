"""`GET /health`: the service's health as EO application platforms read it — the API health
check format (`application/health+json`, the contract of EOAP's `eoap-api-health-check`):
`pass` or `warn` answer 200, `fail` 503. Checks: the job store (a query, timed), the MLflow
store (reachable), free disk in the output folder, free job slots. The store down is `fail`
(no job can be taken or answered); MLflow unreachable or little free disk is `warn` (jobs that
need them would fail, the rest goes on)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_package.util.timestamps import now_rfc3339

MEDIA_TYPE = "application/health+json"
MLFLOW_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    """One component's observation."""

    name: str  # `component:measurement`
    component_type: str
    status: str  # pass | warn | fail
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None  # what went wrong (omitted on pass)

    def document(self, time: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "componentType": self.component_type,
            "status": self.status,
            "time": time,
        }
        if self.observed_value is not None:
            doc["observedValue"] = self.observed_value
        if self.observed_unit is not None:
            doc["observedUnit"] = self.observed_unit
        if self.output and self.status != "pass":
            doc["output"] = self.output
        return doc


def timed(name: str, probe: Callable[[], object]) -> tuple[Check, object]:
    """Run `probe`; a `fail` naming the error if it raises, else a `pass` with its time."""
    t0 = time.perf_counter()
    try:
        value = probe()
    except Exception as e:
        return Check(name, "datastore", "fail", output=f"{type(e).__name__}: {e}"), None
    ms = round((time.perf_counter() - t0) * 1000, 1)
    return Check(name, "datastore", "pass", ms, "ms"), value


def mlflow_check(uri: str) -> Check:
    """Whether the MLflow store can be reached (a server answers /health; a sqlite or file
    store's folder exists)."""
    from app_package.training.tracking import check_reachable

    t0 = time.perf_counter()
    try:
        check_reachable(uri, timeout_s=MLFLOW_TIMEOUT_S)
    except Exception as e:
        return Check("mlflow:responseTime", "datastore", "warn", output=str(e))
    ms = round((time.perf_counter() - t0) * 1000, 1)
    return Check("mlflow:responseTime", "datastore", "pass", ms, "ms")


def disk_check(folder: Path, minimum: int) -> Check:
    """Free bytes where job outputs are written."""
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    status = "pass" if free >= minimum else "warn"
    output = f"{free >> 20} MiB free for job outputs, under {minimum >> 20} MiB"
    return Check("outputs:freeSpace", "system", status, free, "bytes", output)


def slots_check(running: int | None, max_jobs: int) -> Check:
    """Job slots free now (jobs beyond them queue as `accepted`)."""
    if running is None:
        return Check("jobs:freeSlots", "component", "fail", output="job store unavailable")
    return Check("jobs:freeSlots", "component", "pass", max(0, max_jobs - running), "jobs")


def report(checks: list[Check], version: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the health document of `checks`."""
    statuses = {c.status for c in checks}
    status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    t = now_rfc3339()
    doc: dict[str, Any] = {
        "status": status,
        "version": version,
        "serviceId": "app-package",
        "description": "app-package OGC API - Processes server",
        "checks": {c.name: [c.document(t)] for c in checks},
    }
    failing = [f"{c.name}: {c.output}" for c in checks if c.status != "pass" and c.output]
    if failing:
        doc["output"] = "; ".join(failing)
    return (503 if status == "fail" else 200), doc
