"""Jobs that behave like a service: each runs in its own child process, outside the web worker.

`ChildProcessManager` is a pygeoapi process manager over a job store (`app_package.jobs.store`: a
TinyDB file for one server process, or PostgreSQL shared by several workers and hosts). Submitted
jobs are queued as `accepted` with their spec; each worker's supervisor thread claims queued jobs
atomically (at most `max_jobs` running over all workers) and starts one child per job, each in
its own process group (session). Children are forked by the worker's fork server, a
single-threaded process that has already imported what every job needs (pygeoapi and this
module: ~0.8 CPU-s that a fresh interpreter per job would pay again while requests are being
served); each child names itself `… -m app_package.jobs.manager JOB_ID` (its command line, as `ps` shows)
and reads the store from $APP_PACKAGE_JOB_STORE. `python -m app_package.jobs.manager JOB_ID` runs one
job the same way by hand. The child reports real progress and its final status straight into
the store.
`DELETE` kills the child's whole process group (through any worker) and removes partial outputs.
Jobs whose worker is gone (its pid on this host, or its heartbeat from another) are stopped and
marked failed (they are not resumed); queued jobs are started.

Any processor works; those that subclass `JobProcessor` get an output folder and a progress
callback. Their result is a STAC catalog (`<output>/catalog.json`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pygeoapi.process.base import (
    BaseProcessor,
    JobNotFoundError,
    JobResultNotFoundError,
    ProcessorExecuteError,
)
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedResponse, Subscriber

from app_package.errors import AppPackageError, DataError, InputError, ModelError, NotFoundError
from app_package.jobs.cwl_engine import check_engine
from app_package.jobs.store import JobStore, JobStoreUnavailable, open_store
from app_package.service.ogc import HrefPolicy, OGCError
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)

TERMINAL = {"successful", "failed", "dismissed"}
KILL_GRACE_S = 2.0
TICK_S = 0.25  # supervisor: reap and launch
HEARTBEAT_S = 1.0  # supervisor: heartbeat this worker's jobs, stop those dismissed elsewhere
SWEEP_S = 2.0  # supervisor: fail jobs whose worker is gone
STALE_AFTER_S = 30.0  # a worker on another host is gone after this long without a heartbeat
FINAL_RETRY_S = 60.0  # a child retries its final status this long while the store is down
# a job's process runs at this niceness: the web worker answering requests wins the CPU cores
# over training or classification (an idle machine still gives a job all it can use)
JOB_NICENESS = 10
CLEANUP_S = 5.0  # how often MLflow runs left open by failed or dismissed jobs are ended
RUN_TAG = "app_package.job_id"  # tag on every MLflow run a job starts (MLFLOW_RUN_CONTEXT)
# imported once by each worker's fork server, not by every job (pygeoapi's package import ~0.7 s)
FORK_SERVER_PRELOAD = ["app_package.jobs.manager", "pygeoapi.plugin", "setproctitle"]


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


@dataclass(frozen=True)
class Owner:
    """The server worker that runs a job: host, boot, pid and the pid's start time.

    The start time tells a live worker from a later process that got the same pid; the boot id
    tells a reboot. Workers on other hosts are judged by their heartbeat only.
    """

    host: str
    boot: str
    pid: int
    start: str

    def __str__(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit("/", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    @classmethod
    def me(cls) -> Owner:
        import socket

        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _start_time(pid))

    def alive_here(self) -> bool:
        """Whether this worker process still exists (call only on its own host and boot)."""
        return _start_time(self.pid) == self.start


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot ('' if there is no such process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


def orphan_reason(
    job: dict[str, Any], heartbeat_age: float, me: Owner, stale_after: float
) -> str | None:
    """Why a `running` job has no live worker any more, or None while it has one."""
    owner = Owner.parse(str(job.get("owner") or ""))
    if owner is None:
        return "no server worker is recorded as running it"
    if owner == me:
        return None  # ours: the supervisor reaps its own children
    if owner.host == me.host and owner.boot != me.boot:
        return f"host {owner.host} rebooted"
    if owner.host == me.host and owner.boot == me.boot:
        return None if owner.alive_here() else f"its server worker (pid {owner.pid}) is gone"
    if heartbeat_age > stale_after:
        return f"no heartbeat from its server worker {owner} for {heartbeat_age:.0f} s"
    return None


class ChildProcessManager(BaseManager):
    """pygeoapi manager: a job store, one child process per job, a concurrency limit.

    The store is a TinyDB file (default; one server process) or PostgreSQL (`connection:
    postgresql://…`, shared by any number of workers on any hosts; `max_jobs` is then the limit
    over all of them). Each worker's supervisor claims queued jobs atomically, heartbeats the jobs
    it runs, kills its children whose jobs were dismissed through any worker, and fails jobs whose
    worker is gone.
    """

    def __init__(self, manager_def: dict[str, Any]) -> None:
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        data_dir = Path(str(manager_def.get("data_dir") or "var"))
        connection = str(manager_def.get("connection") or "") or str(data_dir / "jobs.db")
        self.store: JobStore = open_store(connection)
        out = manager_def.get("output_dir") or data_dir / "outputs"
        self.output_dir = Path(str(out)).resolve()
        self.max_jobs = max(1, int(manager_def.get("max_jobs", 2)))
        self.stale_after = float(manager_def.get("heartbeat_timeout") or STALE_AFTER_S)
        self.outputs_url = str(manager_def.get("outputs_url", "")).rstrip("/")
        self.engine = check_engine(str(manager_def.get("engine") or "local"))
        # callbacks are checked again when sent: a host may resolve elsewhere by then
        self.callback_policy = HrefPolicy.from_config(manager_def)
        self.owner = Owner.me()
        self._children: dict[str, ForkedChild] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.RLock()

    # ------------------------------------------------------------ store
    def add_job(self, job_metadata: dict[str, Any]) -> str:
        self.store.add_unique(job_metadata, None)
        return str(job_metadata["identifier"])

    def update_job(self, job_id: str, update_dict: dict[str, Any]) -> bool:
        return self.store.update(job_id, update_dict)

    def update_if(self, job_id: str, statuses: set[str], fields: dict[str, Any]) -> bool:
        """Update a job only while its status is one of `statuses` (no race with dismiss)."""
        return self.store.update(job_id, fields, statuses)

    def get_job(self, job_id: str) -> dict[str, Any]:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def get_jobs(
        self, status: Any = None, limit: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        wanted = None
        if status is not None:
            wanted = status.value if isinstance(status, JobStatus) else str(status)
        jobs, matched = self.store.page(wanted, limit, offset or 0)
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
        the same key for the same process returns the first request's job instead of a new one
        (atomically in the store: also across workers).
        """
        if process_id not in self.processes:
            raise JobNotFoundError(process_id)
        job_id = str(uuid.uuid4())
        processor = dict(self.processes[process_id]["processor"])
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
            "spec": {
                "processor": processor,
                "engine": self.engine if processor.get("cwl") else "local",
                "inputs": inputs,
                "output": str(self.output_dir / job_id),
                "subscriber": subscriber,
            },
        }
        if idempotency_key:
            job["idempotency_key"] = idempotency_key
        if "tracking_uri" in processor:  # it may start MLflow runs: end them if it fails
            job["mlflow_cleanup"] = tracking_uri(processor)
        stored = self.store.add_unique(job, idempotency_key)
        self._wake.set()
        return stored

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
        """Stop a job's work (its whole process group), remove its outputs, mark it dismissed.

        The worker that owns the child kills it; a job owned by another worker on this host is
        killed here at once by pid (after checking the pid still runs this job); on another host
        its owner's supervisor notices the `dismissed` status within a heartbeat and kills it.
        """
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
        owner = Owner.parse(str(job.get("owner") or ""))
        if child is not None:
            _kill_group(child.pid, child)
        elif job.get("status") == "running" and _on_this_host(owner, self.owner):
            _kill_job_here(job)
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
        """Fail orphaned jobs, then start the supervisor thread (once per server worker)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        start_fork_server()  # now, not on the first job: its imports then compete with nothing
        try:
            self.recover()
        except JobStoreUnavailable as e:  # the supervisor sweeps again once the store is back
            logger.warning("job store unavailable at start-up: %s", e)
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="job-supervisor", daemon=True)
        self._thread.start()
        threading.Thread(target=self._end_open_runs, name="mlflow-cleanup", daemon=True).start()

    def stop(self) -> None:
        """Stop the supervisor; stop this worker's children and mark their jobs failed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            children = dict(self._children)
        for job_id, child in children.items():
            _kill_group(child.pid, child)
            with contextlib.suppress(JobStoreUnavailable):
                self._fail(
                    job_id, "the server shut down while the job was running; submit it again"
                )
        with self._mutex:
            self._children.clear()
        self.store.close()

    def recover(self) -> None:
        """Jobs `running` under a worker that is gone are stopped and marked failed.

        Jobs of live workers (this host: the pid still runs with the same start time; other
        hosts: a heartbeat within `heartbeat_timeout`) are left alone; queued jobs stay queued.
        """
        for job, age in self.store.running():
            reason = orphan_reason(job, age, self.owner, self.stale_after)
            with self._mutex:
                if job.get("owner") == str(self.owner) and job["identifier"] not in self._children:
                    reason = "its process is gone"  # claimed here, never started or not reaped
            if reason is None:
                continue
            owner = Owner.parse(str(job.get("owner") or ""))
            if owner is None or _on_this_host(owner, self.owner):
                _kill_job_here(job)
            logger.warning("job %s orphaned: %s", job["identifier"], reason)
            self._fail(
                job["identifier"],
                f"interrupted: the server restarted or its worker stopped while the job was "
                f"running ({reason}); submit it again",
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
        last_beat = last_sweep = 0.0
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                self._reap()
                t = time.monotonic()
                if t - last_beat >= HEARTBEAT_S:
                    self._heartbeat()
                    last_beat = t
                if t - last_sweep >= SWEEP_S:
                    self.recover()
                    last_sweep = t
                self._launch()
            except JobStoreUnavailable as e:  # the store comes back: so does the supervisor
                logger.warning("job supervisor waiting for the job store: %s", e)
                self._stop.wait(1.0)
            except Exception:  # the supervisor must survive anything a job does
                logger.exception("job supervisor step failed")

    def _end_open_runs(self) -> None:
        """End (FAILED) the MLflow runs that failed or dismissed jobs left RUNNING.

        A job killed, or one whose MLflow server went away mid-run, cannot end its run itself;
        its runs carry the job's id as a tag, and are ended here once the server answers again.
        """
        while not self._stop.wait(CLEANUP_S):
            try:
                jobs = self.store.flagged("mlflow_cleanup", {"failed", "dismissed"})
            except JobStoreUnavailable:
                continue
            for job in jobs:
                try:
                    ended = end_open_runs(str(job["mlflow_cleanup"]), job["identifier"])
                except Exception as e:  # MLflow still down: try again later
                    logger.debug("MLflow runs of job %s not ended yet: %s", job["identifier"], e)
                    continue
                with contextlib.suppress(JobStoreUnavailable):
                    self.update_job(job["identifier"], {"mlflow_cleanup": ""})
                if ended:
                    logger.warning("job %s: %d MLflow run(s) left RUNNING ended as FAILED",
                                   job["identifier"], ended)  # fmt: skip

    def _heartbeat(self) -> None:
        """Mark this worker's jobs alive; kill children whose jobs were dismissed elsewhere."""
        if not self.store.shared:
            return  # one worker (TinyDB): orphans are judged by pid, dismiss kills directly
        with self._mutex:
            children = dict(self._children)
        if not children:
            return  # nothing of ours runs (a claim sets the first heartbeat itself)
        self.store.heartbeat(str(self.owner))
        for job_id, child in children.items():
            job = self.store.get(job_id)
            if job is not None and job["status"] == "dismissed" and child.poll() is None:
                logger.info("job %s dismissed through another worker: stopping it", job_id)
                _kill_group(child.pid, child)
                self._remove_outputs(job_id)

    def _reap(self) -> None:
        with self._mutex:
            done = [(j, c) for j, c in self._children.items() if c.poll() is not None]
        for job_id, child in done:
            # a child that died without its final status; with the store down this raises and
            # the child stays listed: the next tick tries again (the job is never left running)
            self._fail(
                job_id, f"the job's worker process exited unexpectedly (code {child.returncode})"
            )
            with self._mutex:
                self._children.pop(job_id, None)
            child.close()
            with contextlib.suppress(JobStoreUnavailable):
                self._notify(job_id)

    def _launch(self) -> None:
        with self._mutex:
            if len(self._children) >= self.max_jobs:
                return  # this worker alone runs all the store allows: no need to ask it
        t = now()
        claimed = self.store.claim(
            str(self.owner), self.max_jobs, {"message": "starting", "started": t, "updated": t}
        )
        for job in claimed:
            job_id = job["identifier"]
            env = dict(os.environ, APP_PACKAGE_JOB_STORE=self.store.url)
            context = json.loads(env.get("MLFLOW_RUN_CONTEXT") or "{}")
            env["MLFLOW_RUN_CONTEXT"] = json.dumps({**context, RUN_TAG: job_id})
            try:
                child = fork_job(job_id, env)
            except Exception as e:  # the fork server did not start or answer
                logger.exception("job %s: no process started", job_id)
                self._fail(job_id, f"internal error: the job's process did not start: {e}")
                continue
            with self._mutex:
                self._children[job_id] = child
            with contextlib.suppress(JobStoreUnavailable):  # the pid only speeds up a dismiss
                self.update_job(job_id, {"pid": child.pid})
                self._notify(job_id)
            logger.info("job %s started (pid %d)", job_id, child.pid)

    def _notify(self, job_id: str) -> None:
        """POST the job's status to its subscriber's URL for the current state, if any."""
        job = self.get_job(job_id)
        subscriber = (job.get("spec") or {}).get("subscriber") or {}
        key = {"running": "inProgressUri", "successful": "successUri", "failed": "failedUri"}
        url = subscriber.get(key.get(job["status"], ""))
        if url:
            args = (url, status_info(job), self.callback_policy)
            threading.Thread(target=_post, args=args, daemon=True).start()


def end_open_runs(uri: str, job_id: str) -> int:
    """End as FAILED the RUNNING MLflow runs of a job (tagged with its id); how many."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    runs = client.search_runs(
        experiments, f"tags.`{RUN_TAG}` = '{job_id}' and attributes.status = 'RUNNING'"
    )
    for run in runs:
        client.set_terminated(run.info.run_id, "FAILED")
    return len(runs)


def _on_this_host(owner: Owner | None, me: Owner) -> bool:
    return owner is not None and owner.host == me.host and owner.boot == me.boot


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


@dataclass
class ForkedChild:
    """A job's process forked by the fork server (`multiprocessing` knows its exit code).

    The exit code comes through the fork server; should the fork server die first (killed, out of
    memory), the job still runs: it is then watched by its pid until it is gone. Safe to use
    from several threads: the reaper may close it while a dismiss still polls it.
    """

    process: BaseProcess
    job_id: str
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        try:
            code = self.process.exitcode
        except ValueError:  # closed: it had exited, with the code kept here
            return self.exit_code
        if code is not None and self.exit_code is None and _runs_job(self.pid, self.job_id):
            return None  # the fork server is gone (its pipe closed), not the job
        if code is not None:
            self.exit_code = code
        return code

    def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(ValueError):
            self.process.join(timeout)
        return self.poll()

    def close(self) -> None:
        """Release its handles once it has exited."""
        if self.poll() is not None:
            with contextlib.suppress(ValueError):
                self.process.close()


def _fork_server() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(FORK_SERVER_PRELOAD)
    return ctx


def start_fork_server() -> None:
    """Start this process's fork server (once; `multiprocessing` restarts it if it dies)."""
    from multiprocessing import forkserver

    _fork_server()
    forkserver.ensure_running()


def fork_job(job_id: str, env: dict[str, str]) -> ForkedChild:
    """Start the job's process from the fork server, with `env` as its whole environment."""
    process = _fork_server().Process(
        target=_forked_main, args=(job_id, env), name=f"job-{job_id}", daemon=False
    )
    process.start()
    return ForkedChild(process, job_id)


def _forked_main(job_id: str, env: dict[str, str]) -> None:
    """The job's process, just forked: a session of its own, its name, its environment."""
    from setproctitle import setproctitle

    os.setsid()  # its own process group: DELETE kills the whole tree, a server crash does not
    os.nice(JOB_NICENESS)
    setproctitle(
        f"{sys.executable} -m app_package.jobs.manager {job_id}"
    )  # ps, and orphan clean-up
    os.environ.clear()
    os.environ.update(env)
    main([job_id])


def _kill_group(pid: int, child: ForkedChild | None = None) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period.

    A child forked a moment ago may not lead its group yet (its first act is `setsid`): then
    the process itself is signalled.
    """
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            break
        if child is None and not _alive(pid):
            break
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=2)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # no such group (yet): the process alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    except PermissionError:
        pass


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


def _kill_job_here(job: dict[str, Any]) -> None:
    """Kill a job's child on this host: by its recorded pid, else found by its command line
    (a worker may die between starting the child and recording its pid)."""
    job_id = str(job["identifier"])
    if job.get("pid"):
        _kill_group_if_ours(int(job["pid"]), job_id)
        return
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            _kill_group_if_ours(int(proc.name), job_id, leader_only=True)


def _runs_job(pid: int, job_id: str) -> bool:
    """Whether `pid` is a live process running `job_id` (its command line names the job)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return job_id.encode() in cmdline and b"app_package.jobs.manager" in cmdline and _alive(pid)


def _kill_group_if_ours(pid: int, job_id: str, leader_only: bool = False) -> None:
    """Kill a previous server's child, only if that pid still runs this job (pids get reused)."""
    if _runs_job(pid, job_id):
        with contextlib.suppress(OSError):
            if leader_only and os.getpgid(pid) != pid:
                return  # not the job's child itself (it leads its own process group)
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
def run_child(job_id: str, store: JobStore) -> int:
    """Run one claimed job; write progress and the final status to the job store."""
    from pygeoapi.plugin import load_plugin

    job = _retrying(lambda: store.get(job_id))  # the store may be restarting right now
    if job is None or job["status"] != "running":
        return 0  # dismissed before it started
    spec = job["spec"]
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
        fields = {"progress": pct, "message": message, "updated": now()}
        try:
            store.update(job_id, fields, {"running"})
        except JobStoreUnavailable as e:  # progress is best effort; the work goes on
            logger.warning("job %s: progress not recorded: %s", job_id, e)

    status: str
    fields: dict[str, Any]
    try:
        processor = load_plugin("process", spec["processor"])
        engine = spec.get("engine", "local")
        if engine != "local":  # the process's CWL package on a CWL runner
            from app_package.jobs.cwl_engine import run_package

            extra = {"tracking_uri": tracking_uri(spec["processor"])}
            catalog = run_package(engine, spec["processor"]["cwl"], spec["inputs"], extra,
                                  Path(spec["output"]), progress)  # fmt: skip
            location, mimetype = str(catalog), "application/json"
        elif isinstance(processor, JobProcessor):
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
        fields = {"message": "done", "progress": 100, "location": location, "mimetype": mimetype,
                  "mlflow_cleanup": ""}  # fmt: skip
    t = now()
    final = {"status": status, "updated": t, "finished": t, **fields}
    try:  # the store may be restarting: the final status must not be lost
        _retrying(lambda: store.update(job_id, final, {"running"}))
    except JobStoreUnavailable as e:
        logger.error("job %s: final status %s not recorded: %s", job_id, status, e)
        return 2
    # the supervisor notices the exit and sends callbacks
    return 0 if status == "successful" else 1


def _retrying[T](op: Callable[[], T]) -> T:
    """`op()`, tried again for FINAL_RETRY_S while the job store is unavailable."""
    deadline = time.monotonic() + FINAL_RETRY_S
    while True:
        try:
            return op()
        except JobStoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    store_url = os.environ.get("APP_PACKAGE_JOB_STORE", "")
    if len(args) != 1 or not store_url:
        raise SystemExit(
            "usage: APP_PACKAGE_JOB_STORE=CONNECTION python -m app_package.jobs.manager JOB_ID"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = open_store(store_url)
    try:
        code = run_child(args[0], store)
    finally:
        store.close()
    raise SystemExit(code)


if __name__ == "__main__":  # run through the module's own name so classes are the same
    from app_package.jobs.manager import main as _main

    _main()
