"""A loopback HTTP file server for tests: `http.server` plus single byte ranges (for resume tests).

It records each request's path and Range header, and the bytes it sent, so tests can check that
a download really resumed.
"""

from __future__ import annotations

import os
import re
import threading
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
