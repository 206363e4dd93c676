"""A small HTTP server on 127.0.0.1 that answers whatever a test scripts: hostile answers.

Where ``DemoServer`` behaves like Civitai, this one misbehaves on purpose: JSON nested
100,000 deep, 5,000-digit numbers, 200 MB bodies streamed without end, gzip bombs, redirect
loops, CDN challenge pages, endless empty pages with fresh cursors. Each route is a path
(query ignored) and an ``Answer`` or a function of the query returning one::

    with HostileServer() as server:
        server.route("/api/v1/models/1", Answer.json_text("[" * 100_000))
        server.route("/api/v1/models", lambda q: Answer.json({"items": [], ...}))

Bodies can be bytes or an iterable of chunks (sent with ``Content-Length`` when given,
else chunked), so a test can offer gigabytes without holding them. ``sent`` counts the
body bytes the server managed to write per path, ``requests`` the paths asked for.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.quiet_server import QuietServer

__all__ = ["Answer", "HostileServer", "endless", "gzip_bomb"]

Query = Mapping[str, list[str]]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Sent as Content-Length for an iterable body (None: chunked).
    length: int | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Answer:
        return cls.json_text(json.dumps(data), status, **headers)

    @classmethod
    def json_text(cls, text: str, status: int = 200, **headers: str) -> Answer:
        return cls(status, text.encode(), {"Content-Type": "application/json", **headers})

    @classmethod
    def html(cls, text: str, status: int = 200, **headers: str) -> Answer:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=UTF-8", **headers})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Answer:
        return cls(status, b"", {"Location": location})


def endless(chunk: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes made of ``chunk`` repeated (never held at once)."""
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        yield piece
        sent += len(piece)


def gzip_bomb(size: int, level: int = 1) -> bytes:
    """One gzip member inflating to ``size`` zero bytes (about size/200 bytes on the wire)."""
    packer = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    parts.append(packer.compress(bytes(size & ((1 << 20) - 1))))
    parts.append(packer.flush())
    return b"".join(parts)


Route = Answer | Callable[[Query], Answer]


class _Server(QuietServer):
    owner: HostileServer


class HostileServer:
    """Scripted answers on ``url`` (see the module docstring). Unknown paths get 404 JSON."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.owner = self
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.sent: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, path: str, answer: Route) -> None:
        with self._lock:
            self._routes[path] = answer

    def answer_for(self, path: str, query: Query) -> Answer:
        with self._lock:
            self.requests.append(path)
            route = self._routes.get(path)
        if route is None:
            return Answer.json({"error": "Not found"}, 404)
        return route(query) if callable(route) else route

    def count(self, path: str) -> int:
        with self._lock:
            return sum(p == path for p in self.requests)

    def add_sent(self, path: str, n: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + n

    def __enter__(self) -> HostileServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        owner = self.server.owner
        answer = owner.answer_for(parts.path, parse_qs(parts.query, keep_blank_values=True))
        body = answer.body
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        chunked = False
        if isinstance(body, bytes):
            self.send_header("Content-Length", str(len(body)))
        elif answer.length is not None:
            self.send_header("Content-Length", str(answer.length))
        else:
            self.send_header("Transfer-Encoding", "chunked")
            chunked = True
        self.end_headers()
        try:
            for chunk in [body] if isinstance(body, bytes) else body:
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
                owner.add_sent(parts.path, len(chunk))
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
