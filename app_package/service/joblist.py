"""The job list's query parameters (18-062r2 §11, requirements class job-list) checked and
turned into a store query, and the paging links that keep them: pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from pygeoapi.util import JobStatus

from app_package.jobs.store import JobQuery
from app_package.service.ogc import bad_parameter

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FILTERS = ("type", "processID", "status", "datetime", "minDuration", "maxDuration")
STATUSES = tuple(s.value for s in JobStatus)
TYPES = ("process",)


def _values(params: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """A parameter's values, repeated (`?status=a&status=b`) or comma-separated."""
    return [v.strip() for raw in params.get(name, []) for v in raw.split(",") if v.strip()]


def _integer(params: Mapping[str, Sequence[str]], name: str, low: int, high: int) -> int | None:
    values = _values(params, name)
    if not values:
        return None
    if len(values) > 1 or not values[0].lstrip("-").isdigit():
        raise bad_parameter(name, f"{','.join(values)!r} is not an integer")
    value = int(values[0])
    if not low <= value <= high:
        raise bad_parameter(name, f"{value} is not in {low}..{high}")
    return value


def _instant(name: str, text: str) -> str | None:
    """An RFC 3339 instant as the stores compare it (UTC, `…Z` with microseconds); `..` or ''
    is an open end."""
    if text in ("", ".."):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise bad_parameter(name, f"{text!r} is not an RFC 3339 date-time ({e})") from e
    if t.tzinfo is None:
        raise bad_parameter(name, f"{text!r} has no time zone (RFC 3339 needs one, e.g. Z)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_job_query(params: Mapping[str, Sequence[str]]) -> JobQuery:
    """The store query of `/jobs?…`; a 400 naming the parameter for a bad value."""
    statuses = _values(params, "status")
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise bad_parameter("status", f"{unknown[0]!r} is not one of {', '.join(STATUSES)}")
    types = _values(params, "type")
    if [t for t in types if t not in TYPES]:
        raise bad_parameter("type", f"{types!r}: the only job type here is 'process'")
    query = JobQuery(
        statuses=frozenset(statuses),
        process_ids=frozenset(_values(params, "processID")),
        types=frozenset(types),
        limit=_integer(params, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT,
        offset=_integer(params, "offset", 0, 10**9) or 0,
        min_duration_s=_integer(params, "minDuration", 0, 10**9),
        max_duration_s=_integer(params, "maxDuration", 0, 10**9),
    )
    window = _values(params, "datetime")
    if window:
        if len(window) > 1:
            raise bad_parameter("datetime", "give one instant or one interval (start/end)")
        start, sep, end = window[0].partition("/")
        lo, hi = _instant("datetime", start), _instant("datetime", end if sep else start)
        if sep and lo is None and hi is None:
            raise bad_parameter("datetime", "'../..' bounds nothing: give at least one end")
        if lo is not None and hi is not None and lo > hi:
            raise bad_parameter("datetime", f"the interval {window[0]!r} ends before it starts")
        query = replace(query, created_from=lo, created_to=hi)
    return query


def paging_links(
    base: str, params: Mapping[str, Sequence[str]], query: JobQuery, matched: int
) -> list[dict[str, Any]]:
    """`self`, and `next` / `prev` where there are more jobs, each keeping the filters."""
    kept = [(k, v) for k in FILTERS for v in params.get(k, [])]
    limit = query.limit or DEFAULT_LIMIT

    def href(offset: int) -> str:
        return f"{base}?{urlencode([*kept, ('limit', limit), ('offset', offset)])}"

    links = [
        {
            "href": href(query.offset),
            "rel": "self",
            "type": "application/json",
            "title": "this page of jobs",
        }
    ]
    if query.offset + limit < matched:
        links.append(
            {
                "href": href(query.offset + limit),
                "rel": "next",
                "type": "application/json",
                "title": "the next page",
            }
        )
    if query.offset > 0:
        links.append(
            {
                "href": href(max(0, query.offset - limit)),
                "rel": "prev",
                "type": "application/json",
                "title": "the previous page",
            }
        )
    return links
