"""The watcher against a live test server: the `sleep` target and the server's job records."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

from app_package.events.watch.watcher import Target
from tests.support.server import Server


def sleep_target(ogc: Server) -> Target:
    """Submit each item's URL as the `sleep` process's `data` input (a checked reference)."""
    return Target(
        endpoint=ogc.url, process="sleep", model="watch-test", product_input="data",
        model_input="tags", inputs={"steps": 1, "seconds": 0.05},
    )  # fmt: skip


def jobs_for(ogc: Server, keys: set[str] | None = None) -> list[dict[str, Any]]:
    """The server's own job records (its SQLite store), optionally only those with these keys."""
    with contextlib.closing(sqlite3.connect(ogc.data_dir / "jobs.db")) as conn:
        jobs = [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM jobs")]
    if keys is not None:
        jobs = [j for j in jobs if j.get("idempotency_key") in keys]
    return jobs
