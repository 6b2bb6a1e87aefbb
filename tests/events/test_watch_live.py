"""End to end: `app-package watch` (the real CLI, as a process) classifies new Sentinel-2 items.

A real STAC API (stac-fastapi-static on loopback) serves items that are copies of the bundled
real L1C subset; `app-package serve` runs the real `tile-classification` process with a small
model. Items published while the watcher runs are classified exactly once; a webhook CloudEvent
adds one more; SIGTERM stops the watcher cleanly; a restart submits nothing again; with the
endpoint down an item waits, and is classified once the endpoint is back.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from app_package.errors import EX_TEMPFAIL
from app_package.events.watch.watcher import item_key
from tests.conftest import REPO
from tests.support.models import random_model
from tests.support.server import Server, free_port
from tests.support.stac_api import running_stac_api
from tests.support.watch import jobs_for
from tests.support.watchdata import COLLECTION, SAMPLE, GrowingCatalog

pytestmark = pytest.mark.slow


def _states(db: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return dict(con.execute("SELECT item_id, state FROM items").fetchall())


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)


def test_watch_classifies_new_items_exactly_once(tmp_path: Path) -> None:
    model = random_model(tmp_path / "models" / "smallcnn")
    srv = Server(
        tmp_path / "var", max_jobs=2, config=REPO / "pygeoapi-config.yml",
        extra_env={"APP_PACKAGE_ALLOW_PRIVATE_HOSTS": "true",
                   "APP_PACKAGE_DATA_ROOTS": f"{model.parent}:{SAMPLE}"},
    )  # fmt: skip
    catalog = GrowingCatalog(tmp_path / "stac")
    catalog.add("S2A_T33UUU_A", 10)
    catalog.add("S2A_T33UUU_CLOUDY", 90)
    state = tmp_path / "watch.db"
    hook_port = free_port()
    log_path = tmp_path / "watch.log"
    keys = {i: item_key("tile-classification", COLLECTION, i)
            for i in ("S2A_T33UUU_A", "S2A_T33UUU_C", "S2A_T33UUU_D", "S2A_T33UUU_E")}  # fmt: skip

    def watch(*extra: str) -> list[str]:
        return [
            sys.executable, "-c", "from app_package.cli import main; main()", "-v", "watch",
            "--stac-url", stac, "--collection", COLLECTION, "--max-cloud-cover", "50",
            "--datetime", "2017-01-01T00:00:00Z/..", "--endpoint", srv.url,
            "--model", str(model), "--state", str(state), "--max-backoff", "2", *extra,
        ]  # fmt: skip

    def all_successful(names: tuple[str, ...]) -> bool:
        jobs = jobs_for(srv, {keys[n] for n in names})
        failed = [j for j in jobs if j["status"] in ("failed", "dismissed")]
        assert not failed, failed
        return len(jobs) == len(names) and all(j["status"] == "successful" for j in jobs)

    srv.start()
    try:
        with running_stac_api(catalog.catalog_json) as stac:
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    watch("--interval", "1", "--listen", f"127.0.0.1:{hook_port}",
                          "--max-in-flight", "2"),
                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            try:
                _wait(lambda: state.exists() and "S2A_T33UUU_A" in _states(state), 60, "item A")
                catalog.add("S2A_T33UUU_C", 20, day=18)  # published while the watcher runs
                _wait(lambda: "S2A_T33UUU_C" in _states(state), 60, "item C")
                d = catalog.write_item("S2A_T33UUU_D", 30, day=19)  # pushed, never listed
                d["links"].append({"rel": "self", "href": catalog.url_of(stac, d["id"])})
                event = {"specversion": "1.0", "id": "evt-d", "source": "tests",
                         "type": "org.stacspec.item.created", "data": d}  # fmt: skip
                r = requests.post(f"http://127.0.0.1:{hook_port}/", json=event, timeout=10)
                assert r.status_code == 202, r.text
                _wait(lambda: all_successful(("S2A_T33UUU_A", "S2A_T33UUU_C", "S2A_T33UUU_D")),
                      300, "three classifications")  # fmt: skip
                _wait(lambda: set(_states(state).values()) == {"successful"}, 30, "state")
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=30)
            out = log_path.read_text()
            assert code == 0, out[-3000:]
            assert "stopped" in out
            assert "S2A_T33UUU_CLOUDY" not in _states(state)

            # a restart submits nothing again
            rerun = subprocess.run(watch("--once"), cwd=REPO, capture_output=True, timeout=120)
            assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
            assert len(jobs_for(srv)) == 3

            # the endpoint goes down: a new item waits; it comes back: the item is classified
            srv.stop()
            catalog.add("S2A_T33UUU_E", 5, day=20)
            down = subprocess.run(watch("--once"), cwd=REPO, capture_output=True, timeout=120)
            assert down.returncode == EX_TEMPFAIL, down.stderr.decode()[-2000:]
            assert _states(state)["S2A_T33UUU_E"] == "pending"
            srv.start()
            up = subprocess.run(watch("--once"), cwd=REPO, capture_output=True, timeout=120)
            assert up.returncode == 0, up.stderr.decode()[-2000:]
            _wait(lambda: all_successful(tuple(keys)), 300, "item E")

        # each item once; each result is that item's land-cover map
        jobs = jobs_for(srv)
        assert sorted(j["idempotency_key"] for j in jobs) == sorted(keys.values())
        for name, key in keys.items():
            (job,) = [j for j in jobs if j["idempotency_key"] == key]
            result = srv.get(f"/jobs/{job['identifier']}/results").json()
            child = [lk["href"] for lk in result["links"] if lk["rel"] in ("item", "child")]
            docs = [requests.get(h, timeout=10).json() for h in child]
            assert [d["id"] for d in docs] == [f"{name.lower()}-landcover"], json.dumps(docs)[:500]
            assert any(a["href"].endswith(".tif") for a in docs[0]["assets"].values())
    finally:
        srv.stop()
