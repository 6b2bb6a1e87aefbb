"""`app-package watch --listen HOST:PORT`: an HTTP endpoint that takes STAC items to classify.

POST a STAC item, or a CloudEvent carrying one (the CloudEvents SDK's HTTP binding: structured
mode, a JSON envelope with `specversion` and `data`; binary mode, `ce-*` headers and the item
as the body) — what an Argo Events webhook event source or a STAC notification service would
send. The item goes through the watcher's own intake (`Watcher.accept`): same filters, same
exactly-once state, same submission loop. Answers: 202 (new, pending submission), 200 (known:
its state; or ignored: why), 400 (not an item), 401 (bad token), 411 (no length), 413 (too
large). `GET /healthz` gives state counts. A Starlette app under uvicorn, in a thread.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app_package.errors import InputError, ServiceError
from app_package.events.cloudevents import from_http, json_data
from app_package.events.watch.watcher import Watcher

logger = logging.getLogger(__name__)

MAX_BODY = 1_000_000
STARTUP_TIMEOUT_S = 10.0
CLOUDEVENTS_JSON = "application/cloudevents+json"


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', meaning 127.0.0.1) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(
            f"listen address {value!r} must be HOST:PORT, e.g. 127.0.0.1:8080", field="listen"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def item_from_request(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The STAC item in a request: a bare item, or the data of a CloudEvent (either mode)."""
    lower = {k.lower(): v for k, v in headers.items()}
    binary = any(k.startswith("ce-") for k in lower)
    structured = lower.get("content-type", "").startswith(CLOUDEVENTS_JSON)
    doc: Any = None
    if not binary:
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            raise InputError(f"the request body is not JSON: {e}") from e
        structured = structured or (isinstance(doc, dict) and "specversion" in doc)
    if binary or structured:
        doc = json_data(from_http(lower, body))
    if not isinstance(doc, dict) or doc.get("type") != "Feature" or "stac_version" not in doc:
        raise InputError(
            "expected a STAC item (a GeoJSON Feature with 'stac_version') or a CloudEvent whose "
            "'data' is one"
        )
    return doc


class WebhookServer:
    """The webhook app served by uvicorn in a background thread, feeding a `Watcher`."""

    def __init__(self, watcher: Watcher, host: str, port: int, token: str | None = None) -> None:
        import uvicorn

        self.watcher = watcher
        self.token = token
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))  # now: a bad or busy address fails before any work
        self.app = Starlette(
            routes=[
                Route("/healthz", self._health, methods=["GET"]),
                Route("/", self._health, methods=["GET"]),
                Route("/{path:path}", self._post, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="webhook",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:  # answering before start() returns
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceError(f"the webhook on {self.url} did not start", retryable=False)
            time.sleep(0.01)
        logger.info("webhook listening on %s", self.url)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one POST: (HTTP status, JSON document)."""
        if self.token:
            given = headers.get("authorization") or headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return 401, {"error": "missing or wrong 'Authorization: Bearer <token>'"}
        try:
            item = item_from_request(headers, body)
        except InputError as e:
            return 400, {"error": str(e)}
        outcome, info = self.watcher.accept(item, "webhook")
        doc = {"outcome": outcome, "id": item.get("id")}
        if outcome == "ignored":
            logger.warning("webhook item %s ignored: %s", item.get("id"), info.get("reason"))
            return 200, {**doc, "reason": info.get("reason")}
        doc.update(
            key=info.get("key"),
            state=info.get("state"),
            job=info.get("job_url"),
            error=info.get("error"),
        )
        return (202 if outcome == "new" else 200), doc

    async def _health(self, request: Request) -> JSONResponse:
        counts = await run_in_threadpool(self.watcher.store.counts)
        return JSONResponse({"status": "ok", "items": counts})

    async def _post(self, request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return JSONResponse({"error": "Content-Length required"}, 411)
        if int(length) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} B"}, 413)
        body = await request.body()
        try:
            status, doc = await run_in_threadpool(self.handle, dict(request.headers), body)
        except Exception as e:  # answer 500 rather than drop the connection
            logger.exception("webhook request failed")
            status, doc = 500, {"error": f"{type(e).__name__}: {e}"}
        return JSONResponse(doc, status)
