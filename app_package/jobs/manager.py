"""The job manager: a pygeoapi process manager over a job store, one child process per job.

`ChildProcessManager` queues submitted jobs as `accepted` with their spec; each worker's
supervisor thread claims queued jobs atomically (at most `max_jobs` running over all workers)
and starts one child per job (`forkserver`, `child`). The child reports real progress and its
final status straight into the store. `DELETE` kills the child's whole process group (through
any worker) and removes partial outputs. Jobs whose worker is gone (its pid on this host, or
its heartbeat from another: `identity`) are stopped and queued again, at most `requeue` times,
then failed (`interruptions`); so are jobs whose process was killed and those running when the
server shuts down. A job queued again starts from scratch, but keeps its work folder: a training
resumes from its last completed epoch. Queued jobs are started.

Any processor works; those that subclass `JobProcessor` get an output folder and a progress
callback. Their result is a STAC catalog (`<output>/catalog.json`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pygeoapi.process.base import JobNotFoundError, JobResultNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedResponse, Subscriber

from app_package.jobs.callbacks import notify
from app_package.jobs.child import forked_main, remove_outputs
from app_package.jobs.config import ManagerConfig
from app_package.jobs.cwl_engine import stop_leftovers
from app_package.jobs.forkserver import (
    ForkedChild,
    fork_job,
    kill_group,
    kill_job_here,
    start_fork_server,
)
from app_package.jobs.identity import Owner, on_this_host, orphan_reason
from app_package.jobs.interruptions import after_interruption
from app_package.jobs.mlflow_runs import RUN_TAG, end_open_runs
from app_package.jobs.processor import tracking_uri
from app_package.jobs.records import status_of
from app_package.jobs.store import JobQuery, JobStore, JobStoreUnavailable, open_store
from app_package.stac.io import absolutise
from app_package.util.timestamps import now_rfc3339

logger = logging.getLogger(__name__)

TICK_S = 0.25  # supervisor: reap and launch
HEARTBEAT_S = 1.0  # supervisor: heartbeat this worker's jobs, stop those dismissed elsewhere
SWEEP_S = 2.0  # supervisor: fail jobs whose worker is gone
CLEANUP_S = 5.0  # how often MLflow runs left open by failed or dismissed jobs are ended


class ChildProcessManager(BaseManager):
    """pygeoapi manager: a job store, one child process per job, a concurrency limit.

    The store is a SQLite file (default; any number of server workers on one host) or
    PostgreSQL (`connection: postgresql://…`, shared by workers on any hosts); `max_jobs` is
    the limit over all workers. Each worker's supervisor claims queued jobs atomically,
    heartbeats the jobs it runs, kills its children whose jobs were dismissed through any
    worker, and queues again (or fails) jobs whose worker is gone.
    """

    def __init__(self, manager_def: dict[str, Any]) -> None:
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        self.config = ManagerConfig.parse(manager_def)
        self.store: JobStore = open_store(self.config.connection)
        self.output_dir = self.config.output_dir
        self.max_jobs = self.config.max_jobs
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
        """pygeoapi's job list (its own HTML pages call it); `query` is the full filter."""
        statuses: frozenset[str] = frozenset()
        if status is not None:
            statuses = frozenset({status.value if isinstance(status, JobStatus) else str(status)})
        return self.query(JobQuery(statuses=statuses, limit=limit, offset=offset or 0))

    def query(self, query: JobQuery) -> dict[str, Any]:
        """The jobs matching `query`, newest first, and how many matched."""
        jobs, matched = self.store.page(query)
        return {"jobs": jobs, "numberMatched": matched}

    def get_job_result(
        self, job_id: str, published: dict[Path, str] | None = None
    ) -> tuple[str | None, Any]:
        """The output STAC catalog, its links made absolute URLs under `outputs_url` (local
        paths in the `published` folders: the URLs those are served at)."""
        job = self.get_job(job_id)
        if status_of(job) is not JobStatus.successful or not job.get("location"):
            raise JobResultNotFoundError(job_id)
        location = Path(job["location"])
        try:
            doc = json.loads(location.read_text())
        except (OSError, ValueError) as e:
            raise JobResultNotFoundError(job_id) from e
        return "application/json", absolutise(doc, self.url_for(location), published)

    def result_url(self, job: dict[str, Any]) -> str:
        """The URL of a successful job's output catalog."""
        return self.url_for(Path(job["location"]))

    def url_for(self, path: Path) -> str:
        """The HTTP URL of a file under the output folder."""
        rel = Path(path).resolve().relative_to(self.output_dir)
        return f"{self.config.outputs_url}/{rel.as_posix()}"

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
        response: str = "raw",
        transmission: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Like `submit`, returning the new job record. `response` and `transmission` are how
        its results are to be answered (kept with the job for `/jobs/{id}/results`).

        With an `idempotency_key` (the `Idempotency-Key` request header), a second request with
        the same key for the same process returns the first request's job instead of a new one
        (atomically in the store: also across workers).
        """
        if process_id not in self.processes:
            raise JobNotFoundError(process_id)
        job_id = str(uuid.uuid4())
        processor = dict(self.processes[process_id]["processor"])
        t = now_rfc3339()
        job = {
            "type": "process",
            "identifier": job_id,
            "process_id": process_id,
            "status": JobStatus.accepted.value,
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
                "engine": self.config.engine if processor.get("cwl") else "local",
                "toil_batch_system": self.config.toil_batch_system,
                "inputs": inputs,
                "output": str(self.output_dir / job_id),
                "workdir": str(self.config.work_dir / job_id),
                "subscriber": subscriber,
                "response": response,
                "transmission": dict(transmission or {}),
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

    # ------------------------------------------------------------ dismissing
    def dismiss(self, job_id: str) -> dict[str, Any]:
        """Stop a job's work (its whole process group), remove its outputs, mark it dismissed.

        The worker that owns the child kills it; a job owned by another worker on this host is
        killed here at once by pid (after checking the pid still runs this job); on another host
        its owner's supervisor notices the `dismissed` status within a heartbeat and kills it.
        """
        job = self.get_job(job_id)
        t = now_rfc3339()
        self.update_job(
            job_id,
            {
                "status": JobStatus.dismissed.value,
                "message": "dismissed by the user",
                "updated": t,
                "finished": t,
            },
        )
        with self._mutex:
            child = self._children.get(job_id)
        owner = Owner.parse(str(job.get("owner") or ""))
        if child is not None:
            kill_group(child.pid, child)
        elif status_of(job) is JobStatus.running and on_this_host(owner, self.owner):
            kill_job_here(job)
        self._remove_outputs(job_id)
        self._wake.set()
        return self.get_job(job_id)

    def _remove_outputs(self, job_id: str, keep_work: bool = False) -> None:
        """Remove a job's outputs, partial ones included, and its work folder unless kept."""
        remove_outputs(self.output_dir / job_id)
        if not keep_work:
            shutil.rmtree(self.config.work_dir / job_id, ignore_errors=True)

    # ------------------------------------------------------------ supervisor
    def start(self) -> None:
        """Queue orphaned jobs again (or fail them), then start the supervisor thread (once per
        server worker)."""
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
        """Stop the supervisor; stop this worker's children and queue their jobs again (a
        shutdown is no crash: not counted against `requeue`), or fail them with `requeue: 0`."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            children = dict(self._children)
        for job_id, child in children.items():
            kill_group(child.pid, child)
            with contextlib.suppress(JobStoreUnavailable):
                what = "the server shut down while the job was running"
                self._interrupted(job_id, what, counted=False)
        with self._mutex:
            self._children.clear()
        self.store.close()

    def recover(self) -> None:
        """Jobs `running` under a worker that is gone are stopped and queued again (or failed:
        `_interrupted`).

        Jobs of live workers (this host: the pid still runs with the same start time; other
        hosts: a heartbeat within `heartbeat_timeout`) are left alone; queued jobs stay queued.
        """
        for job, age in self.store.running():
            reason = orphan_reason(job, age, self.owner, self.config.heartbeat_timeout)
            with self._mutex:
                if job.get("owner") == str(self.owner) and job["identifier"] not in self._children:
                    reason = "its process is gone"  # claimed here, never started or not reaped
            if reason is None:
                continue
            owner = Owner.parse(str(job.get("owner") or ""))
            if owner is None or on_this_host(owner, self.owner):
                kill_job_here(job)
                stop_leftovers(job.get("spec") or {})  # a CWL runner outlives its job's process
            logger.warning("job %s orphaned: %s", job["identifier"], reason)
            self._interrupted(
                job["identifier"],
                f"the server restarted or its worker stopped while the job was running ({reason})",
                job,
            )

    def _interrupted(
        self,
        job_id: str,
        what: str,
        job: dict[str, Any] | None = None,
        counted: bool = True,
    ) -> None:
        """A `running` job whose process is gone: queue it again (its outputs removed, its work
        folder kept) while `requeue` allows, else fail it. `job`: as an orphan sweep found it
        (claimed by a worker that is gone); else one of this worker's own jobs."""
        # only the claim that was interrupted: not one a worker took since it was queued again
        owner = str(job.get("owner") or "") if job is not None else str(self.owner)
        job = job if job is not None else self.store.get(job_id)
        if job is None:
            return
        fields = after_interruption(job, what, self.config.requeue, now_rfc3339(), counted)
        if not self.store.update(job_id, fields, {JobStatus.running.value}, owner):
            return  # finished, dismissed or already handled meanwhile
        queued = fields["status"] == JobStatus.accepted.value
        self._remove_outputs(job_id, keep_work=queued)
        if queued:
            logger.warning("job %s queued again: %s", job_id, fields["message"])
            self._wake.set()

    def _fail(self, job_id: str, message: str) -> None:
        t = now_rfc3339()
        if self.update_if(
            job_id,
            {JobStatus.running.value},
            {"status": JobStatus.failed.value, "message": message, "updated": t, "finished": t},
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
                jobs = self.store.flagged(
                    "mlflow_cleanup", {JobStatus.failed.value, JobStatus.dismissed.value}
                )
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
                    logger.warning(
                        "job %s: %d MLflow run(s) left RUNNING ended as FAILED",
                        job["identifier"],
                        ended,
                    )

    def _heartbeat(self) -> None:
        """Mark this worker's jobs alive; kill children whose jobs were dismissed elsewhere."""
        with self._mutex:
            children = dict(self._children)
        if not children:
            return  # nothing of ours runs (a claim sets the first heartbeat itself)
        self.store.heartbeat(str(self.owner))
        for job_id, child in children.items():
            job = self.store.get(job_id)
            if job is not None and status_of(job) is JobStatus.dismissed and child.poll() is None:
                logger.info("job %s dismissed through another worker: stopping it", job_id)
                kill_group(child.pid, child)
                self._remove_outputs(job_id)

    def _reap(self) -> None:
        with self._mutex:
            done = [(j, c) for j, c in self._children.items() if c.poll() is not None]
        for job_id, child in done:
            # a child that died without its final status; with the store down this raises and
            # the child stays listed: the next tick tries again (the job is never left running)
            code = child.returncode
            what = f"the job's worker process exited unexpectedly (code {code})"
            if code is not None and code < 0:  # killed by a signal (out of memory, an operator)
                with contextlib.suppress(JobStoreUnavailable):
                    stop_leftovers((self.store.get(job_id) or {}).get("spec") or {})
                self._interrupted(job_id, f"{what}, killed by a signal")
            else:  # it crashed by itself: running it again would crash again
                self._fail(job_id, what)
            with self._mutex:
                self._children.pop(job_id, None)
            child.close()
            with contextlib.suppress(JobStoreUnavailable):
                notify(self.get_job(job_id), self.config.href_policy)

    def _launch(self) -> None:
        with self._mutex:
            if len(self._children) >= self.max_jobs:
                return  # this worker alone runs all the store allows: no need to ask it
        t = now_rfc3339()
        claimed = self.store.claim(
            str(self.owner), self.max_jobs, {"message": "starting", "started": t, "updated": t}
        )
        for job in claimed:
            job_id = job["identifier"]
            env = dict(os.environ, APP_PACKAGE_JOB_STORE=self.store.url)
            context = json.loads(env.get("MLFLOW_RUN_CONTEXT") or "{}")
            env["MLFLOW_RUN_CONTEXT"] = json.dumps({**context, RUN_TAG: job_id})
            try:
                child = fork_job(job_id, env, forked_main)
            except Exception as e:  # the fork server did not start or answer
                logger.exception("job %s: no process started", job_id)
                self._fail(job_id, f"internal error: the job's process did not start: {e}")
                continue
            with self._mutex:
                self._children[job_id] = child
            with contextlib.suppress(JobStoreUnavailable):  # the pid only speeds up a dismiss
                self.update_job(job_id, {"pid": child.pid})
                notify(self.get_job(job_id), self.config.href_policy)
            logger.info("job %s started (pid %d)", job_id, child.pid)
