"""The one timestamp format of the package: RFC 3339 in UTC with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """Now as an RFC 3339 UTC timestamp (`2026-12-01T19:47:54.123456Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
