"""Redis streams as the event bus: publish a CloudEvent once, finish an event once (I/O edge).

Two Lua scripts make the "once" atomic on the Redis server (a script runs as one step: no crash
or other client can come between its commands):

- `publish_once`: `SET <stream>:published:<event id> NX` then `XADD <stream> * event <json>`;
  a second publish of the same event id (a restarted collector, another collector) adds nothing.
- `finish`: `HSETNX <state hash> outcome <outcome id>` then `XADD` the outcome event, then
  `XACK` the source entry; a consumer that re-claims an event after a crash publishes no second
  outcome, it only acknowledges.

Every entry is a flat map with one field, `event`, holding the CloudEvent's structured JSON.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import redis

from app_package.errors import InputError, ServiceError
from app_package.events.cloudevents import EVENT_FIELD, CloudEvent, parse, to_json
from app_package.util.redact import redact

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 30 * 24 * 3600  # how long "published" guards and per-event states are kept

_PUBLISH_ONCE = """
local ttl = tonumber(ARGV[3])
local fresh
if ttl > 0 then
  fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ttl)
else
  fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if fresh then
  return redis.call('XADD', KEYS[2], '*', ARGV[4], ARGV[2])
end
return false
"""

_FINISH = """
local entry = false
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 1 then
  entry = redis.call('XADD', KEYS[2], '*', ARGV[6], ARGV[2])
  redis.call('HSET', KEYS[1], 'outcome_type', ARGV[7], 'outcome_stream', KEYS[2],
             'outcome_entry', entry)
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
return entry
"""


def connect(url: str, timeout: float = 10.0) -> redis.Redis:
    """A Redis client for `url` (redis://, rediss://, unix://); InputError for a bad URL."""
    try:
        return redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    except ValueError as e:
        raise InputError(
            f"{redact(url)!r} is not a Redis URL ({e}); e.g. redis://127.0.0.1:6379/0",
            field="redis_url",
        ) from e


def unavailable(url: str, e: Exception) -> ServiceError:
    """The error for a Redis failure: retryable, naming the server."""
    return ServiceError(
        f"Redis at {redact(url)} failed ({type(e).__name__}: {e}); check that redis-server "
        "runs and the Redis URL is right",
        retryable=True,
    )


class EventBus:
    """One Redis connection and the two atomic scripts."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.redis = connect(url, timeout)
        self._publish_once = self.redis.register_script(_PUBLISH_ONCE)
        self._finish = self.redis.register_script(_FINISH)

    def close(self) -> None:
        self.redis.close()

    def publish_once(
        self, stream: str, event: CloudEvent, ttl_s: int = DEFAULT_TTL_S
    ) -> str | None:
        """XADD the event unless an event with its id was published on `stream` before.

        Returns the new entry id, or None for a repeat.
        """
        guard = f"{stream}:published:{event.get_id()}"
        try:
            entry = self._publish_once(
                keys=[guard, stream], args=[event.get_id(), to_json(event), ttl_s, EVENT_FIELD]
            )
        except redis.RedisError as e:
            raise unavailable(self.url, e) from e
        return cast(str, entry) if entry else None

    def finish(
        self,
        state_key: str,
        outcome_stream: str,
        outcome: CloudEvent,
        source_stream: str,
        group: str,
        entry_id: str,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> str | None:
        """Publish the outcome of one event unless already published, then XACK the event.

        Returns the outcome's entry id, or None when an outcome was published before.
        """
        try:
            entry = self._finish(
                keys=[state_key, outcome_stream, source_stream],
                args=[
                    outcome.get_id(),
                    to_json(outcome),
                    group,
                    entry_id,
                    ttl_s,
                    EVENT_FIELD,
                    outcome.get_type(),
                ],
            )
        except redis.RedisError as e:
            raise unavailable(self.url, e) from e
        return cast(str, entry) if entry else None

    def events(self, stream: str) -> list[tuple[str, dict[str, Any]]]:
        """Every entry of a stream, oldest first: (entry id, fields)."""
        try:
            entries: Any = self.redis.xrange(stream)
            return [(str(i), dict(f)) for i, f in entries]
        except redis.RedisError as e:
            raise unavailable(self.url, e) from e


class StreamPublisher:
    """The collector's side: item events onto one stream, each event id once."""

    def __init__(
        self,
        url: str,
        stream: str,
        source: str = "/app-package/watch",
        ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self.bus = EventBus(url)
        self.stream = stream
        self.source = source
        self.ttl_s = ttl_s

    def close(self) -> None:
        self.bus.close()

    def publish(self, event_json: str) -> str | None:
        """Publish a stored event (its structured JSON); None when it was published before."""
        return self.bus.publish_once(self.stream, parse(event_json), self.ttl_s)
