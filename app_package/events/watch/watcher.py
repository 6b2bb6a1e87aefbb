"""The watcher's loop: polling, intake of pushed items, publishing, submitting, following jobs."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygeoapi.util import JobStatus

from app_package.defaults import CHAMPION_URI
from app_package.errors import EX_TEMPFAIL, InputError, ServiceError
from app_package.events.cloudevents import item_created, to_json
from app_package.events.ogc_client import ProcessesClient
from app_package.events.streams import StreamPublisher
from app_package.events.watch.search import Search
from app_package.events.watch.state import StateStore
from app_package.jobs.records import TERMINAL_VALUES
from app_package.util.checks import require_positive
from app_package.util.retry import Backoff
from app_package.util.timestamps import now_rfc3339

logger = logging.getLogger(__name__)

KEY_VERSION = "app-package-watch/1"


def item_key(process_id: str, collection: str | None, item_id: str) -> str:
    """The deterministic idempotency key of one item for one process."""
    text = f"{KEY_VERSION}\n{process_id}\n{collection or ''}\n{item_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def self_href(item: dict[str, Any]) -> str | None:
    """The item's `self` link (where the processing endpoint can read it), if any."""
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


@dataclass(frozen=True)
class Target:
    """Where and what to submit: the endpoint, the process, the model and any other inputs."""

    endpoint: str = "http://localhost:5000"
    process: str = "tile-classification"
    model: str = CHAMPION_URI
    product_input: str = "product"
    model_input: str = "model"
    inputs: dict[str, Any] = field(default_factory=dict)

    def execute_inputs(self, product_href: str) -> dict[str, Any]:
        return {**self.inputs, self.model_input: self.model, self.product_input: product_href}


@dataclass(frozen=True)
class Limits:
    """Rate, concurrency and retry bounds."""

    poll_interval_s: float = 60.0
    max_in_flight: int = 4
    max_per_minute: float = 30.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        require_positive(
            self,
            "poll_interval_s",
            "max_in_flight",
            "max_per_minute",
            "backoff_base_s",
            "backoff_max_s",
            "request_timeout_s",
        )

    def backoff(self, failures: int) -> float:
        """Exponential backoff with ±10 % jitter, capped."""
        return Backoff(self.backoff_base_s, self.backoff_max_s).delay(failures)


