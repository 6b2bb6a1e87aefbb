"""A small client for any OGC API – Processes endpoint (18-062r2): async execute, job status.

`execute_async` posts an execute request with `Prefer: respond-async` and an `Idempotency-Key`
header, and returns where the job lives (the `Location` header, else the statusInfo's `self`
link, else `<endpoint>/jobs/<jobID>`). `status` follows that URL; `wait` polls it; `results`
fetches a finished job's results. Failures raise `ServiceError`, whose `retryable` says whether
trying again later can succeed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from pygeoapi.util import JobStatus

from app_package.errors import ServiceError
from app_package.jobs.records import TERMINAL_VALUES

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class JobRef:
    """A submitted job: its id, its status URL and the status it was last seen in."""

    job_id: str
    url: str
    status: str


class ProcessesClient:
    """Talks to one OGC API – Processes endpoint (`base_url` is its landing page)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update(headers or {})

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, url: str, **kw: Any) -> requests.Response:
        try:
            r = self.session.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise ServiceError(
                f"OGC API endpoint unreachable: {method} {url} failed ({type(e).__name__}: {e}); "
                "check that the server runs and the URL is right",
                retryable=True,
            ) from e
        if r.status_code >= 400:
            raise ServiceError(
                f"{method} {url} answered HTTP {r.status_code}: {_detail(r)}",
                retryable=r.status_code in RETRYABLE_STATUS,
            )
        return r

    def execute_async(
        self,
        process_id: str,
        inputs: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        subscriber: dict[str, str] | None = None,
    ) -> JobRef:
        """Submit an async execute request; return the job it created (or, for a repeated
        `idempotency_key` on a server that honours it, the job the first request created)."""
        body: dict[str, Any] = {"inputs": inputs}
        if subscriber:
            body["subscriber"] = subscriber
        headers = {"Prefer": "respond-async", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{self.base_url}/processes/{process_id}/execution"
        r = self._request("POST", url, json=body, headers=headers)
        try:
            doc = r.json()
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        location = r.headers.get("Location")
        job_id = doc.get("jobID")
        if r.status_code != 201 or not (location or job_id):
            raise ServiceError(
                f"POST {url} answered HTTP {r.status_code} without a job (no Location header or "
                "jobID): the endpoint did not run the request asynchronously; check that "
                f"process {process_id!r} supports async-execute",
                retryable=False,
            )
        if location:
            location = urljoin(url, location)
        else:
            self_links = [lk["href"] for lk in doc.get("links", []) if lk.get("rel") == "self"]
            location = (
                urljoin(url, self_links[0]) if self_links else f"{self.base_url}/jobs/{job_id}"
            )
        if not job_id:
            job_id = location.rstrip("/").rsplit("/", 1)[-1]
        return JobRef(str(job_id), location, str(doc.get("status", JobStatus.accepted.value)))

    def status(self, job_url: str) -> dict[str, Any]:
        """The job's statusInfo document."""
        r = self._request("GET", job_url, headers={"Accept": "application/json"})
        try:
            doc = r.json()
        except ValueError as e:
            raise ServiceError(f"GET {job_url}: the answer is not JSON", retryable=True) from e
        if not isinstance(doc, dict) or "status" not in doc:
            raise ServiceError(f"GET {job_url}: the answer is not a statusInfo", retryable=False)
        return doc

    @staticmethod
    def results_url(job_url: str, status: dict[str, Any] | None = None) -> str:
        """Where a finished job's results are: the statusInfo's results link, else
        `<job URL>/results` (18-062r2)."""
        for link in (status or {}).get("links") or []:
            if isinstance(link, dict) and str(link.get("rel", "")).endswith("/results"):
                return urljoin(job_url, str(link["href"]))
        return f"{job_url.rstrip('/')}/results"

    def results(self, job_url: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        """A successful job's results document (for `app-package serve`: its STAC catalog)."""
        url = self.results_url(job_url, status)
        r = self._request("GET", url, headers={"Accept": "application/json"})
        try:
            doc = r.json()
        except ValueError as e:
            raise ServiceError(f"GET {url}: the answer is not JSON", retryable=True) from e
        if not isinstance(doc, dict):
            raise ServiceError(f"GET {url}: the answer is not a JSON object", retryable=False)
        return doc

    def wait(self, job_url: str, timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
        """Poll a job until it is successful, failed or dismissed; return its statusInfo."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status(job_url)
            if doc["status"] in TERMINAL_VALUES:
                return doc
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"job {job_url} still {doc['status']} after {timeout:.0f} s", retryable=True
                )
            time.sleep(poll)


def _detail(r: requests.Response) -> str:
    """The `detail`/`description` of an OGC exception document, else the start of the body."""
    try:
        doc = r.json()
    except ValueError:
        return r.text[:300] or r.reason
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("description") or doc.get("title") or doc)[:500]
    return str(doc)[:300]
