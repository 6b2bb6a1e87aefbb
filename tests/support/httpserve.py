"""Loopback HTTP servers for tests.

A file server (`http.server` plus single byte ranges, for resume tests) that records each request's
path and Range header and the bytes it sent, so tests can check that a download really resumed;
and `Receiver`, which records the callbacks (OGC `subscriber` URIs) POSTed to it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class ServerLog:
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    bytes_sent: int = 0


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from `directory`, honouring `Range: bytes=N-` / `bytes=N-M`."""

    log: ServerLog

    def __init__(self, *args: Any, log: ServerLog, **kwargs: Any) -> None:
        self.log = log
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.log.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        if not path.is_file() or not rng:
            super().do_GET()
            if path.is_file():
                self.log.bytes_sent += path.stat().st_size
            return
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
        size = path.stat().st_size
        if not m or int(m.group(1)) >= size:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.log.bytes_sent += len(data)


@contextmanager
def serve_directory(root: Path) -> Iterator[tuple[str, ServerLog]]:
    """Serve `root` on 127.0.0.1 (free port) in a thread; yields (base URL with '/', log)."""
    log = ServerLog()
    handler = partial(RangeHandler, directory=os.fspath(root), log=log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Receiver:
    """A loopback HTTP server recording the callbacks POSTed to it."""

    def __init__(self) -> None:
        import http.server

        received = self.received = []  # type: list[tuple[str, dict[str, Any]]]

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int, timeout: float = 30) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