@dataclass
class CycleReport:
    """What one cycle did (for logs, `--once` exit codes and tests)."""

    found: int = 0
    new: int = 0
    published: int = 0
    submitted: int = 0
    finished: int = 0
    deferred: int = 0  # left pending by a retryable failure
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class Watcher:
    """Polls a STAC API and/or takes pushed items; submits each new item once."""

    def __init__(
        self,
        state: Path,
        target: Target,
        search: Search | None = None,
        limits: Limits | None = None,
        client: ProcessesClient | None = None,
        publisher: StreamPublisher | None = None,
        submit: bool = True,
    ) -> None:
        if not submit and publisher is None:
            raise InputError(
                "not submitting needs a publisher (an event bus's Redis URL): the items would "
                "go nowhere",
                field="redis_url",
            )
        self.store = StateStore(state)
        self.target = target
        self.publisher = publisher
        self.submit = submit
        self._bus_failures = 0
        self._bus_paused_until = 0.0
        self.search = search
        self.limits = limits or Limits()
        self.client = client or ProcessesClient(
            target.endpoint, timeout=self.limits.request_timeout_s
        )
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._endpoint_failures = 0
        self._endpoint_paused_until = 0.0
        self._poll_failures = 0
        self.next_poll = 0.0  # when the next search is due (time.time())
        self._next_submit = 0.0
        self._at_limit = False

    def close(self) -> None:
        self.client.close()
        if self.publisher is not None:
            self.publisher.close()
        self.store.close()

    def stop(self) -> None:
        """Ask the loop to finish its current request and return (SIGTERM handler)."""
        self.stop_event.set()
        self.wake.set()

    # ------------------------------------------------------------ intake
    def accept(self, item: dict[str, Any], source: str) -> tuple[str, dict[str, Any]]:
        """Take one STAC item (polled or pushed). Returns (outcome, its state row or reason).

        outcome: "new" (recorded pending), "known" (seen before) or "ignored" (does not match
        the search criteria, or has no self link to hand to the endpoint).
        """
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            return "ignored", {"reason": "the item has no string 'id'"}
        if source == "webhook" and self.search is not None:
            reason = self.search.matches(item)
            if reason:
                return "ignored", {"id": item_id, "reason": reason}
        collection = item.get("collection")
        key = item_key(self.target.process, collection, item_id)
        known = self.store.get(key)
        if known:
            return "known", known
        href = self_href(item)
        if not href:
            return "ignored", {
                "id": item_id,
                "reason": "the item has no 'self' link: the endpoint needs a URL to read it from",
            }
        event = None
        if self.publisher is not None:
            event = to_json(item_created(item, href, self.publisher.source, now_rfc3339()))
        if self.store.claim(key, item_id, collection, href, source, event):
            logger.info("new item %s (collection %s, %s): pending", item_id, collection, source)
            self.wake.set()
            return "new", self.store.get(key) or {}
        return "known", self.store.get(key) or {}

    def poll(self, report: CycleReport) -> None:
        """One STAC API search; every item not seen before is recorded pending."""
        assert self.search is not None and self.search.stac_url
        for item in self._search_items():
            report.found += 1
            outcome, info = self.accept(item, "poll")
            if outcome == "new":
                report.new += 1
            elif outcome == "ignored":
                logger.warning("item %s ignored: %s", info.get("id"), info.get("reason"))

    def _search_items(self) -> list[dict[str, Any]]:
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        s = self.search
        assert s is not None and s.stac_url
        try:
            client = Client.open(s.stac_url, timeout=self.limits.request_timeout_s)
            kw: dict[str, Any] = {"max_items": s.max_items}
            if s.collections:
                kw["collections"] = list(s.collections)
            if s.bbox:
                kw["bbox"] = list(s.bbox)
            if s.datetime:
                kw["datetime"] = s.datetime
            expr = s.cql2()
            if expr:
                kw["filter"] = expr
                kw["filter_lang"] = "cql2-json"
            return list(client.search(**kw).items_as_dicts())
        except APIError as e:
            code = getattr(e, "status_code", None)
            if code is not None and 400 <= code < 500 and code not in (408, 429):
                raise InputError(
                    f"the STAC API {s.stac_url} refused the search (HTTP {code}): {e}; check "
                    "the search's collections, bbox, datetime and filter"
                ) from e
            raise ServiceError(f"STAC API {s.stac_url} unavailable: {e}", retryable=True) from e
        except InputError:
            raise
        except Exception as e:  # connection errors surface as many types through pystac-client
            raise ServiceError(
                f"STAC API {s.stac_url} unavailable: {type(e).__name__}: {e}", retryable=True
            ) from e

    # ------------------------------------------------------------ events
    def publish_due(self, report: CycleReport, once: bool = False) -> None:
        """Publish the events of new items (each once); back off while Redis is down."""
        if self.publisher is None or (not once and time.time() < self._bus_paused_until):
            return
        for row in self.store.unpublished():
            if self.stop_event.is_set():
                return
            try:
                entry = self.publisher.publish(row["event"])
            except ServiceError as e:
                self._bus_failures += 1
                delay = self.limits.backoff(self._bus_failures)
                self._bus_paused_until = time.time() + delay
                report.deferred += 1
                report.errors.append(str(e))
                logger.warning("publishing paused for %.1f s: %s", delay, e)
                return
            self._bus_failures = 0
            self.store.mark_published(
                row["key"], entry or "repeat", None if self.submit else "published"
            )
            report.published += 1
            logger.info(
                "item %s published to %s (%s)",
                row["item_id"],
                self.publisher.stream,
                entry or "already on the stream",
            )

    # ------------------------------------------------------------ jobs
    def refresh(self, report: CycleReport) -> None:
        """Follow submitted jobs until they finish (frees concurrency slots)."""
        for row in self.store.rows("submitted"):
            if self.stop_event.is_set():
                return
            try:
                doc = self.client.status(row["job_url"])
            except ServiceError as e:
                if e.retryable:
                    logger.warning("status of job %s unknown for now: %s", row["job_id"], e)
                    return
                self.store.finish(row["key"], "failed", f"job lost: {e}")
                report.finished += 1
                logger.error("item %s: job %s lost: %s", row["item_id"], row["job_id"], e)
                continue
            if doc["status"] in TERMINAL_VALUES:
                message = doc.get("message") or None
                error = None if doc["status"] == JobStatus.successful.value else message
                self.store.finish(row["key"], doc["status"], error)
                report.finished += 1
                log = logger.info if doc["status"] == JobStatus.successful.value else logger.error
                log(
                    "item %s: job %s %s (%s)",
                    row["item_id"],
                    row["job_id"],
                    doc["status"],
                    message or "",
                )

    def submit_due(self, report: CycleReport, once: bool = False) -> None:
        """Submit pending items, within the concurrency and rate limits."""
        now = time.time()
        if not once and now < self._endpoint_paused_until:
            return
        in_flight = len(self.store.rows("submitted"))
        for row in self.store.due(now, ignore_backoff=once):
            if self.stop_event.is_set():
                return
            if in_flight >= self.limits.max_in_flight:
                if not self._at_limit:  # say it once, not every round
                    logger.info(
                        "%d job(s) in flight (limit %d): later items wait",
                        in_flight,
                        self.limits.max_in_flight,
                    )
                self._at_limit = True
                return
            self._at_limit = False
            wait = self._next_submit - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                return
            self._next_submit = time.monotonic() + 60.0 / self.limits.max_per_minute
            attempt = self.store.lease(row["key"], time.time(), 2 * self.limits.request_timeout_s)
            if attempt is None:
                continue  # another watcher took it
            if self._submit(row, attempt, report):
                in_flight += 1
            elif report.deferred:
                return  # the endpoint is down: stop hammering it, back off

    def _submit(self, row: dict[str, Any], attempt: int, report: CycleReport) -> bool:
        key = row["key"]
        inputs = self.target.execute_inputs(row["href"])
        try:
            ref = self.client.execute_async(self.target.process, inputs, idempotency_key=key)
        except ServiceError as e:
            if e.retryable:
                self._endpoint_failures += 1
                delay = self.limits.backoff(self._endpoint_failures)
                self._endpoint_paused_until = time.time() + delay
                self.store.retry_later(key, str(e), time.time() + delay)
                report.deferred += 1
                report.errors.append(str(e))
                logger.warning(
                    "item %s: attempt %d failed, retry in %.1f s: %s",
                    row["item_id"],
                    attempt,
                    delay,
                    e,
                )
                return False
            self.store.finish(key, "rejected", str(e))
            report.rejected += 1
            report.errors.append(str(e))
            logger.error("item %s rejected by the endpoint: %s", row["item_id"], e)
            return False
        self._endpoint_failures = 0
        self.store.submitted(key, ref.job_id, ref.url, ref.status)
        report.submitted += 1
        logger.info(
            "item %s submitted: job %s (%s, attempt %d)",
            row["item_id"],
            ref.job_id,
            ref.url,
            attempt,
        )
        return True

    # ------------------------------------------------------------ loops
    def cycle(self, once: bool = False) -> CycleReport:
        """One round: poll the STAC API (when due), follow jobs, submit what is pending."""
        report = CycleReport()
        if self.search is not None and self.search.stac_url and time.time() >= self.next_poll:
            try:
                self.poll(report)
            except ServiceError as e:
                self._poll_failures += 1
                delay = min(self.limits.backoff(self._poll_failures), self.limits.poll_interval_s)
                self.next_poll = time.time() + delay
                report.errors.append(str(e))
                logger.warning("STAC search failed, next try in %.1f s: %s", delay, e)
            else:
                self._poll_failures = 0
                self.next_poll = time.time() + self.limits.poll_interval_s
                if report.new:
                    logger.info("search found %d item(s), %d new", report.found, report.new)
        self.publish_due(report, once=once)
        if self.submit:
            self.refresh(report)
            self.submit_due(report, once=once)
        return report

    def run_once(self) -> int:
        """`--once`: one cycle; 0 when nothing failed, EX_TEMPFAIL when items wait for retry."""
        report = self.cycle(once=True)
        counts = self.store.counts()
        logger.info(
            "once: %d found, %d new, %d published, %d submitted, %d deferred, %d rejected; "
            "state %s",
            report.found,
            report.new,
            report.published,
            report.submitted,
            report.deferred,
            report.rejected,
            counts,
        )
        return EX_TEMPFAIL if report.deferred or report.errors else 0

    def run(self) -> None:
        """Loop until `stop()` (SIGTERM): poll, follow jobs, submit; sleep between rounds."""
        logger.info(
            "watching %s -> %s/processes/%s (state %s)",
            self.search.stac_url if self.search else "(webhook only)",
            self.target.endpoint,
            self.target.process,
            self.store.path,
        )
        while not self.stop_event.is_set():
            self.wake.clear()
            try:
                self.cycle()
            except ServiceError as e:  # never let one bad round end the watcher
                logger.warning("round failed: %s", e)
            busy = self.store.rows("submitted") or self.store.unpublished()
            sleep = 1.0 if busy or (self.submit and self.store.due(time.time())) else 5.0
            if self.search is not None and self.search.stac_url:
                sleep = min(sleep, max(0.05, self.next_poll - time.time()))
            self.wake.wait(sleep)
        logger.info("stopped; state %s", self.store.counts())
