"""What every job store offers: the operations the manager, its supervisor and the job
children need, a query for the job list, and the error for a store that cannot be reached.

A job record is a JSON object (`records.JobRecord`). The operations that matter for several
workers are atomic: `claim` moves queued jobs to `running` without ever exceeding the
concurrency limit summed over all workers, `update(..., statuses=…, owner=…)` changes a job
only while it is in one of the given states and claimed by that worker (no race between a
finishing child and a dismiss, or between two workers handling one interrupted job), and
`add_unique` gives one job per `Idempotency-Key` and process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from app_package.errors import ServiceError


class JobStoreUnavailable(ServiceError):
    """The job store cannot be reached (PostgreSQL down or restarting, the file locked too
    long): try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class JobQuery:
    """A page of the job list (OGC API – Processes job-list filters; all optional, ANDed).

    Durations are seconds from `started` to `finished` (or to now while running); jobs that
    never started have no duration and match no duration filter.
    """

    statuses: frozenset[str] = frozenset()
    process_ids: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    created_from: str | None = None  # RFC 3339, inclusive
    created_to: str | None = None  # RFC 3339, inclusive
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    limit: int | None = None
    offset: int = 0


class JobStore(Protocol):
    """The operations the job manager and its children need."""

    url: str  # what a child process is given to open the same store

    def add_unique(self, job: dict[str, Any], key: str | None) -> dict[str, Any]:
        """Insert `job` durably; with an idempotency `key`, return the job already stored for
        that key and process instead."""
        ...

    def add_many(self, jobs: list[dict[str, Any]]) -> None:
        """Insert many jobs in one transaction (an import, a benchmark's fill)."""
        ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def page(self, query: JobQuery) -> tuple[list[dict[str, Any]], int]:
        """The jobs matching `query`, newest first (without their specs), and how many matched."""
        ...

    def update(
        self,
        job_id: str,
        fields: dict[str, Any],
        statuses: set[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        """Merge `fields` into a job, only while its status is in `statuses` and, if given, its
        `owner` is this one ("": none recorded; a job queued again is not taken back from the
        worker that claimed it since)."""
        ...

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        """Move the oldest queued jobs to `running` for `owner`, keeping ≤ `max_running` running."""
        ...

    def heartbeat(self, owner: str) -> None:
        """Mark `owner`'s running jobs as alive now."""
        ...

    def running(self) -> list[tuple[dict[str, Any], float]]:
        """Every running job with the seconds since its owner's last heartbeat."""
        ...

    def flagged(self, field: str, statuses: set[str]) -> list[dict[str, Any]]:
        """The jobs in `statuses` whose `field` is a non-empty string (work left to do)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SQLDialect:
    """How a store's SQL names what a job-list query filters on."""

    param: str  # the driver's placeholder: "?" or "%s"
    status: str
    process_id: str
    type: str
    created: str
    started: str  # NULL for a job that never started
    duration: str  # seconds from start to finish (or to now), may use `param`s
    duration_args: tuple[Any, ...] = ()  # the values of the duration's `param`s

    def where(self, query: JobQuery) -> tuple[str, tuple[Any, ...]]:
        """The `WHERE` clause of a job-list query and its arguments."""
        p = self.param
        terms: list[str] = []
        args: list[Any] = []
        for expr, values in (
            (self.status, query.statuses),
            (self.process_id, query.process_ids),
            (self.type, query.types),
        ):
            if values:
                terms.append(f"{expr} IN ({', '.join([p] * len(values))})")
                args += sorted(values)
        for op, bound in ((">=", query.created_from), ("<=", query.created_to)):
            if bound is not None:
                terms.append(f"{self.created} {op} {p}")
                args.append(bound)
        for op, seconds in ((">=", query.min_duration_s), ("<=", query.max_duration_s)):
            if seconds is not None:
                terms.append(f"{self.started} IS NOT NULL AND {self.duration} {op} {p}")
                args += [*self.duration_args, seconds]
        return ("WHERE " + " AND ".join(terms) if terms else ""), tuple(args)


def first_line(e: BaseException) -> str:
    """The first line of an error's message (drivers add context lines)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
