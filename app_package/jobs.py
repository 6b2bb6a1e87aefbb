"""Jobs that behave like a service: each runs in its own child process, outside the web worker.

`ChildProcessManager` is a pygeoapi process manager (TinyDB job store, shared by processes through
a file lock). Submitted jobs are queued as `accepted`; a supervisor thread in the server starts at
most `max_jobs` children (`python -m app_package.jobs SPEC`), each in its own process group. The
child reports real progress and its final status straight into the job store. `DELETE` kills the
child's whole process group and removes partial outputs. On start-up, jobs left `running` by a
previous server are stopped and marked failed (they are not resumed); queued jobs are started.

Any processor works; those that subclass `JobProcessor` get an output folder and a progress
callback. Their result is a STAC catalog (`<output>/catalog.json`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tinydb
from filelock import FileLock
from pygeoapi.process.base import (
    BaseProcessor,
    JobNotFoundError,
    JobResultNotFoundError,
    ProcessorExecuteError,
)
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedResponse, Subscriber

from app_package.errors import AppPackageError, DataError, InputError, ModelError, NotFoundError
from app_package.ogc import HrefPolicy, OGCError
from app_package.progress import ProgressCallback

logger = logging.getLogger(__name__)

TERMINAL = {"successful", "failed", "dismissed"}
KILL_GRACE_S = 2.0


def now() -> str:
    """An RFC 3339 UTC timestamp."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tracking_uri(processor_def: dict[str, Any]) -> str:
    """The MLflow store of a processor: its `tracking_uri`, else sqlite in its `data_dir`."""
    uri = processor_def.get("tracking_uri")
    if uri:
        return str(uri)
    data_dir = Path(str(processor_def.get("data_dir") or "var")).resolve()
    return f"sqlite:///{data_dir / 'mlflow.db'}"


class JobProcessor(BaseProcessor):
    """A processor whose work writes a STAC catalog into an output folder, reporting progress."""

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        """Do the work; write `output` (which must not exist yet); return its catalog.json."""
        raise NotImplementedError

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> Any:
        """Stock pygeoapi entry point (in-process): run into a temporary folder."""
        tmp = Path(tempfile.mkdtemp(prefix="app-package-"))
        try:
            catalog = self.run(data, tmp / "output", lambda p, m: None)
        except AppPackageError as e:
            raise ProcessorExecuteError(str(e)) from e
        return "application/json", json.loads(catalog.read_text())


