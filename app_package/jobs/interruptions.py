"""What becomes of a job interrupted while it ran (its server worker crashed or was restarted,
its own process was killed): queued again, at most `requeue` times (`ManagerConfig.requeue`),
then failed. A job queued again runs from the start, except for what its processor keeps in the
job's work folder (a training resumes from its last completed epoch). The record counts the
times in `attempts`, so a job that crashes whatever happens is not run forever.
"""

from __future__ import annotations

from typing import Any

from pygeoapi.util import JobStatus


def after_interruption(
    job: dict[str, Any], what: str, requeue: int, now: str, counted: bool = True
) -> dict[str, Any]:
    """The fields that move an interrupted `running` job on: back to `accepted` while it was
    queued again fewer than `requeue` times, else `failed`. `what` says what happened ("the
    server shut down while the job was running"); an orderly shutdown is not `counted` (it is
    not the job's fault), a crash is."""
    attempts = int(job.get("attempts") or 0)
    if requeue > 0 and (attempts < requeue or not counted):
        n = attempts + 1 if counted else attempts
        return {
            "status": JobStatus.accepted.value,
            "message": f"queued again after an interruption ({what}; re-queue {n} of "
            f"{requeue}): it resumes where it can",
            "progress": 0,
            "pid": None,
            "started": None,  # queued: it starts again when a worker claims it
            "attempts": n,
            "updated": now,
        }
    already = f" (it was queued again {attempts} time(s) before)" if attempts else ""
    return {
        "status": JobStatus.failed.value,
        "message": f"interrupted: {what}{already}; submit it again",
        "updated": now,
        "finished": now,
    }
