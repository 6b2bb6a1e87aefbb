"""CloudEvents 1.0 for the Redis event pipeline: build, parse and validate events (pure, no I/O).

Each stream entry carries one event in CloudEvents' structured JSON mode, in the field `event`
(Redis stream entries are flat string maps). Three event types travel on three streams:

- `org.app-package.stac.item.created` on `<stream>` (the collector, `app-package watch
  --redis-url`): data = the item's `href` (its `self` link), `collection`, `bbox`, `datetime`;
  subject = the item id.
- `org.app-package.job.completed` on `<stream>.completed` (the trigger): data = the job's id and
  URL, the output STAC catalog URI, the source item href and event id, the process.
- `org.app-package.job.failed` on `<stream>.failed`: data = the error message, the job's id and
  URL where a job exists, the source item href and event id where known, the process.

Ids are deterministic, so a repeat is detectable: an item event's id is a hash of the item's key
(collection and item id), whoever publishes it; an outcome event's id is a hash of the consumer
group, the process and the source event id (one outcome per event and group).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from app_package.errors import InputError

SPECVERSION: Final = "1.0"
JSON: Final = "application/json"
EVENT_FIELD: Final = "event"  # the stream entry's field holding the structured JSON

ITEM_CREATED: Final = "org.app-package.stac.item.created"
JOB_COMPLETED: Final = "org.app-package.job.completed"
JOB_FAILED: Final = "org.app-package.job.failed"

ID_VERSION: Final = "app-package-events/1"
REQUIRED: Final = ("specversion", "id", "source", "type")


class EventError(InputError):
    """A message is not a valid CloudEvent of the kind expected (the message says why)."""


@dataclass(frozen=True)
class CloudEvent:
    """One CloudEvent 1.0 (the attributes this project uses; `data` is always a JSON object)."""

    id: str
    source: str
    type: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = JSON

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
        }
        if self.subject is not None:
            doc["subject"] = self.subject
        doc["data"] = self.data
        return doc

    def to_json(self) -> str:
        """The structured-mode JSON text (what the stream entry's `event` field holds)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)


# ---------------------------------------------------------------- ids
def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join((ID_VERSION, *parts)).encode()).hexdigest()[:32]


def item_event_id(collection: str | None, item_id: str) -> str:
    """The id of an item-created event: the same item always gets the same id."""
    return _digest("item", collection or "", item_id)


def outcome_event_id(scope: str, process: str, source_event_id: str) -> str:
    """The id of the one completed/failed event a consumer group publishes for an event;
    `scope` names the group and its stream (`<stream>/<group>`)."""
    return _digest("outcome", scope, process, source_event_id)


def idempotency_key(scope: str, process: str, source_event_id: str) -> str:
    """The `Idempotency-Key` of the execute request for an event (`scope`: `<stream>/<group>`):
    a retry gets the same job; another group, or the same group name on another stream, not."""
    return _digest("execute", scope, process, source_event_id)


# ---------------------------------------------------------------- building
def item_created(item: dict[str, Any], href: str, source: str, time: str) -> CloudEvent:
    """The event announcing a new STAC item, read from `href`."""
    item_id = str(item["id"])
    collection = item.get("collection")
    props = item.get("properties") or {}
    bbox = item.get("bbox")
    return CloudEvent(
        id=item_event_id(collection, item_id),
        source=source,
        type=ITEM_CREATED,
        time=time,
        subject=item_id,
        data={
            "href": href,
            "collection": collection if isinstance(collection, str) else None,
            "bbox": [float(v) for v in bbox] if isinstance(bbox, list) else None,
            "datetime": props.get("datetime") or props.get("start_datetime"),
        },
    )


