"""A real `redis-server` on a free loopback port, for tests (Debian's package: apt-get install
redis-server). No persistence (`--save ''`, `--appendonly no`), its files in a temporary folder.

A test that needs Redis fails — it does not skip — when `redis-server` is missing: the event
pipeline is part of what the suite proves.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.procs import stop
from tests.test_server import _free_port


@contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """Start redis-server on 127.0.0.1:<free port> in `folder`; yield its URL; stop it."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server not found on PATH: install it (Debian/Ubuntu: "
            "apt-get install -y redis-server; .ci/run does this) to run the event pipeline tests"
        )
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = folder / "redis.log"
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(log), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    text = log.read_text() if log.exists() else ""
                    pytest.fail(f"redis-server exited with {proc.returncode}: {text[-2000:]}")
                try:
                    if client.ping():
                        break
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not answer PING within 20 s")
                time.sleep(0.05)
        finally:
            client.close()
        yield url
    finally:
        stop(proc)
