"""Callbacks to an execute request's subscriber: the job's statusInfo POSTed to its URLs."""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from pygeoapi.util import JobStatus

from app_package.jobs.records import status_of
from app_package.jobs.status import status_info
from app_package.service.hrefs import HrefPolicy
from app_package.service.ogc import OGCError

logger = logging.getLogger(__name__)

# the subscriber URL for each status (18-062r2 `subscriber.yaml`)
SUBSCRIBER_KEYS = {
    JobStatus.running: "inProgressUri",
    JobStatus.successful: "successUri",
    JobStatus.failed: "failedUri",
}


def notify(job: dict[str, Any], policy: HrefPolicy | None) -> None:
    """POST the job's status to its subscriber's URL for its current status, if any (in the
    background: a slow subscriber never holds up the supervisor)."""
    subscriber = (job.get("spec") or {}).get("subscriber") or {}
    key = SUBSCRIBER_KEYS.get(status_of(job))
    url = subscriber.get(key) if key else None
    if url:
        args = (url, status_info(job), policy)
        threading.Thread(target=post_callback, args=args, daemon=True).start()


def post_callback(url: str, body: dict[str, Any], policy: HrefPolicy | None = None) -> None:
    """POST a callback; with a `policy`, only if the URL's host still passes it (DNS rebinding)."""
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