def job_completed(
    source_event_id: str,
    *,
    scope: str,
    process: str,
    source: str,
    time: str,
    job_id: str,
    job_url: str,
    catalog: str,
    item_href: str,
    subject: str | None,
) -> CloudEvent:
    """The outcome event of a successful job."""
    return CloudEvent(
        id=outcome_event_id(scope, process, source_event_id),
        source=source,
        type=JOB_COMPLETED,
        time=time,
        subject=subject,
        data={
            "process": process,
            "job_id": job_id,
            "job_url": job_url,
            "catalog": catalog,
            "item_href": item_href,
            "source_event": source_event_id,
        },
    )


def job_failed(
    source_event_id: str,
    *,
    scope: str,
    process: str,
    source: str,
    time: str,
    error: str,
    job_id: str | None = None,
    job_url: str | None = None,
    item_href: str | None = None,
    subject: str | None = None,
) -> CloudEvent:
    """The outcome event of an event that could not be handled, or whose job failed."""
    return CloudEvent(
        id=outcome_event_id(scope, process, source_event_id),
        source=source,
        type=JOB_FAILED,
        time=time,
        subject=subject,
        data={
            "process": process,
            "error": error,
            "job_id": job_id,
            "job_url": job_url,
            "item_href": item_href,
            "source_event": source_event_id,
        },
    )


# ---------------------------------------------------------------- parsing
def _check_time(value: Any) -> None:
    if not isinstance(value, str):
        raise EventError(f"CloudEvent 'time' must be an RFC 3339 string, not {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise EventError(f"CloudEvent 'time' {value!r} is not RFC 3339: {e}") from e
    if t.tzinfo is None:
        raise EventError(f"CloudEvent 'time' {value!r} has no time zone (RFC 3339 needs one)")


def from_dict(doc: Any) -> CloudEvent:
    """A CloudEvent 1.0 from its structured-mode JSON object; EventError says what is wrong."""
    if not isinstance(doc, dict):
        raise EventError(f"a CloudEvent is a JSON object, not {type(doc).__name__}")
    missing = [k for k in REQUIRED if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        raise EventError(
            f"not a CloudEvent: attribute(s) {', '.join(missing)} missing or not a non-empty "
            "string (CloudEvents 1.0 requires specversion, id, source, type)"
        )
    if doc["specversion"] != SPECVERSION:
        raise EventError(f"CloudEvent specversion {doc['specversion']!r} is not {SPECVERSION!r}")
    if "time" in doc:
        _check_time(doc["time"])
    content_type = doc.get("datacontenttype", JSON)
    if "data_base64" in doc:
        raise EventError("CloudEvent carries data_base64: expected JSON data (structured mode)")
    data = doc.get("data", {})
    if not isinstance(content_type, str) or not content_type.startswith(JSON):
        raise EventError(f"CloudEvent datacontenttype {content_type!r} is not {JSON}")
    if not isinstance(data, dict):
        raise EventError(f"CloudEvent data must be a JSON object, not {type(data).__name__}")
    subject = doc.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise EventError(f"CloudEvent subject must be a string, not {subject!r}")
    return CloudEvent(
        id=doc["id"],
        source=doc["source"],
        type=doc["type"],
        time=doc.get("time") or "",
        data=data,
        subject=subject,
        specversion=doc["specversion"],
        datacontenttype=content_type,
    )


def parse(text: str | bytes | None) -> CloudEvent:
    """A CloudEvent from the structured-mode JSON text of a stream entry's `event` field."""
    if text is None:
        raise EventError(f"the stream entry has no {EVENT_FIELD!r} field holding a CloudEvent")
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise EventError(f"the {EVENT_FIELD!r} field is not JSON: {e}") from e
    return from_dict(doc)


def item_href(event: CloudEvent) -> str:
    """The item href of an item-created event; EventError when the event cannot name one."""
    if event.type != ITEM_CREATED:
        raise EventError(f"event {event.id}: type {event.type!r} is not {ITEM_CREATED!r}")
    href = event.data.get("href")
    if not isinstance(href, str) or not href.strip():
        raise EventError(f"event {event.id} has no item href (data.href): nothing to process")
    return href
