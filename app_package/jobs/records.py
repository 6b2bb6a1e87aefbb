"""A job as the store keeps it: the record type and its statuses (pygeoapi's `JobStatus`)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from pygeoapi.util import JobStatus

# a job in one of these states never changes again (except being deleted)
TERMINAL = frozenset({JobStatus.successful, JobStatus.failed, JobStatus.dismissed})
TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)


class JobSpec(TypedDict):
    """What a job's process needs to run it: the processor, engine, inputs and output folder."""

    processor: dict[str, Any]
    engine: str
    inputs: dict[str, Any]
    toil_batch_system: NotRequired[str]  # Toil's --batchSystem (`manager.toil_batch_system`)
    output: str
    subscriber: dict[str, str] | None
    response: NotRequired[str]  # raw | document (18-062r2 §7.11)
    transmission: NotRequired[dict[str, str]]  # output id -> value | reference
    workdir: NotRequired[str]  # the job's folder of what survives an interruption (checkpoints)


class JobRecord(TypedDict):
    """One job in the store. Statuses are `JobStatus` values; timestamps RFC 3339 UTC."""

    type: str
    identifier: str
    process_id: str
    status: str
    message: str
    progress: int
    created: str
    updated: str
    started: str | None
    finished: str | None
    location: str | None
    mimetype: str
    pid: int | None
    spec: JobSpec
    idempotency_key: NotRequired[str]
    mlflow_cleanup: NotRequired[str]  # the MLflow store whose open runs to end if it fails
    owner: NotRequired[str]  # the worker running it (`identity.Owner`)
    error_kind: NotRequired[str]  # "input": the request's fault (answered as 400)
    attempts: NotRequired[int]  # times queued again after an interruption (`interruptions`)


def status_of(job: JobRecord | dict[str, Any]) -> JobStatus:
    """A job record's status as pygeoapi's enum."""
    return JobStatus(job["status"])
