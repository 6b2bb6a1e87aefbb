"""A live `app-package serve` for tests (a child process on a free loopback port), the helpers
that look at its job processes, and the OGC API – Processes 1.0 schema checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.conftest import REPO

SUPPORT = Path(__file__).resolve().parent
CONFIG = SUPPORT / "server-config.yml"
OGC_SCHEMAS = SUPPORT / "schemas" / "ogcapi-processes-1.0"  # OGC 18-062r2, with its LICENSE


class Server:
    """A running `app-package serve` (child process) and its data folder."""

    def __init__(
        self,
        data_dir: Path,
        max_jobs: int = 2,
        extra_env: dict[str, str] | None = None,
        config: Path = CONFIG,
        workers: int = 1,
    ):
        self.data_dir = data_dir
        self.workers = workers
        self.config = config
        self.max_jobs = max_jobs
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(REPO),
            APP_PACKAGE_DATA_DIR=str(self.data_dir),
            APP_PACKAGE_MAX_JOBS=str(self.max_jobs),
            APP_PACKAGE_URL=self.url,
            **self.extra_env,
        )
        env.pop("MLFLOW_TRACKING_URI", None)
        log = (self.data_dir.parent / f"server-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app_package.cli import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--config", str(self.config),
             "--workers", str(self.workers)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(self.url + "/conformance", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return (self.data_dir.parent / f"server-{self.port}.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # ---------------------------------------------------------------- HTTP helpers
    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def execute(
        self, process: str, inputs: dict[str, Any], prefer: str | None = "respond-async", **kw: Any
    ) -> requests.Response:
        headers = {"Prefer": prefer} if prefer else {}
        body = {"inputs": inputs, **kw}
        return requests.post(
            f"{self.url}/processes/{process}/execution", json=body, headers=headers, timeout=600
        )

    def submit(self, process: str, inputs: dict[str, Any]) -> str:
        r = self.execute(process, inputs)
        assert r.status_code == 201, r.text
        return str(r.json()["jobID"])

    def submit_with(self, process: str, inputs: dict[str, Any], **kw: Any) -> str:
        r = self.execute(process, inputs, **kw)
        assert r.status_code == 201, r.text
        return str(r.json()["jobID"])

    def status(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.status(job_id)
            if s["status"] in statuses:
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {s} after {timeout} s")
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job_processes(job_id: str) -> list[int]:
    """Pids of live processes whose command line names the job (its child and descendants)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if job_id.encode() in (proc / "cmdline").read_bytes():
                state = (proc / "stat").read_text().split(") ")[1][0]
                if state != "Z":
                    pids.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return pids


def ogc_validator(name: str) -> Draft202012Validator:
    """A validator for one of the OGC API – Processes schemas (YAML, relative $refs)."""

    def retrieve(uri: str) -> Resource[Any]:
        path = OGC_SCHEMAS / Path(uri.split("#")[0]).name
        return Resource.from_contents(
            yaml.safe_load(path.read_text()), default_specification=_DRAFT
        )

    from referencing.jsonschema import DRAFT202012 as _DRAFT

    schema = yaml.safe_load((OGC_SCHEMAS / name).read_text())
    base = (OGC_SCHEMAS / name).as_uri()
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    return Draft202012Validator({"$id": base, **schema}, registry=registry)


def assert_valid(doc: Any, schema: str) -> None:
    errors = list(ogc_validator(schema).iter_errors(doc))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
