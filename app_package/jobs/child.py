"""A job's own process: runs one claimed job and writes its progress and final status into the
job store (`python -m app_package.jobs.child JOB_ID`, with $APP_PACKAGE_JOB_STORE; the fork
server starts it the same way through `forked_main`). It names itself `app-package-job JOB_ID`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pygeoapi.process.base import ProcessorExecuteError
from pygeoapi.util import JobStatus

from app_package.errors import AppPackageError, DataError, InputError, ModelError, NotFoundError
from app_package.jobs.cwl_engine import run_package
from app_package.jobs.identity import job_title
from app_package.jobs.processor import JobProcessor, tracking_uri
from app_package.jobs.records import status_of
from app_package.jobs.store import JobStore, JobStoreUnavailable, open_store
from app_package.util.retry import retry_until
from app_package.util.timestamps import now_rfc3339

logger = logging.getLogger(__name__)

FINAL_RETRY_S = 60.0  # a child retries its final status this long while the store is down
# a job's process runs at this niceness: the web worker answering requests wins the CPU cores
# over training or classification (an idle machine still gives a job all it can use)
JOB_NICENESS = 10
RUNNING = {JobStatus.running.value}


def forked_main(job_id: str, env: dict[str, str]) -> None:
    """The job's process, just forked: a session of its own, its niceness, its environment."""
    from setproctitle import setproctitle

    os.setsid()  # its own process group: DELETE kills the whole tree, a server crash does not
    os.nice(JOB_NICENESS)
    # before the environment changes: setproctitle finds the memory it rewrites beside it
    setproctitle(job_title(job_id))
    os.environ.clear()
    os.environ.update(env)
    main([job_id])


def run_child(job_id: str, store: JobStore) -> int:
    """Run one claimed job; write progress and the final status to the job store."""
    from pygeoapi.plugin import load_plugin

    # the store may be restarting right now
    job = retry_until(lambda: store.get(job_id), JobStoreUnavailable, FINAL_RETRY_S)
    if job is None or status_of(job) is not JobStatus.running:
        return 0  # dismissed before it started
    spec = job["spec"]
    workdir = Path(spec["workdir"]) if spec.get("workdir") else None
    attempts = int(job.get("attempts") or 0)
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
        fields = {"progress": pct, "message": message, "updated": now_rfc3339()}
        try:
            store.update(job_id, fields, RUNNING)
        except JobStoreUnavailable as e:  # progress is best effort; the work goes on
            logger.warning("job %s: progress not recorded: %s", job_id, e)

    status: JobStatus
    fields: dict[str, Any]
    if attempts:  # queued again after an interruption: what it left half-written goes
        logger.warning("job %s resumed after an interruption (re-queue %d)", job_id, attempts)
        remove_outputs(Path(spec["output"]))
        progress(0.0, "resumed after an interruption")
    try:
        processor = load_plugin("process", spec["processor"])
        engine = spec.get("engine", "local")
        if engine != "local":  # the process's CWL package on a CWL runner
            extra = {"tracking_uri": tracking_uri(spec["processor"])}
            catalog = run_package(
                engine,
                spec["processor"]["cwl"],
                spec["inputs"],
                extra,
                Path(spec["output"]),
                progress,
                spec.get("toil_batch_system", "single_machine"),
            )
            location, mimetype = str(catalog), "application/json"
        elif isinstance(processor, JobProcessor) and workdir is not None:
            output = Path(spec["output"])
            catalog = processor.run_resumable(spec["inputs"], output, progress, workdir)
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
        status, fields = JobStatus.failed, {"message": str(e), "error_kind": "input"}
    except AppPackageError as e:
        status, fields = JobStatus.failed, {"message": str(e)}
    except ProcessorExecuteError as e:
        message = str(e.message if hasattr(e, "message") else e)
        status, fields = JobStatus.failed, {"message": message}
    except Exception as e:
        logger.exception("job %s failed", job_id)
        status, fields = JobStatus.failed, {"message": f"internal error: {type(e).__name__}: {e}"}
    else:
        status = JobStatus.successful
        fields = {
            "message": "done, resumed after an interruption" if attempts else "done",
            "progress": 100,
            "location": location,
            "mimetype": mimetype,
            "mlflow_cleanup": "",
        }
    t = now_rfc3339()
    final = {"status": status.value, "updated": t, "finished": t, **fields}
    try:  # the store may be restarting: the final status must not be lost
        retry_until(
            lambda: store.update(job_id, final, RUNNING), JobStoreUnavailable, FINAL_RETRY_S
        )
    except JobStoreUnavailable as e:
        logger.error("job %s: final status %s not recorded: %s", job_id, status.value, e)
        return 2
    if workdir is not None:  # finished: nothing is to be resumed any more
        shutil.rmtree(workdir, ignore_errors=True)
    # the supervisor notices the exit and sends callbacks
    return 0 if status is JobStatus.successful else 1


def remove_outputs(output: Path) -> None:
    """Remove a job's output folder and the temporary folders of outputs it was writing."""
    shutil.rmtree(output, ignore_errors=True)
    if output.parent.is_dir():
        for tmp in output.parent.glob(f".{output.name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    store_url = os.environ.get("APP_PACKAGE_JOB_STORE", "")
    if len(args) != 1 or not store_url:
        raise SystemExit(
            "usage: APP_PACKAGE_JOB_STORE=CONNECTION python -m app_package.jobs.child JOB_ID"
        )
    from setproctitle import setproctitle

    setproctitle(job_title(args[0]))  # how workers find it again (`identity.runs_job`)
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
    pass
