"""`app-package trigger`: item events on a Redis stream become OGC API – Processes jobs, each once.

A trigger reads `<stream>` through a consumer group (XREADGROUP: triggers sharing the group
share the events), submits the configured process for each item-created CloudEvent (the item
href mapped onto one of the process's inputs), follows the job to its end and publishes one
CloudEvent to `<stream>.completed` (job id and URL, output STAC catalog URI, item href) or
`<stream>.failed` (the error, the job id where one exists), then acknowledges the event (XACK).

Each event is handled exactly once, across crashes and between triggers:

1. The execute request carries an `Idempotency-Key` derived from the stream, the group, the
   process and the event id: sent again (a crash before the answer was recorded), the server
   answers with the job the first request created.
2. The job's URL is recorded in a per-event Redis hash (`<stream>:trigger:<group>:<event id>`)
   right after submission; whoever handles the event again follows that job instead of
   submitting.
3. The outcome is published, recorded and the event acknowledged in one Lua script
   (`EventBus.finish`): the hash's `outcome` field is set only if unset (HSETNX), so an event
   re-claimed after that — or delivered twice — gets no second outcome, only an XACK.

A trigger that dies leaves its event pending (unacknowledged) in the group; another trigger, or
the same one restarted, claims it with XAUTOCLAIM once it has been idle `claim_idle_s`. While a
trigger follows a job it resets the entry's idle time (XCLAIM ... JUSTID) so that no other
trigger claims a live event. Bad input (no item href, not a CloudEvent, malformed JSON, a 4xx
from the endpoint, a failed job) ends in one failed event and an XACK; the trigger keeps
running. An unreachable endpoint or Redis is retried with backoff, the event stays pending.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Final

import redis
from pygeoapi.util import JobStatus

from app_package.errors import InputError, ServiceError
from app_package.events import cloudevents as ce
from app_package.events.ogc_client import ProcessesClient
from app_package.events.streams import DEFAULT_TTL_S, EventBus, unavailable
from app_package.jobs.records import TERMINAL_VALUES
from app_package.util.checks import require_positive
from app_package.util.retry import Backoff
from app_package.util.timestamps import now_rfc3339

logger = logging.getLogger(__name__)

# process id -> (the input that takes the item href, whether that input is an array)
KNOWN_INPUTS: Final[dict[str, tuple[str, bool]]] = {
    "tile-classification": ("product", False),
    "water-bodies": ("items", True),
}


# ---------------------------------------------------------------- pure configuration
@dataclass(frozen=True)
class InputMapping:
    """How an item href becomes the execute request's inputs for one process."""

    process: str = "tile-classification"
    input_name: str = "product"
    as_array: bool = False
    inputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_process(
        cls,
        process: str,
        input_name: str | None = None,
        as_array: bool | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> InputMapping:
        """The mapping for `process`: known processes need no `input_name`, others do."""
        known = KNOWN_INPUTS.get(process)
        if input_name is None:
            if known is None:
                raise InputError(
                    f"process {process!r}: name the input that takes the item href "
                    f"(input_name); known processes: {', '.join(KNOWN_INPUTS)}",
                    field="input_name",
                )
            input_name = known[0]
        if as_array is None:
            as_array = known[1] if known and known[0] == input_name else False
        fixed = dict(inputs or {})
        if input_name in fixed:
            raise InputError(
                f"the fixed inputs set {input_name!r}, the input the item href goes to; remove it",
                field="inputs",
            )
        return cls(process, input_name, as_array, fixed)

    def execute_inputs(self, href: str) -> dict[str, Any]:
        return {**self.inputs, self.input_name: [href] if self.as_array else href}


@dataclass(frozen=True)
class TriggerConfig:
    """Where events come from and go to, and the trigger's timings."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    stream: str = "s2-items"
    group: str = "app-package-trigger"
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    endpoint: str = "http://localhost:5000"
    mapping: InputMapping = field(default_factory=InputMapping)
    source: str | None = None  # the outcome events' source (default: per group)
    claim_idle_s: float = 60.0
    block_s: float = 1.0
    poll_s: float = 1.0
    backoff_max_s: float = 60.0
    request_timeout_s: float = 30.0
    state_ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        require_positive(
            self,
            "claim_idle_s",
            "block_s",
            "poll_s",
            "backoff_max_s",
            "request_timeout_s",
            "state_ttl_s",
        )

    @property
    def scope(self) -> str:
        """The consumer group and its stream: what ids and idempotency keys are scoped to."""
        return f"{self.stream}/{self.group}"

    @property
    def event_source(self) -> str:
        return self.source or f"/app-package/trigger/{self.group}"

    @property
    def completed_stream(self) -> str:
        return f"{self.stream}.completed"

    @property
    def failed_stream(self) -> str:
        return f"{self.stream}.failed"

    def state_key(self, event_id: str) -> str:
        return f"{self.stream}:trigger:{self.group}:{event_id}"


@dataclass(frozen=True)
class Decoded:
    """A stream entry read as an item event: the event and its href, or why it cannot be."""

    identity: str  # the event id, or `entry:<entry id>` for a message without one
    event: ce.CloudEvent | None
    href: str | None
    error: str | None


def decode(entry_id: str, fields: dict[str, Any] | None) -> Decoded:
    """Read one stream entry (pure): a valid item-created event, or the reason it is not."""
    try:
        event = ce.parse((fields or {}).get(ce.EVENT_FIELD))
    except ce.EventError as e:
        return Decoded(f"entry:{entry_id}", None, None, f"stream entry {entry_id}: {e}")
    try:
        href = ce.item_href(event)
    except ce.EventError as e:
        return Decoded(event.get_id(), event, None, str(e))
    return Decoded(event.get_id(), event, href, None)


# ---------------------------------------------------------------- the trigger
class Interrupted(Exception):
    """The trigger was asked to stop, or lost the event to another trigger: leave it pending."""


class Trigger:
    """Consumes item events, runs one job per event, publishes one outcome per event."""

    def __init__(self, config: TriggerConfig, client: ProcessesClient | None = None) -> None:
        self.config = config
        self.bus = EventBus(config.redis_url, timeout=max(10.0, config.block_s + 5))
        self.redis: Any = self.bus.redis  # redis-py types its replies loosely
        self.client = client or ProcessesClient(config.endpoint, timeout=config.request_timeout_s)
        self.stop_event = threading.Event()
        self.handled: list[tuple[str, str]] = []  # (event identity, outcome) for logs and tests
        self._failures = 0

    def close(self) -> None:
        self.client.close()
        self.bus.close()

    def stop(self) -> None:
        """Finish the request in progress and return; the event in hand stays pending."""
        self.stop_event.set()

    # ------------------------------------------------------------ stream plumbing
    def ensure_group(self) -> None:
        """Create the consumer group (reading from the stream's start) unless it exists."""
        c = self.config
        try:
            self.redis.xgroup_create(c.stream, c.group, id="0", mkstream=True)
            logger.info("created consumer group %s on %s", c.group, c.stream)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise unavailable(c.redis_url, e) from e
        except redis.RedisError as e:
            raise unavailable(c.redis_url, e) from e

    def _claim_stale(self) -> list[tuple[str, dict[str, Any] | None]]:
        c = self.config
        reply = self.redis.xautoclaim(
            c.stream, c.group, c.consumer, int(c.claim_idle_s * 1000), "0-0", count=1
        )
        claimed = reply[1]
        for entry_id in reply[2] if len(reply) > 2 else []:  # deleted from the stream
            self.redis.xack(c.stream, c.group, entry_id)
        return [(i, f) for i, f in claimed]

    def _read(self, new: bool) -> list[tuple[str, dict[str, Any] | None]]:
        c = self.config
        reply = self.redis.xreadgroup(
            c.group,
            c.consumer,
            {c.stream: ">" if new else "0"},
            count=1,
            block=int(c.block_s * 1000) if new else None,
        )
        return [(i, f) for _, entries in reply or [] for i, f in entries]

    def _still_mine(self, entry_id: str) -> bool:
        """Reset the entry's idle time; False when it left this group's pending list."""
        c = self.config
        got = self.redis.xclaim(c.stream, c.group, c.consumer, 0, [entry_id], justid=True)
        return bool(got)

    # ------------------------------------------------------------ loop
    def step(self, own_pending: bool = False) -> int:
        """Take one event (own pending, else stale, else new) and handle it; 0 when idle."""
        entries = self._read(new=False) if own_pending else self._claim_stale()
        if not entries and not own_pending:
            entries = self._read(new=True)
        for entry_id, fields in entries:
            if self.stop_event.is_set():
                break
            self.handle(entry_id, fields)
        return len(entries)

    def run(self, max_events: int | None = None) -> None:
        """Handle events until `stop()` (SIGTERM), or until `max_events` were handled."""
        c = self.config
        logger.info(
            "trigger %s (group %s) on %s -> %s/processes/%s",
            c.consumer,
            c.group,
            c.stream,
            c.endpoint,
            c.mapping.process,
        )
        self.ensure_group()
        own_pending = True  # a restart under the same consumer name resumes its events first
        while not self.stop_event.is_set():
            if max_events is not None and len(self.handled) >= max_events:
                break
            try:
                n = self.step(own_pending)
            except (redis.RedisError, ServiceError) as e:
                self._pause(e)
                continue
            self._failures = 0
            if own_pending and n == 0:
                own_pending = False
        logger.info("stopped after %d event(s)", len(self.handled))

    def _pause(self, e: Exception) -> None:
        self._failures += 1
        delay = Backoff(max_s=self.config.backoff_max_s).delay(self._failures)
        logger.warning("retry in %.1f s: %s", delay, e)
        self.stop_event.wait(delay)

    # ------------------------------------------------------------ one event
    def handle(self, entry_id: str, fields: dict[str, Any] | None) -> str:
        """Handle one entry to its end; returns the outcome ("completed", "failed",
        "duplicate") or "interrupted" when it stays pending."""
        c = self.config
        d = decode(entry_id, fields)
        state_key = c.state_key(d.identity)
        state = self.redis.hgetall(state_key)
        if state.get("outcome"):
            self.redis.xack(c.stream, c.group, entry_id)
            logger.info(
                "event %s already handled (%s): acknowledged", d.identity, state.get("outcome_type")
            )
            return self._done(d.identity, "duplicate")
        subject = d.event.get_subject() if d.event else None
        if d.error is not None or d.href is None:
            logger.error("event %s rejected: %s", d.identity, d.error)
            return self._fail(d, entry_id, d.error or "no item href", subject=subject)
        try:
            job_url = state.get("job_url") or self._submit(d, state_key)
            doc = self._follow(entry_id, job_url)
            if doc["status"] != JobStatus.successful.value:
                message = doc.get("message") or f"the job ended {doc['status']}"
                logger.error(
                    "event %s: job %s %s: %s", d.identity, doc.get("jobID"), doc["status"], message
                )
                return self._fail(
                    d, entry_id, message, str(doc.get("jobID") or ""), job_url, subject
                )
            catalog = self._catalog(entry_id, job_url, doc)
        except _Rejected as e:
            logger.error("event %s: %s", d.identity, e)
            return self._fail(d, entry_id, str(e), e.job_id, e.job_url, subject)
        except Interrupted as e:
            logger.info("event %s left pending: %s", d.identity, e)
            return self._done(d.identity, "interrupted")
        job_id = str(doc.get("jobID") or job_url.rstrip("/").rsplit("/", 1)[-1])
        outcome = ce.job_completed(
            d.identity,
            scope=c.scope,
            process=c.mapping.process,
            source=c.event_source,
            time=now_rfc3339(),
            job_id=job_id,
            job_url=job_url,
            catalog=catalog,
            item_href=d.href,
            subject=subject,
        )
        entry = self.bus.finish(
            state_key, c.completed_stream, outcome, c.stream, c.group, entry_id, c.state_ttl_s
        )
        logger.info(
            "event %s: job %s successful, catalog %s%s",
            d.identity,
            job_id,
            catalog,
            "" if entry else " (outcome already published)",
        )
        return self._done(d.identity, "completed")

    def _done(self, identity: str, outcome: str) -> str:
        self.handled.append((identity, outcome))
        return outcome

    def _fail(
        self,
        d: Decoded,
        entry_id: str,
        error: str,
        job_id: str | None = None,
        job_url: str | None = None,
        subject: str | None = None,
    ) -> str:
        c = self.config
        outcome = ce.job_failed(
            d.identity,
            scope=c.scope,
            process=c.mapping.process,
            source=c.event_source,
            time=now_rfc3339(),
            error=error,
            job_id=job_id or None,
            job_url=job_url,
            item_href=d.href,
            subject=subject,
        )
        self.bus.finish(
            c.state_key(d.identity),
            c.failed_stream,
            outcome,
            c.stream,
            c.group,
            entry_id,
            c.state_ttl_s,
        )
        return self._done(d.identity, "failed")

    def _submit(self, d: Decoded, state_key: str) -> str:
        """Execute the process for the event's item (idempotently); record the job URL."""
        c = self.config
        assert d.href is not None
        key = ce.idempotency_key(c.scope, c.mapping.process, d.identity)
        inputs = c.mapping.execute_inputs(d.href)
        ref = self._retrying(
            lambda: self.client.execute_async(c.mapping.process, inputs, idempotency_key=key)
        )
        self.redis.hset(
            state_key,
            mapping={
                "job_id": ref.job_id,
                "job_url": ref.url,
                "consumer": c.consumer,
                "submitted": now_rfc3339(),
            },
        )
        self.redis.expire(state_key, c.state_ttl_s)
        logger.info("event %s: submitted job %s (%s)", d.identity, ref.job_id, ref.url)
        return ref.url

    def _follow(self, entry_id: str, job_url: str) -> dict[str, Any]:
        """Poll the job until it ends, keeping the entry claimed; its last statusInfo."""
        while True:
            doc = self._retrying(lambda: self.client.status(job_url), job_url=job_url)
            if doc["status"] in TERMINAL_VALUES:
                return doc
            if not self._still_mine(entry_id):
                raise Interrupted(f"entry {entry_id} was acknowledged by another trigger")
            if self.stop_event.wait(self.config.poll_s):
                raise Interrupted("stopping")

    def _catalog(self, entry_id: str, job_url: str, doc: dict[str, Any]) -> str:
        """The URI of the job's output STAC catalog (the results document's `self` link)."""
        results = self._retrying(lambda: self.client.results(job_url, doc), job_url=job_url)
        for link in results.get("links") or []:
            if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
                return str(link["href"])
        return self.client.results_url(job_url, doc)

    def _retrying(self, call: Any, job_url: str | None = None) -> Any:
        """`call()`, retried with backoff while the endpoint is unavailable; a refusal raises
        `_Rejected` (to become the failed event), a stop raises `Interrupted`."""
        failures = 0
        while True:
            try:
                return call()
            except ServiceError as e:
                if not e.retryable:
                    job_id = job_url.rstrip("/").rsplit("/", 1)[-1] if job_url else None
                    raise _Rejected(str(e), job_id, job_url) from e
                failures += 1
                delay = Backoff(max_s=self.config.backoff_max_s).delay(failures)
                logger.warning("endpoint unavailable, retry in %.1f s: %s", delay, e)
                if self.stop_event.wait(delay):
                    raise Interrupted("stopping") from e


class _Rejected(Exception):
    def __init__(self, message: str, job_id: str | None, job_url: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.job_url = job_url
