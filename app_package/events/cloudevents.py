"""CloudEvents 1.0 for the event pipeline: the project's event types, ids and rules (pure, no
I/O) over the official CloudEvents SDK, whose event, structured JSON format and HTTP binding
(binary and structured mode) carry the envelope.

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
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from app_package.errors import InputError

__all__ = [
    "CloudEvent",
    "EventError",
    "from_http",
    "json_data",
    "make",
    "parse",
    "to_dict",
    "to_json",
]

SPECVERSION: Final = "1.0"
JSON: Final = "application/json"
EVENT_FIELD: Final = "event"  # the stream entry's field holding the structured JSON

ITEM_CREATED: Final = "org.app-package.stac.item.created"
JOB_COMPLETED: Final = "org.app-package.job.completed"
JOB_FAILED: Final = "org.app-package.job.failed"

ID_VERSION: Final = "app-package-events/1"
FORMAT: Final = JSONFormat()  # the SDK's structured JSON format


class EventError(InputError):
    """A message is not a valid CloudEvent of the kind expected (the message says why)."""


# ---------------------------------------------------------------- the envelope (the SDK's)
def make(
    id: str,
    source: str,
    type: str,
    time: str,
    data: dict[str, Any],
    subject: str | None = None,
) -> CloudEvent:
    """A CloudEvent 1.0 with JSON data (the SDK's event; `time` is RFC 3339 text)."""
    attributes: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": _parse_time(time),
        "datacontenttype": JSON,
    }
    if subject is not None:
        attributes["subject"] = subject
    try:
        return CloudEvent(attributes, data)
    except BaseCloudEventException as e:
        raise EventError(f"not a valid CloudEvent: {_sdk_message(e)}") from e


def to_json(event: CloudEvent) -> str:
    """The structured-mode JSON text (what the stream entry's `event` field holds)."""
    return FORMAT.write(event).decode()


def to_dict(event: CloudEvent) -> dict[str, Any]:
    """The structured-mode JSON object."""
    return dict(json.loads(to_json(event)))


def data_of(event: CloudEvent) -> dict[str, Any]:
    """The event's data: a JSON object (`parse` and `from_http` refuse anything else)."""
    data = event.get_data()
    return data if isinstance(data, dict) else {}


def parse(text: str | bytes | None) -> CloudEvent:
    """A CloudEvent from the structured-mode JSON text of a stream entry's `event` field."""
    if text is None:
        raise EventError(f"the stream entry has no {EVENT_FIELD!r} field holding a CloudEvent")
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise EventError(f"the {EVENT_FIELD!r} field is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise EventError(f"a CloudEvent is a JSON object, not {type(doc).__name__}")
    if "data_base64" in doc:
        raise EventError("CloudEvent carries data_base64: expected JSON data (structured mode)")
    if "time" in doc:
        _parse_time(doc["time"])
    try:
        event = FORMAT.read(None, text)
    except BaseCloudEventException as e:
        raise EventError(f"not a CloudEvent: {_sdk_message(e)}") from e
    return _checked(event)


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A CloudEvent from an HTTP request, binary or structured mode (the SDK's HTTP binding).

    Its data may be any JSON value or bytes (`data_base64`); `json_data` reads it."""
    message = ce_http.HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=body)
    try:
        event = ce_http.from_http(message, FORMAT)
    except BaseCloudEventException as e:
        raise EventError(f"not a CloudEvent: {_sdk_message(e)}") from e
    except ValueError as e:  # unparsable time or JSON body
        raise EventError(f"not a CloudEvent: {e}") from e
    return _checked(event, data_object=False)


def json_data(event: CloudEvent) -> Any:
    """The event's data as JSON: as given, or decoded from bytes/text (binary mode, base64)."""
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            return json.loads(data)
        except ValueError as e:
            raise EventError(f"CloudEvent {event.get_id()}: data is not JSON: {e}") from e
    return data


def _checked(event: Any, data_object: bool = True) -> CloudEvent:
    """The project's rules on top of the spec: CloudEvents 1.0, JSON object data."""
    specversion = event.get_specversion()
    if specversion != SPECVERSION or not isinstance(event, CloudEvent):
        raise EventError(f"CloudEvent specversion {specversion!r} is not {SPECVERSION!r}")
    if not data_object:
        return event
    content_type = event.get_datacontenttype() or JSON
    if not content_type.startswith(JSON):
        raise EventError(f"CloudEvent datacontenttype {content_type!r} is not {JSON}")
    data = event.get_data()
    if data is not None and not isinstance(data, dict):
        raise EventError(f"CloudEvent data must be a JSON object, not {type(data).__name__}")
    return event


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise EventError(f"CloudEvent 'time' must be an RFC 3339 string, not {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise EventError(f"CloudEvent 'time' {value!r} is not RFC 3339: {e}") from e
    if t.tzinfo is None:
        raise EventError(f"CloudEvent 'time' {value!r} has no time zone (RFC 3339 needs one)")
    return t


def _sdk_message(e: BaseCloudEventException) -> str:
    if isinstance(e, CloudEventValidationError):
        return "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in e.errors.items())
    return str(e)


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
    return make(
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
    data = {"job_id": job_id, "job_url": job_url, "catalog": catalog, "item_href": item_href}
    return _outcome(JOB_COMPLETED, source_event_id, scope, process, source, time, subject, data)


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
    data = {"error": error, "job_id": job_id, "job_url": job_url, "item_href": item_href}
    return _outcome(JOB_FAILED, source_event_id, scope, process, source, time, subject, data)


def _outcome(
    type_: str,
    source_event_id: str,
    scope: str,
    process: str,
    source: str,
    time: str,
    subject: str | None,
    data: dict[str, Any],
) -> CloudEvent:
    """An outcome event: its id scoped to the consumer group, its data naming the source event."""
    return make(
        id=outcome_event_id(scope, process, source_event_id),
        source=source,
        type=type_,
        time=time,
        subject=subject,
        data={"process": process, **data, "source_event": source_event_id},
    )


def item_href(event: CloudEvent) -> str:
    """The item href of an item-created event; EventError when the event cannot name one."""
    if event.get_type() != ITEM_CREATED:
        raise EventError(
            f"event {event.get_id()}: type {event.get_type()!r} is not {ITEM_CREATED!r}"
        )
    href = data_of(event).get("href")
    if not isinstance(href, str) or not href.strip():
        raise EventError(f"event {event.get_id()} has no item href (data.href): nothing to process")
    return href
