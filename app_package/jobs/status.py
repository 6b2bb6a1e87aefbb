"""A job's OGC API – Processes statusInfo document (18-062r2 `statusInfo.yaml`)."""

from __future__ import annotations

from typing import Any

from pygeoapi.util import JobStatus

from app_package.jobs.records import status_of


def status_info(job: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """An OGC statusInfo document; unset timestamps are omitted, not null."""
    doc: dict[str, Any] = {
        "type": "process",
        "processID": job["process_id"],
        "jobID": job["identifier"],
        "status": status_of(job).value,
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
        if status_of(job) is JobStatus.successful:
            doc["links"].append(
                {
                    "href": f"{url}/results",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                    "type": "application/json",
                    "title": "the job's output STAC catalog",
                }
            )
    return doc
