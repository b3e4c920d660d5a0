"""A loopback HTTP file server that misbehaves on request, for the model downloader's tests.

It is a real server (http.server in a thread, real sockets): the downloader's requests code
runs unchanged. Behaviours: honour ``Range`` or not, cut the body of the first N responses
short, answer the first N requests with a status, or answer a path with a fixed status.
Azure Storage itself (Azurite) is exercised by the integration tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    ranges: bool = True
    truncate_first: int = 0  # responses whose body stops after truncate_at bytes
    truncate_at: int = 0
    fail_first: int = 0  # requests answered with fail_status
    fail_status: int = 503
    status: dict[str, int] = field(default_factory=dict)  # path -> fixed status
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)


class FileServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.behaviour = Behaviour()
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}{path}"

    @contextmanager
    def running(self) -> Iterator[FileServer]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # A client that stops reading (a size cap, a cancel) resets the connection.
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    server._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        range_header = handler.headers.get("Range")
        with self._lock:
            b.requests.append((handler.path.split("?")[0], range_header))
            number = len(b.requests)
        path = handler.path.split("?")[0]
        if number <= b.fail_first:
            handler.send_error(b.fail_status)
            return
        if path in b.status:
            handler.send_error(b.status[path])
            return
        data = self.files.get(path)
        if data is None:
            handler.send_error(404)
            return
        start = 0
        if b.ranges and range_header and range_header.startswith("bytes="):
            start = int(range_header[len("bytes=") :].split("-")[0])
        body = data[start:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if b.ranges:
            handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if number <= b.fail_first + b.truncate_first:
            handler.wfile.write(body[: b.truncate_at])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)