class ChildProcessManager(BaseManager):
    """pygeoapi manager: TinyDB job records, one child process per job, a concurrency limit."""

    def __init__(self, manager_def: dict[str, Any]) -> None:
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        self.db_path = Path(str(manager_def["connection"])).resolve()
        self.output_dir = Path(str(manager_def.get("output_dir") or self.db_path.parent / "out"))
        self.output_dir = self.output_dir.resolve()
        self.requests_dir = self.db_path.parent / "requests"
        self.max_jobs = max(1, int(manager_def.get("max_jobs", 2)))
        self.outputs_url = str(manager_def.get("outputs_url", "")).rstrip("/")
        self._lock = FileLock(f"{self.db_path}.lock")
        self._tlock = threading.Lock()
        self._submit_lock = threading.Lock()
        # callbacks are checked again when sent: a host may resolve elsewhere by then
        self.callback_policy = HrefPolicy.from_config(manager_def)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._subscribers: dict[str, dict[str, str]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.RLock()

    # ------------------------------------------------------------ store
    @contextlib.contextmanager
    def _db(self) -> Iterator[tinydb.TinyDB]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        # threads of this process queue on a plain lock; the file lock (shared with the job
        # children) is polled briefly: its default 50 ms poll would dominate request latency
        with (
            self._tlock,
            self._lock.acquire(poll_interval=0.002),
            tinydb.TinyDB(self.db_path) as db,
        ):
            yield db

    def add_job(self, job_metadata: dict[str, Any]) -> str:
        with self._db() as db:
            db.insert(job_metadata)
        return str(job_metadata["identifier"])

    def update_job(self, job_id: str, update_dict: dict[str, Any]) -> bool:
        with self._db() as db:
            return bool(db.update(update_dict, tinydb.where("identifier") == job_id))

    def update_if(self, job_id: str, statuses: set[str], fields: dict[str, Any]) -> bool:
        """Update a job only while its status is one of `statuses` (no race with dismiss)."""
        q = tinydb.Query()
        with self._db() as db:
            return bool(db.update(fields, (q.identifier == job_id) & q.status.one_of(statuses)))

    def get_job(self, job_id: str) -> dict[str, Any]:
        with self._db() as db:
            found = db.search(tinydb.where("identifier") == job_id)
        if not found:
            raise JobNotFoundError(job_id)
        return dict(found[0])

    def get_jobs(
        self, status: Any = None, limit: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        with self._db() as db:
            jobs = [dict(j) for j in db.all()]
        if status is not None:
            wanted = {status.value if isinstance(status, JobStatus) else str(status)}
            jobs = [j for j in jobs if j["status"] in wanted]
        jobs.sort(key=lambda j: j["created"], reverse=True)
        matched = len(jobs)
        jobs = jobs[offset or 0 :]
        if limit:
            jobs = jobs[:limit]
        return {"jobs": jobs, "numberMatched": matched}

    def get_job_result(self, job_id: str) -> tuple[str | None, Any]:
        """The output STAC catalog, its links made absolute URLs under `outputs_url`."""
        job = self.get_job(job_id)
        if job["status"] != "successful" or not job.get("location"):
            raise JobResultNotFoundError(job_id)
        location = Path(job["location"])
        try:
            doc = json.loads(location.read_text())
        except (OSError, ValueError) as e:
            raise JobResultNotFoundError(job_id) from e
        return "application/json", absolutise(doc, self.url_for(location))

    def url_for(self, path: Path) -> str:
        """The HTTP URL of a file under the output folder."""
        rel = Path(path).resolve().relative_to(self.output_dir)
        return f"{self.outputs_url}/{rel.as_posix()}"

    def delete_job(self, job_id: str) -> bool:
        self.dismiss(job_id)
        return True

    # ------------------------------------------------------------ submitting
    def submit(
        self, process_id: str, inputs: dict[str, Any], subscriber: dict[str, str] | None = None
    ) -> str:
        """Queue a job (status `accepted`) and wake the supervisor; return its id."""
        return str(self.submit_job(process_id, inputs, subscriber)["identifier"])

    def submit_job(
        self,
        process_id: str,
        inputs: dict[str, Any],
        subscriber: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Like `submit`, returning the new job record.

        With an `idempotency_key` (the `Idempotency-Key` request header), a second request with
        the same key for the same process returns the first request's job instead of a new one.
        """
        if process_id not in self.processes:
            raise JobNotFoundError(process_id)
        if not idempotency_key:
            return self._new_job(process_id, inputs, subscriber, None)
        q = tinydb.Query()
        with self._submit_lock:  # one server process submits: no two jobs for one key
            with self._db() as db:
                found = db.search(
                    (q.idempotency_key == idempotency_key) & (q.process_id == process_id)
                )
            if found:
                return dict(found[0])
            return self._new_job(process_id, inputs, subscriber, idempotency_key)

    def _new_job(
        self,
        process_id: str,
        inputs: dict[str, Any],
        subscriber: dict[str, str] | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "job_id": job_id,
            "process_id": process_id,
            "processor": self.processes[process_id]["processor"],
            "inputs": inputs,
            "output": str(self.output_dir / job_id),
            "db": str(self.db_path),
            "subscriber": subscriber,
        }
        tmp = self.requests_dir / f".{job_id}.json"
        tmp.write_text(json.dumps(spec))
        tmp.rename(self.requests_dir / f"{job_id}.json")
        t = now()
        job = {
            "type": "process",
            "identifier": job_id,
            "process_id": process_id,
            "status": "accepted",
            "message": "queued",
            "progress": 0,
            "created": t,
            "updated": t,
            "started": None,
            "finished": None,
            "location": None,
            "mimetype": "application/json",
            "pid": None,
        }
        if idempotency_key:
            job["idempotency_key"] = idempotency_key
        self.add_job(job)
        self._wake.set()
        return job

    def execute_process(
        self,
        process_id: str,
        data_dict: dict[str, Any],
        execution_mode: Any = None,
        requested_outputs: dict[str, Any] | None = None,
        subscriber: Subscriber | None = None,
        requested_response: Any = RequestedResponse.raw.value,
    ) -> tuple[str, str, Any, JobStatus, dict[str, str]]:
        """pygeoapi's own execute path: queue the job like any other (answers 201 + statusInfo)."""
        job_id = self.submit(process_id, data_dict)
        headers = {"Preference-Applied": "respond-async"}
        return job_id, "application/json", None, JobStatus.accepted, headers

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until a job is terminal (for sync execution); return its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(0.1)

    # ------------------------------------------------------------ dismissing
    def dismiss(self, job_id: str) -> dict[str, Any]:
        """Stop a job's work (its whole process group), remove its outputs, mark it dismissed."""
        job = self.get_job(job_id)
        t = now()
        self.update_job(
            job_id,
            {
                "status": "dismissed",
                "message": "dismissed by the user",
                "updated": t,
                "finished": t,
            },
        )
        with self._mutex:
            child = self._children.get(job_id)
        if child is not None:
            _kill_group(child.pid, child)
        elif job.get("status") == "running" and job.get("pid"):
            _kill_group_if_ours(int(job["pid"]), job_id)
        self._remove_outputs(job_id)
        self._wake.set()
        return self.get_job(job_id)

    def _remove_outputs(self, job_id: str) -> None:
        shutil.rmtree(self.output_dir / job_id, ignore_errors=True)
        if self.output_dir.is_dir():
            for tmp in self.output_dir.glob(f".{job_id}.tmp-*"):
                shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------ supervisor
    def start(self) -> None:
        """Recover after a restart, then start the supervisor thread (once per server)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the supervisor; stop running children and mark their jobs failed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            children = dict(self._children)
        for job_id, child in children.items():
            _kill_group(child.pid, child)
            self._fail(job_id, "the server shut down while the job was running; submit it again")
        with self._mutex:
            self._children.clear()

    def recover(self) -> None:
        """Jobs `running` under a previous server are stopped and marked failed; queued stay."""
        for job in self.get_jobs(status="running")["jobs"]:
            if job.get("pid"):
                _kill_group_if_ours(int(job["pid"]), job["identifier"])
            self._fail(
                job["identifier"],
                "interrupted: the server restarted while the job was running; submit it again",
            )

    def _fail(self, job_id: str, message: str) -> None:
        t = now()
        if self.update_if(
            job_id,
            {"running"},
            {"status": "failed", "message": message, "updated": t, "finished": t},
        ):
            self._remove_outputs(job_id)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            try:
                self._reap()
                self._launch()
            except Exception:  # the supervisor must survive anything a job does
                logger.exception("job supervisor step failed")

    def _reap(self) -> None:
        with self._mutex:
            done = [(j, c) for j, c in self._children.items() if c.poll() is not None]
            for job_id, _ in done:
                del self._children[job_id]
        for job_id, child in done:
            self._fail(
                job_id, f"the job's worker process exited unexpectedly (code {child.returncode})"
            )
            self._notify(job_id)
            with contextlib.suppress(OSError):
                (self.requests_dir / f"{job_id}.json").unlink()

    def _launch(self) -> None:
        with self._mutex:
            free = self.max_jobs - len(self._children)
        if free <= 0:
            return
        queued = self.get_jobs(status="accepted")["jobs"]
        for job in sorted(queued, key=lambda j: j["created"])[:free]:
            job_id = job["identifier"]
            spec = self.requests_dir / f"{job_id}.json"
            t = now()
            if not self.update_if(
                job_id,
                {"accepted"},
                {"status": "running", "message": "starting", "started": t, "updated": t},
            ):
                continue  # dismissed meanwhile
            child = subprocess.Popen(
                [sys.executable, "-m", "app_package.jobs", str(spec)],
                start_new_session=True,  # its own process group: DELETE kills the whole tree
                stdin=subprocess.DEVNULL,
            )
            with self._mutex:
                self._children[job_id] = child
            self.update_job(job_id, {"pid": child.pid})
            self._notify(job_id)
            logger.info("job %s started (pid %d)", job_id, child.pid)

    def _notify(self, job_id: str) -> None:
        """POST the job's status to its subscriber's URL for the current state, if any."""
        spec = self.requests_dir / f"{job_id}.json"
        try:
            subscriber = json.loads(spec.read_text()).get("subscriber") or {}
        except (OSError, ValueError):
            subscriber = self._subscribers.pop(job_id, {})
        if not subscriber:
            return
        self._subscribers[job_id] = subscriber
        job = self.get_job(job_id)
        key = {"running": "inProgressUri", "successful": "successUri", "failed": "failedUri"}
        url = subscriber.get(key.get(job["status"], ""))
        if url:
            args = (url, status_info(job), self.callback_policy)
            threading.Thread(target=_post, args=args, daemon=True).start()


def _post(url: str, body: dict[str, Any], policy: HrefPolicy | None = None) -> None:
    """POST a callback; with a `policy`, only if the URL's host still passes it (DNS rebinding)."""
    import requests

    if policy is not None:
        try:
            policy.check_url("callback", url)
        except OGCError as e:
            logger.warning("callback to %s not sent: %s", url, e.detail)
            return

    try:
        requests.post(url, json=body, timeout=10, allow_redirects=False)
    except requests.RequestException as e:
        logger.warning("callback to %s failed: %s", url, e)


def _kill_group(pid: int, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            break
        if child is None and not _alive(pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_group_if_ours(pid: int, job_id: str) -> None:
    """Kill a previous server's child, only if that pid still runs this job (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if job_id.encode() in cmdline and b"app_package.jobs" in cmdline:
        _kill_group(pid)


# ---------------------------------------------------------------- documents
def status_info(job: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """An OGC statusInfo document; unset timestamps are omitted, not null."""
    doc: dict[str, Any] = {
        "type": "process",
        "processID": job["process_id"],
        "jobID": job["identifier"],
        "status": job["status"],
        "message": job.get("message") or "",
        "progress": int(job.get("progress") or 0),
    }
    for key in ("created", "started", "finished", "updated"):
        if job.get(key):
            doc[key] = job[key]
    if base_url:
        url = f"{base_url}/jobs/{job['identifier']}"
        doc["links"] = [
            {"href": url, "rel": "self", "type": "application/json", "title": "this job's status"},
            {"href": f"{base_url}/jobs", "rel": "up", "type": "application/json"},
        ]
        if job["status"] == "successful":
            doc["links"].append(
                {
                    "href": f"{url}/results",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                    "type": "application/json",
                    "title": "the job's output STAC catalog",
                }
            )
    return doc


def absolutise(doc: dict[str, Any], url: str) -> dict[str, Any]:
    """A STAC document with its link and asset hrefs resolved against `url`; adds `self`."""
    from urllib.parse import urljoin

    out = json.loads(json.dumps(doc))
    links = [lk for lk in out.get("links", []) if lk.get("rel") != "self"]
    for link in links:
        link["href"] = urljoin(url, link["href"])
    out["links"] = [{"rel": "self", "href": url, "type": "application/json"}, *links]
    for asset in out.get("assets", {}).values():
        asset["href"] = urljoin(url, asset["href"])
    return out


# ---------------------------------------------------------------- the child
def run_child(spec_path: Path) -> int:
    """Run one job from its spec file; write progress and the final status to the job store."""
    from pygeoapi.plugin import load_plugin

    spec = json.loads(spec_path.read_text())
    job_id = spec["job_id"]
    manager = ChildProcessManager(
        {"name": "child", "connection": spec["db"], "output_dir": str(Path(spec["output"]).parent)}
    )
    last_time, last_pct, last_message = 0.0, -1, ""

    def progress(percent: float, message: str) -> None:
        nonlocal last_time, last_pct, last_message
        pct = int(max(0.0, min(99.0, float(percent))))
        t = time.monotonic()
        if (pct == last_pct and message == last_message) or (
            t - last_time < 0.2 and pct == last_pct
        ):
            return
        last_time, last_pct, last_message = t, pct, message
        manager.update_if(
            job_id, {"running"}, {"progress": pct, "message": message, "updated": now()}
        )

    status: str
    fields: dict[str, Any]
    try:
        processor = load_plugin("process", spec["processor"])
        if isinstance(processor, JobProcessor):
            catalog = processor.run(spec["inputs"], Path(spec["output"]), progress)
            location, mimetype = str(catalog), "application/json"
        else:  # any other pygeoapi processor: keep its output as a file
            mimetype, outputs = processor.execute(spec["inputs"])
            out = Path(spec["output"])
            out.mkdir(parents=True, exist_ok=True)
            path = out / ("result.json" if mimetype == "application/json" else "result")
            data = json.dumps(outputs) if isinstance(outputs, (dict, list)) else outputs
            path.write_bytes(data.encode() if isinstance(data, str) else data)
            location = str(path)
    except (InputError, NotFoundError, DataError, ModelError) as e:  # the request's fault: 400
        status, fields = "failed", {"message": str(e), "error_kind": "input"}
    except AppPackageError as e:
        status, fields = "failed", {"message": str(e)}
    except ProcessorExecuteError as e:
        status, fields = "failed", {"message": str(e.message if hasattr(e, "message") else e)}
    except Exception as e:
        logger.exception("job %s failed", job_id)
        status, fields = "failed", {"message": f"internal error: {type(e).__name__}: {e}"}
    else:
        status = "successful"
        fields = {"message": "done", "progress": 100, "location": location, "mimetype": mimetype}
    t = now()
    manager.update_if(
        job_id, {"running"}, {"status": status, "updated": t, "finished": t, **fields}
    )
    # the supervisor notices the exit and sends callbacks
    return 0 if status == "successful" else 1


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m app_package.jobs JOB_SPEC.json")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    raise SystemExit(run_child(Path(args[0])))


if __name__ == "__main__":  # run through the module's own name so classes are the same
    from app_package.jobs import main as _main

    _main()
