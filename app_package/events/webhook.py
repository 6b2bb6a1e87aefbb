"""`app-package watch --listen HOST:PORT`: an HTTP endpoint that takes STAC items to classify.

POST a STAC item, or a CloudEvent carrying one (structured mode: a JSON envelope with
`specversion` and `data`; binary mode: `ce-*` headers and the item as the body) — what an Argo
Events webhook event source or a STAC notification service would send. The item goes through
the watcher's own intake (`Watcher.accept`): same filters, same exactly-once state, same
submission loop. Answers: 202 (new, pending submission), 200 (known: its state; or ignored:
why), 400 (not an item), 401 (bad token), 413 (too large). `GET /healthz` gives state counts.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app_package.errors import InputError
from app_package.events.watch.watcher import Watcher

logger = logging.getLogger(__name__)

MAX_BODY = 1_000_000


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', meaning 127.0.0.1) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(
            f"listen address {value!r} must be HOST:PORT, e.g. 127.0.0.1:8080", field="listen"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def item_from_request(headers: Any, body: bytes) -> dict[str, Any]:
    """The STAC item in a request body: a bare item or a CloudEvent (structured or binary)."""
    try:
        doc = json.loads(body or b"null")
    except ValueError as e:
        raise InputError(f"the request body is not JSON: {e}") from e
    if isinstance(doc, dict) and "specversion" in doc and headers.get("ce-specversion") is None:
        if "data_base64" in doc:
            try:
                doc = json.loads(base64.b64decode(doc["data_base64"]))
            except ValueError as e:
                raise InputError(f"CloudEvent data_base64 is not a JSON item: {e}") from e
        else:
            doc = doc.get("data")
            if isinstance(doc, str):
                try:
                    doc = json.loads(doc)
                except ValueError as e:
                    raise InputError(f"CloudEvent data is not a JSON item: {e}") from e
    if not isinstance(doc, dict) or doc.get("type") != "Feature" or "stac_version" not in doc:
        raise InputError(
            "expected a STAC item (a GeoJSON Feature with 'stac_version') or a CloudEvent whose "
            "'data' is one"
        )
    return doc


class WebhookServer:
    """A threaded HTTP server feeding items into a `Watcher`."""

    def __init__(self, watcher: Watcher, host: str, port: int, token: str | None = None) -> None:
        self.watcher = watcher
        self.token = token
        handler = type("Handler", (_Handler,), {"hook": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="webhook", daemon=True
        )
        self._thread.start()
        logger.info("webhook listening on %s", self.url)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one POST: (HTTP status, JSON document)."""
        if self.token:
            given = headers.get("Authorization") or ""
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
            key=info.get("key"), state=info.get("state"), job=info.get("job_url"),
            error=info.get("error"),
        )  # fmt: skip
        return (202 if outcome == "new" else 200), doc


class _Handler(BaseHTTPRequestHandler):
    hook: WebhookServer
    server_version = "app-package-webhook"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("webhook: " + format, *args)

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/healthz", ""):
            self._send(200, {"status": "ok", "items": self.hook.watcher.store.counts()})
        else:
            self._send(404, {"error": f"no resource {self.path}; POST items to any path"})

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(411, {"error": "Content-Length required"})
            return
        if int(length) > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} B"})
            return
        body = self.rfile.read(int(length))
        try:
            status, doc = self.hook.handle(self.headers, body)
        except Exception as e:  # answer 500 rather than drop the connection
            logger.exception("webhook request failed")
            status, doc = 500, {"error": f"{type(e).__name__}: {e}"}
        self._send(status, doc)
