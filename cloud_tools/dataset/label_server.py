"""``label DIR``: a labelling page for captured frames, served on a loopback address only.

The page (``label_page.html``) shows the frames in a grid with the model's top-3; a person
accepts the model's answer or corrects it, by click or key, and can undo. Every change
rewrites ``DIR/labels.jsonl`` whole (``captures.write_labels``), so the file on disk is always
the page's state. The API is small JSON over HTTP:

    GET  /api/state            the classes, every frame (top-k, label), progress, undo
    GET  /frame/<n>            frame n's bytes
    POST /api/label            {"key": "<frame key>", "label": "<class>"}
    POST /api/undo             takes back the last change

Loopback only: the page writes files and shows camera frames, so it is not offered to the
network; a POST must also come from the page's own origin (a page elsewhere in the same
browser cannot label through it).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloud_tools.dataset.captures import Capture, captures, label_record, read_labels, write_labels
from cloud_tools.errors import USAGE, CliError

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("label_page.html")
_MAX_BODY = 4_096
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"
)


class LabelSession:
    """The labelling state of one folder; every method holds the lock (the server threads)."""

    def __init__(self, folder: Path, classes: list[str] | None = None) -> None:
        self.folder = folder
        self.captures: list[Capture] = captures(folder)
        self._by_key = {c.key: c for c in self.captures}
        self.labels = read_labels(folder)
        # Without a model's list, the classes any top-k or earlier label named.
        seen = {label for c in self.captures for label, _ in c.top_k}
        seen |= {str(r["label"]) for r in self.labels.values()}
        self.classes = classes or sorted(seen)
        self._history: list[tuple[str, dict[str, Any] | None]] = []
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        with self._lock:
            items = [
                {
                    "key": c.key,
                    "image": f"/frame/{n}",
                    "top_k": [[label, round(p, 4)] for label, p in c.top_k[:3]],
                    "policy": c.policy,
                    "label": (self.labels.get(c.key) or {}).get("label"),
                }
                for n, c in enumerate(self.captures)
            ]
            labelled = sum(1 for c in self.captures if c.key in self.labels)
            return {
                "classes": self.classes,
                "items": items,
                "labelled": labelled,
                "total": len(self.captures),
                "can_undo": bool(self._history),
            }

    def set_label(self, key: str, label: str) -> None:
        with self._lock:
            capture = self._by_key.get(key)
            if capture is None:
                raise KeyError(f"no frame {key!r}")
            if label not in self.classes:
                raise ValueError(f"{label!r} is not one of the classes")
            self._history.append((key, self.labels.get(key)))
            self.labels[key] = label_record(capture, label, "human")
            write_labels(self.folder, self.labels)

    def undo(self) -> None:
        with self._lock:
            if not self._history:
                return
            key, previous = self._history.pop()
            if previous is None:
                self.labels.pop(key, None)
            else:
                self.labels[key] = previous
            write_labels(self.folder, self.labels)

    def frame(self, index: int) -> tuple[bytes, str]:
        """The frame's bytes and an image type read from the bytes themselves: a sidecar is
        device-written data, never trusted to name what the browser renders."""
        body = self.captures[index].frame_path.read_bytes()
        return body, _image_type(body)


class LabelServer:
    """``__init__`` only assigns; ``start`` binds and serves in a thread; ``stop`` ends it."""

    def __init__(self, session: LabelSession, host: str = "127.0.0.1", port: int = 0) -> None:
        _require_loopback(host)
        self.session = session
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> str:
        hosts: set[str] = set()  # filled once the port is known, before the first request
        handler = type("Handler", (_Handler,), {"session": self.session, "hosts": hosts})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        hosts.update(
            f"{name}:{self.port}" for name in (self.host, "127.0.0.1", "localhost", "[::1]")
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_labelling(folder: Path, host: str, port: int, classes: list[str] | None) -> int:
    session = LabelSession(folder, classes)
    if not session.captures:
        raise CliError(f"no captures in {folder}: pull some first (dataset pull)", USAGE)
    server = LabelServer(session, host, port)
    try:
        url = server.start()
    except OSError as e:
        raise CliError(f"cannot listen on {host}:{port}: {e}", USAGE) from e
    print(f"labelling {len(session.captures)} frame(s) at {url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    state = session.state()
    print(f"{state['labelled']} of {state['total']} labelled in {folder / 'labels.jsonl'}")
    return 0


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise CliError(f"--host {host}: the labelling page is served on loopback only", USAGE)


class _Handler(BaseHTTPRequestHandler):
    session: LabelSession
    hosts: set[str]  # Host headers this server answers: its loopback names and port

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("label page: " + format, *args)

    def do_GET(self) -> None:
        if not self._own_host():
            self._json(HTTPStatus.FORBIDDEN, {"error": "the labelling page answers on loopback"})
            return
        if self.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/api/state":
            self._json(HTTPStatus.OK, self.session.state())
        elif self.path.startswith("/frame/") and self.path[7:].isdigit():
            index = int(self.path[7:])
            if index >= len(self.session.captures):
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such frame"})
                return
            body, content_type = self.session.frame(index)
            self._send(HTTPStatus.OK, body, content_type)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._own_host() or not self._same_origin():
            self._json(HTTPStatus.FORBIDDEN, {"error": "only the labelling page may change labels"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                raise ValueError("request too large")
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/api/label":
                self.session.set_label(str(body["key"]), str(body["label"]))
            elif self.path == "/api/undo":
                self.session.undo()
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
        except (ValueError, KeyError, TypeError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        self._json(HTTPStatus.OK, self.session.state())

    def _own_host(self) -> bool:
        """Only the loopback names of this server: a page whose DNS name was rebound to
        127.0.0.1 sends its own Host and is refused."""
        return self.headers.get("Host") in self.hosts

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        return origin is None or origin == f"http://{host}"

    def _json(self, status: HTTPStatus, doc: dict[str, Any]) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The page's own script and style are inline; nothing else runs anywhere.
        page = content_type.startswith("text/html")
        policy = _PAGE_POLICY if page else "default-src 'none'"
        self.send_header("Content-Security-Policy", policy)
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.end_headers()
        self.wfile.write(body)


def _image_type(body: bytes) -> str:
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"BM"):
        return "image/bmp"
    return "application/octet-stream"
