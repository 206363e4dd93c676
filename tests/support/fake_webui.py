"""A stand-in for a running webUI's API on 127.0.0.1 (A1111 / Forge / SD.Next refresh calls).

It records every request (method, path, Authorization header) and answers as the real
routes do: 200 with ``null`` for ``/sdapi/v1/refresh-*`` and ``/controlnet/model_list``,
404 for anything else. ``login=(user, password)`` makes the ``/sdapi/`` routes demand HTTP
Basic as ``--api-auth`` does (401 otherwise; ``refresh-loras`` is added by the Lora
extension outside ``--api-auth``, so it stays open). ``status`` forces one answer for every
request; ``delay`` holds each answer that many seconds (a generation holding the queue).

``closed_port_url()`` is an address where nothing listens: a webUI that is not running.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.quiet_server import QuietServer

__all__ = ["FakeWebui", "Seen", "closed_port_url"]

_ROUTES = (
    "/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-vae", "/sdapi/v1/refresh-embeddings",
    "/sdapi/v1/refresh-loras", "/sdapi/v1/refresh-unets", "/controlnet/model_list",
)  # fmt: skip


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str | None


class FakeWebui:
    def __init__(
        self, *, login: tuple[str, str] | None = None, status: int | None = None,
        delay: float = 0.0,
    ) -> None:  # fmt: skip
        self.login = login
        self.status = status
        self.delay = delay
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"webui": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def calls(self) -> list[str]:
        """``"POST /sdapi/v1/refresh-loras"``... in the order they came."""
        return [f"{s.method} {s.path}" for s in self.seen]

    def basic(self) -> str:
        """The Authorization header ``login`` calls for (computed here, not by sdlib)."""
        assert self.login is not None
        raw = f"{self.login[0]}:{self.login[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __enter__(self) -> FakeWebui:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, path: str, authorization: str | None) -> int:
        with self._lock:
            self._seen.append(Seen(method, path, authorization))
        if self.delay:
            time.sleep(self.delay)
        if self.status is not None:
            return self.status
        route = path.split("?")[0]
        if route not in _ROUTES:
            return 404
        wanted = "GET" if route.startswith("/controlnet/") else "POST"
        if method != wanted:
            return 405
        needs_login = route.startswith("/sdapi/") and not route.endswith("refresh-loras")
        if self.login is not None and needs_login and authorization != self.basic():
            return 401
        return 200


class _Handler(BaseHTTPRequestHandler):
    webui: FakeWebui

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._reply()

    def _reply(self) -> None:
        status = self.webui._answer(self.command, self.path, self.headers.get("Authorization"))
        body = b"null" if status == 200 else b'{"detail":"x"}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (a timeout test)
            pass


def closed_port_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (the port was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
