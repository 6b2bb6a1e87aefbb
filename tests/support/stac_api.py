"""stac-fastapi-static serving a catalog on loopback, in a subprocess, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.support.procs import stop
from tests.support.server import free_port


@contextmanager
def running_stac_api(catalog_json: Path) -> Iterator[str]:
    """stac-fastapi-static serving `catalog_json`, under uvicorn in a subprocess; yields its URL."""
    port = free_port()
    env = {**os.environ, "CATALOG_HREF": str(catalog_json), "LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.support.stac_api_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"STAC API server exited: {out[-2000:]}")
            try:
                if requests.get(f"{url}/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("STAC API server did not start in 60 s")
            time.sleep(0.3)
        yield url
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()
