"""OGC API – Processes (18-062r2) details that stock pygeoapi gets wrong or leaves out.

Exception documents with the standard's `type` URIs and RFC 7240 `Prefer` parsing; an execute
request is checked by `app_package.service.execute`, its references by `.hrefs`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

logger = logging.getLogger(__name__)

# the exception types OGC API – Processes Part 1 (18-062r2 §7.5) defines, in its namespace
OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
NO_SUCH_PROCESS = OGC_EXCEPTIONS + "no-such-process"
NO_SUCH_JOB = OGC_EXCEPTIONS + "no-such-job"
RESULT_NOT_READY = OGC_EXCEPTIONS + "result-not-ready"
# the project's own types, for cases Part 1 names no type for (listed in the README)
APP_EXCEPTIONS = "urn:app-package:exception:"
INVALID_INPUT = APP_EXCEPTIONS + "invalid-input"  # an execute request that does not fit
INVALID_PARAMETER = APP_EXCEPTIONS + "invalid-parameter"  # a bad query parameter
PAYLOAD_TOO_LARGE = APP_EXCEPTIONS + "payload-too-large"
JOB_FAILED = APP_EXCEPTIONS + "job-failed"
JOB_DISMISSED = APP_EXCEPTIONS + "job-dismissed"
NOT_FOUND = APP_EXCEPTIONS + "not-found"  # no such output file
UNAVAILABLE = APP_EXCEPTIONS + "unavailable"  # the job store cannot be reached: retry
TITLES = {
    NO_SUCH_PROCESS: "No such process",
    NO_SUCH_JOB: "No such job",
    RESULT_NOT_READY: "Result not ready",
    INVALID_INPUT: "Invalid input",
    INVALID_PARAMETER: "Invalid parameter",
    PAYLOAD_TOO_LARGE: "Payload too large",
    JOB_FAILED: "Job failed",
    JOB_DISMISSED: "Job dismissed",
    NOT_FOUND: "Not found",
    UNAVAILABLE: "Service unavailable",
}

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = [
    CONF + "core",
    CONF + "ogc-process-description",
    CONF + "json",
    CONF + "job-list",
    CONF + "dismiss",
    CONF + "callback",
    CONF + "oas30",
]


class OGCError(Exception):
    """An error answered as an OGC exception document (RFC 7807 style, per 18-062r2 §7.5)."""

    def __init__(self, status: int, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail

    def document(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": TITLES.get(self.type) or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }


def invalid(detail: str) -> OGCError:
    """A 400 for a bad execute request."""
    return OGCError(400, INVALID_INPUT, detail)


def bad_parameter(name: str, detail: str) -> OGCError:
    """A 400 for a bad query parameter, naming it."""
    return OGCError(400, INVALID_PARAMETER, f"query parameter '{name}': {detail}")


# ---------------------------------------------------------------- Prefer (RFC 7240)
def parse_prefer(values: Iterable[str]) -> dict[str, str]:
    """Preferences from one or more `Prefer` header values: {name (lower case): value or ''}.

    Follows RFC 7240 §2: comma-separated preferences, each `token [= value] *(; parameter)`;
    values may be quoted; the first occurrence of a preference wins; parameters are ignored.
    """
    prefs: dict[str, str] = {}
    for header in values:
        for item in _split_outside_quotes(header, ","):
            head = _split_outside_quotes(item, ";")[0].strip()
            if not head:
                continue
            name, _, value = head.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            prefs.setdefault(name, value)
    return prefs


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def choose_mode(job_control: Sequence[str], prefs: Mapping[str, str]) -> str:
    """'async' or 'sync' from a process's jobControlOptions and the client's preferences."""
    can_async = "async-execute" in job_control
    can_sync = "sync-execute" in job_control
    if "respond-async" in prefs and can_async:
        return "async"
    if can_sync:
        return "sync"
    return "async"
