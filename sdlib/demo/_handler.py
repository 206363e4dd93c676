"""The demo server's request handler: dispatch to the admin, API and storage routes, faults,
and file bodies with Range support (stdlib ``http.server``)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sdlib.demo._base import (
    _BROWSER_RE,
    FAULT_KINDS,
    Fault,
    RequestRecord,
    _HTTPServer,
    _num,
    _parse_range,
)
from sdlib.demo._civitai_api import PUBLIC_CACHE, CivitaiApi, Reply
from sdlib.demo.catalogue import (
    ServedFile,
    preview_png,
)

if TYPE_CHECKING:
    from sdlib.demo.server import DemoServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "sdlib-demo"
    sys_version = ""

    # quiet by default; the demo CLI passes a logger
    def log_message(self, format: str, *args: Any) -> None:
        logger = self.server.demo.log_requests
        if logger is not None:
            text = format % args
            logger(re.sub(r"(token=)[^&\s]+", r"\1***", f"[{self.server.role}] {text}"))

    @property
    def demo(self) -> DemoServer:
        return self.server.demo

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._send(200, b"", {"Access-Control-Allow-Origin": "*"}, ctype="text/plain")

    def _dispatch(self) -> None:
        demo = self.demo
        demo._record(RequestRecord(self.server.role, self.command, self.path, dict(self.headers)))
        parts = urlsplit(self.path)
        path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        try:
            if path.startswith("/__admin/") and self.server.role == "api":
                self._admin(path)
                return
            fault = demo._take_fault(path)
            if fault is not None:
                self._status_fault(fault)
                return
            if self.server.role == "storage":
                self._storage(path)
            else:
                self._api(path)
        except Reply as reply:
            self._send_json(reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- plumbing -----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        ctype: str = "application/json; charset=utf-8",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json_body(self, limit: int = 1 << 20) -> Any:
        """The request's JSON body (bounded), or a 400 like Civitai's."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= limit:
            self.close_connection = True
            raise Reply(400, {"error": "Invalid request body"})
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            raise Reply(400, {"error": "Invalid JSON body"}) from None

    def _send_json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        if isinstance(data, str):  # a plain-text error (browser User-Agents)
            self._send(status, data.encode(), headers, ctype="text/plain; charset=utf-8")
            return
        self._send(status, json.dumps(data).encode(), headers)

    @property
    def origin(self) -> str:
        host = self.headers.get("Host") or f"{self.demo.host}:{self.server.server_address[1]}"
        return f"http://{host}"

    def _browser(self) -> bool:
        return bool(_BROWSER_RE.search(self.headers.get("User-Agent", "")))

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        if auth:
            parts = auth.split(" ")
            return parts[1] if len(parts) > 1 else None
        values = self.query.get("token")
        return values[0] if values else None

    def _logged_in(self) -> bool:
        token = self._token()
        return token is not None and token in self.demo.tokens

    def _q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def _status_fault(self, fault: Fault) -> None:
        kind = fault.kind
        if kind == "html":
            page = (
                b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
                b"<body><h1>Please wait while we check your browser</h1></body></html>"
            )
            self._send(fault.status or 200, page, ctype="text/html; charset=UTF-8")
            return
        headers: dict[str, str] = {}
        if kind == "401":
            body: Any = {
                "error": "Unauthorized",
                "message": "The creator of this asset requires you to be logged in to download it",
            }
        elif kind == "403":
            body = {"error": "Forbidden", "message": "You do not have access to download this file"}
        elif kind == "403-early":
            body = {
                "error": "Early Access",
                "deadline": fault.deadline,
                "message": "This asset is in Early Access. You can use Buzz access it now!",
            }
        elif kind == "404":
            body = {"error": "Not found"}
        elif kind == "410":
            body = {"error": "Model archived, not available for download"}
        elif kind == "429":
            body = {
                "error": "We've noticed an unusual amount of downloading from your account. "
                "Contact support@civitai.com or come back later."
            }
            if fault.retry_after is not None:
                headers["Retry-After"] = _num(fault.retry_after)
        elif kind == "503":
            body = {"error": "Model search is temporarily overloaded — please retry."}
            headers["Cache-Control"] = "no-store"
            if fault.retry_after is not None:
                headers["Retry-After"] = _num(fault.retry_after)
            elif fault.send_retry_after:
                headers["Retry-After"] = "2"
        else:  # 500
            body = {"message": "An unexpected error occurred", "error": "injected fault"}
        self._send_json(fault.status or int(kind[:3]), body, headers)

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, path: str) -> None:
        demo = self.demo
        action = path[len("/__admin/") :].strip("/")
        params = {k: v[0] for k, v in self.query.items()}
        if action == "fault":
            kind = params.pop("kind", "")
            try:
                fault = demo.add_fault(kind, **params)
            except (ValueError, TypeError) as exc:
                raise Reply(400, {"error": str(exc)}) from None
            self._send_json(200, asdict(fault))
        elif action == "faults":
            self._send_json(200, [asdict(f) for f in demo.faults])
        elif action == "reset":
            demo.reset()
            self._send_json(200, {"ok": True})
        elif action == "log":
            self._send_json(
                200,
                [
                    {
                        "server": r.server,
                        "method": r.method,
                        "path": r.path,
                        "authorization": r.authorization,
                        "user_agent": r.header("User-Agent"),
                        "range": r.header("Range"),
                    }
                    for r in demo.requests
                ],
            )
        elif action == "rate":
            value = int(params.get("bytes_per_second", "0") or 0)
            demo.rate_limit = value or None
            self._send_json(200, {"rate_limit": demo.rate_limit})
        elif action == "ttl":
            demo.url_ttl = float(params.get("seconds", "3600"))
            self._send_json(200, {"url_ttl": demo.url_ttl})
        elif action == "versions":
            order = params.get("order", "newest")
            if order not in ("newest", "creator"):
                raise Reply(400, {"error": "order is newest or creator"})
            demo.version_order = order
            self._send_json(200, {"version_order": order})
        else:
            raise Reply(
                404,
                {
                    "error": f"unknown admin action {action!r}",
                    "actions": ["fault", "faults", "reset", "log", "rate", "ttl", "versions"],
                    "faults": FAULT_KINDS,
                },
            )

    # -- API host -----------------------------------------------------------------------------

    def _api(self, path: str) -> None:
        bulk = path.rstrip("/") == "/api/v1/model-versions/by-hash"
        if self.command not in ("GET", "HEAD") and not (bulk and self.command == "POST"):
            raise Reply(405, {"error": "Method not allowed"})
        segs = [s for s in path.split("/") if s]
        api = CivitaiApi(self)
        if segs[:2] == ["api", "v1"]:
            rest = segs[2:]
            cache = {"Cache-Control": PUBLIC_CACHE, "Access-Control-Allow-Origin": "*"}
            if rest == ["models"]:
                self._send_json(200, api.models(), cache)
            elif len(rest) == 2 and rest[0] == "models":
                self._send_json(200, api.model(rest[1]), cache)
            elif rest == ["model-versions", "by-hash"] and self.command == "POST":
                self._send_json(200, api.by_hash_bulk(self._json_body()))
            elif len(rest) == 3 and rest[:2] == ["model-versions", "by-hash"]:
                cache["Cache-Control"] = "public, s-maxage=3600, stale-while-revalidate=1800"
                self._send_json(200, api.by_hash(rest[2]), cache)
            elif len(rest) == 2 and rest[0] == "model-versions":
                self._send_json(200, api.version(rest[1]), cache)
            elif rest == ["images"]:
                self._send_json(200, api.images(), cache)
            elif rest == ["enums"]:
                self._send_json(200, api.enums())
            elif rest == ["me"]:
                if not self._logged_in():
                    raise Reply(401, {"error": "Unauthorized"})
                self._send_json(
                    200, {"id": 1, "username": "demo", "tier": None, "status": "active"}
                )
            else:
                raise Reply(404, {"error": "Not found"})
        elif segs[:3] == ["api", "download", "models"] and len(segs) == 4:
            api.download(segs[3])
        elif segs[:1] == ["login"]:
            page = b"<!DOCTYPE html><html><body><h1>Sign in to Civitai</h1></body></html>"
            self._send(200, page, ctype="text/html; charset=utf-8")
        elif segs[:1] in (["models"], ["model-versions"]):
            page = b"<!DOCTYPE html><html><body><h1>Civitai (demo)</h1></body></html>"
            self._send(200, page, ctype="text/html; charset=utf-8")
        else:
            raise Reply(404, {"error": "Not found"})

    # -- storage host -------------------------------------------------------------------------

    def _storage(self, path: str) -> None:
        segs = [s for s in path.split("/") if s]
        if segs[:1] == ["images"] and len(segs) == 2 and segs[1].endswith(".png"):
            image_id = int(segs[1][:-4]) if segs[1][:-4].isdigit() else 0
            png = preview_png(image_id, 512, 768)
            self._send(200, png, {"Cache-Control": "public, max-age=31536000"}, ctype="image/png")
            return
        if segs[:1] != ["files"] or len(segs) != 3 or not segs[1].isdigit():
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", ctype="application/xml")
            return
        served = self.demo.files.get(int(segs[1]))
        reason = None
        if served is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", ctype="application/xml")
            return
        reason = self.demo.check_signature(
            served.spec.id, self._q("expires") or "", self._q("signature") or ""
        )
        if reason is None and self.demo._take_fault(path, ["expired"]):
            reason = "request has expired"
        if reason is not None:
            body = f"<Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>"
            self._send(403, body.encode(), ctype="application/xml")
            return
        self._send_file(served, path)

    def _send_file(self, served: ServedFile, path: str) -> None:
        demo = self.demo
        size = served.size
        etag = f'"{served.hashes.get("SHA256", str(served.spec.id))[:32].lower()}"'
        last_modified = formatdate(1_690_000_000, usegmt=True)
        disposition = self._q("response-content-disposition") or (
            f'attachment; filename="{served.spec.name}"'
        )
        headers = {
            "ETag": etag,
            "Last-Modified": last_modified,
            "Accept-Ranges": "bytes",
            "Content-Disposition": disposition,
            "Cache-Control": "private, max-age=86400",
        }
        start, end = 0, size  # [start, end)
        status = 200
        range_header = self.headers.get("Range")
        if range_header and demo._take_fault(path, ["range-ignored"]) is None:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range.strip() in (etag, last_modified):
                parsed = _parse_range(range_header, size)
                if parsed == "unsatisfiable":
                    headers["Content-Range"] = f"bytes */{size}"
                    self._send(416, b"", headers, ctype="application/octet-stream")
                    return
                if isinstance(parsed, tuple):
                    start, end = parsed
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        wrong = demo._take_fault(path, ["wrong-length"])
        pad = 0
        if wrong is not None:
            if wrong.delta < 0:
                end = max(start, end + wrong.delta)
            else:
                pad = wrong.delta
        length = end - start + pad
        cut = demo._take_fault(path, ["drop", "stall"])
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length if cut is None else min(length, cut.after_bytes)
        self._stream(served, start, limit)
        if cut is not None:
            self.wfile.flush()
            if cut.kind == "stall":
                demo._stopping.wait(cut.seconds)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _stream(self, served: ServedFile, start: int, count: int) -> None:
        """Write ``count`` bytes of the file from ``start`` (zeros past its end), throttled."""
        demo = self.demo
        # 1 MiB writes: the server shares the cores with the client in download benchmarks,
        # and 64 KiB steps cost it ~0.5 s of Python per GiB. A rate cap paces in 10 ms steps,
        # as smooth as a real server's shaping is to a client measuring over a fifth of a
        # second (50 ms bursts put its counts off by up to a quarter).
        chunk_size = 1 << 20
        sent = 0
        began = time.monotonic()
        with served.open() as fh:
            fh.seek(start)
            while sent < count:
                rate = demo.rate_limit
                n = min(chunk_size, count - sent)
                if rate:
                    n = min(n, max(1024, rate // 100))
                data = fh.read(n) or b""
                if len(data) < n:
                    data += bytes(n - len(data))  # wrong-length padding past the end
                self.wfile.write(data)
                sent += n
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0 and demo._stopping.wait(ahead):
                        return
