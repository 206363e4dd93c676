"""A Civitai-compatible server for tests and offline demos (stdlib ``http.server`` only).

Two real HTTP servers on 127.0.0.1, each threaded:

* the **API host** serves ``/api/v1/models``, ``/models/{id}``, ``/model-versions/{id}``,
  ``/model-versions/by-hash/{hash}`` (and the bulk ``POST /model-versions/by-hash``),
  ``/images``, ``/enums``, ``/me`` and the download
  endpoint ``/api/download/models/{versionId}``, with Civitai's response shapes and quirks
  (reference civitai-api.md): cursor paging with short and empty pages, repeated ``types``
  and ``baseModels``, ``page`` ignored (and 429 past 1000 rows), SFW-only unless
  ``nsfw=true``, ZodError bodies, plain-text errors and login redirects for browser
  User-Agents, login-required and early-access versions, an archived model;
* the **storage host** (a different port, so a different origin) serves the files behind
  signed, expiring URLs the download endpoint redirects to with 307, with
  ``Content-Disposition``, ``ETag``, ``Range``/``If-Range`` (206, 416), and preview images;
* the **Hugging Face Hub host** and its **CDN host** (``server.hub``, ``hub_url``): the Hub's
  API, ``/resolve`` and gated, renamed and missing repos (``sdlib.demo._hub_api``).
* the **CivArchive host** (``server.civarchive``, ``civarchive_url``): its lookups by SHA256
  and version id and the mirrors they list (``sdlib.demo._civarchive_api``).

Faults are switchable from the object (``server.add_fault("429", times=2)``) or over HTTP
(``GET /__admin/fault?kind=429&times=2`` on the API host) so that a CLI in a subprocess, or
a hand-started ``sdlib demo-server``, can be steered. See ``FAULT_KINDS``. A per-connection
rate cap (``server.rate_limit``, bytes/s) and a request log (``server.requests``, which
records whether ``Authorization`` was present) support download tests and benchmarks.

    with DemoServer(tmp_path) as server:
        os.environ["SDLIB_CIVITAI_URL"] = server.url
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from sdlib.demo._civitai_api import PUBLIC_CACHE, CivitaiApi, Reply, parse_date
from sdlib.demo.catalogue import (
    CATALOGUE,
    CATALOGUE_NOW,
    ModelSpec,
    ServedFile,
    VersionSpec,
    build_files,
    large_model,
    preview_png,
)

__all__ = ["FAULT_KINDS", "DemoServer", "Fault", "RequestRecord", "parse_fault"]

#: Fault kinds. Status kinds answer with that error instead of the real response; body kinds
#: change how a file body is sent (storage host by default).
FAULT_KINDS: dict[str, str] = {
    "401": "401 login required (download endpoint JSON)",
    "403": "403 no access",
    "403-early": "403 Early Access with a deadline",
    "404": "404 not found",
    "410": "410 archived",
    "429": "429 rate limited (retry_after=SECONDS to send Retry-After)",
    "500": "500 unexpected error",
    "503": "503 busy (Retry-After: 2 unless retry_after= is given; retry_after=none omits it)",
    "html": "an HTML page instead of JSON (status=200 by default)",
    "drop": "close the connection after after_bytes bytes of the body",
    "stall": "stop sending after after_bytes bytes for seconds= seconds, then close",
    "wrong-length": "send the file delta= bytes shorter (negative) or longer, consistently",
    "range-ignored": "answer 200 with the whole file to a Range request",
    "expired": "treat signed storage URLs as expired (403)",
    # What the API publishes as a file's hashes (file_id= for one file, else every file; on
    # until cleared). Civitai's records hold such values; the bytes served stay the same.
    "hash-autov3-full": "publish AutoV3 in full (64 characters), as older Civitai records do",
    "hash-crc32-wrong": "publish a CRC32 that does not match the bytes",
    "hash-no-sha256": "publish no SHA256",
    "hash-no-blake3": "publish no BLAKE3",
    "hash-sha256-wrong": "publish a SHA256 that does not match the bytes",
}
_BODY_KINDS = frozenset({"drop", "stall", "wrong-length", "range-ignored", "expired"})
_HASH_KINDS = frozenset(k for k in FAULT_KINDS if k.startswith("hash-"))

_BROWSER_RE = re.compile(r"mozilla|chrome|safari|firefox|opera|edge", re.IGNORECASE)


@dataclass
class Fault:
    """One switched-on fault. ``times=None`` keeps it on until cleared."""

    kind: str
    match: str
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    send_retry_after: bool = True
    after_bytes: int = 0
    seconds: float = 30.0
    delta: int = -1024
    deadline: str = "2030-01-01T00:00:00.000Z"
    hits: int = 0
    #: hash-* kinds: the one file whose published hashes change (None: every file).
    file_id: int | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A request as a server saw it (``server``: "api", "storage", "hub" or "hub-cdn")."""

    server: str
    method: str
    path: str
    headers: Mapping[str, str]
    time: float = field(default_factory=time.time)

    @property
    def authorization(self) -> bool:
        return any(k.lower() == "authorization" for k in self.headers)

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def parse_fault(spec: str) -> dict[str, Any]:
    """``"429:times=2,retry_after=1,match=/api/v1/models"`` -> keyword arguments for add_fault."""
    kind, _, rest = spec.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"fault option {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    demo: DemoServer
    role: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a cancelled download, a test's timeout) is
        normal for a download server: no traceback. Anything else is still reported."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class DemoServer:
    """The API host and storage host, serving ``catalogue`` from files under ``files_dir``."""

    def __init__(
        self,
        files_dir: str | Path,
        *,
        catalogue: Sequence[ModelSpec] = CATALOGUE,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        large_size: int | None = None,
        now: str = CATALOGUE_NOW,
        url_ttl: float = 3600.0,
        tokens: Iterable[str] = ("demo-token", "demo-early-access"),
        early_access_tokens: Iterable[str] = ("demo-early-access",),
        log_requests: Callable[[str], None] | None = None,
        hub_port: int = 0,
    ) -> None:
        self.catalogue: tuple[ModelSpec, ...] = tuple(catalogue) + (
            (large_model(),) if large_size else ()
        )
        self.files: dict[int, ServedFile] = build_files(files_dir, catalogue, large_size=large_size)
        self.host = host
        self.now = parse_date(now)
        self.url_ttl = url_ttl
        self.tokens = set(tokens)
        self.early_access_tokens = set(early_access_tokens)
        #: Bytes per second per connection for file bodies; None or 0 for no cap.
        self.rate_limit: int | None = None
        #: How the API lists a model's versions: "newest" first, or "creator" (the creator
        #: pinned the oldest version to the top, as Civitai's ``index`` order allows).
        self.version_order = "newest"
        self.log_requests = log_requests
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []
        self._stopping = threading.Event()
        self._servers = [self._make(port, "api"), self._make(storage_port, "storage")]
        self._threads: list[threading.Thread] = []
        self._models = {m.id: m for m in self.catalogue}
        from sdlib.demo._hub_demo import HubDemo  # here: it imports this module

        self.hub = HubDemo(self, Path(files_dir) / "hub", host=host, port=hub_port)
        self._servers += self.hub.servers
        from sdlib.demo._civarchive_api import CivArchiveDemo  # here: it imports this module

        self.civarchive = CivArchiveDemo(self, Path(files_dir) / "civarchive", host=host)
        self._servers += self.civarchive.servers
        self._versions = {v.id: (m, v) for m in self.catalogue for v in m.versions}

    def _make(self, port: int, role: str) -> _HTTPServer:
        server = _HTTPServer((self.host, port), _Handler)
        server.demo = self
        server.role = role
        return server

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API origin: what ``SDLIB_CIVITAI_URL`` should be."""
        return f"http://{self.host}:{self._servers[0].server_address[1]}"

    @property
    def hub_url(self) -> str:
        """The Hugging Face Hub's origin: what ``HF_ENDPOINT`` should be."""
        return self.hub.url

    @property
    def civarchive_url(self) -> str:
        """CivArchive's API origin (``sdlib.demo._civarchive_api``): SDLIB_CIVARCHIVE_URL."""
        return self.civarchive.url

    @property
    def storage_url(self) -> str:
        return f"http://{self.host}:{self._servers[1].server_address[1]}"

    def start(self) -> DemoServer:
        for srv in self._servers:
            thread = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"sdlib-demo-{srv.role}",
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for srv in self._servers:
            if self._threads:  # shutdown() waits for serve_forever, which must have run
                srv.shutdown()
            srv.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Run until interrupted (for ``sdlib demo-server``)."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults, log, knobs -------------------------------------------------------------------

    def add_fault(
        self, kind: str, *, match: str | None = None, times: int | str | None = None, **params: Any
    ) -> Fault:
        """Switch on a fault for requests whose path starts with ``match``.

        Defaults: status kinds match ``/api/``, body kinds ``/files/``. ``times`` limits how
        many requests it hits. Extra parameters: ``retry_after`` (429/503; ``"none"`` for no
        header), ``status`` (html), ``after_bytes`` (drop, stall), ``seconds`` (stall),
        ``delta`` (wrong-length), ``deadline`` (403-early).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of: {', '.join(FAULT_KINDS)}")
        fault = Fault(kind=kind, match=match or ("/files/" if kind in _BODY_KINDS else "/api/"))
        fault.times = None if times in (None, "", "none") else int(times)
        for key, value in params.items():
            if key == "retry_after":
                if value in (None, "none", ""):
                    fault.send_retry_after = value is None and kind == "503"
                    fault.retry_after = None
                else:
                    fault.retry_after = float(value)
            elif key in ("status", "after_bytes", "delta", "file_id"):
                setattr(fault, key, int(value))
            elif key == "seconds":
                fault.seconds = float(value)
            elif key == "deadline":
                fault.deadline = str(value)
            else:
                raise ValueError(f"unknown fault parameter {key!r}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Clear faults, the request log and the rate cap (between tests)."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
        self.rate_limit = None
        self.version_order = "newest"
        self.hub.reset()
        self.civarchive.reset()

    def _take_fault(self, path: str, kinds: Iterable[str] | None = None) -> Fault | None:
        wanted = set(kinds) if kinds is not None else None
        with self._lock:
            for fault in self._faults:
                if wanted is not None and fault.kind not in wanted:
                    continue
                if wanted is None and (fault.kind in _BODY_KINDS or fault.kind in _HASH_KINDS):
                    continue
                if not path.startswith(fault.match):
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def published_hashes(self, file_id: int) -> dict[str, str]:
        """The hashes the API publishes for a file: its true ones, changed by any hash-*
        faults that are on (these are not used up by requests)."""
        served = self.files[file_id]
        out = dict(served.hashes)
        with self._lock:
            kinds = {f.kind for f in self._faults
                     if f.kind in _HASH_KINDS and f.file_id in (None, file_id)}  # fmt: skip
        if "hash-autov3-full" in kinds and "AutoV3" in out:
            out["AutoV3"] = _body_sha256(served)
        if "hash-crc32-wrong" in kinds:
            out["CRC32"] = f"{int(out['CRC32'], 16) ^ 0x5A5A5A5A:08X}"
        if "hash-sha256-wrong" in kinds:
            out["SHA256"] = hashlib.sha256(out["SHA256"].encode()).hexdigest().upper()
        if "hash-no-sha256" in kinds:
            out.pop("SHA256", None)
        if "hash-no-blake3" in kinds:
            out.pop("BLAKE3", None)
        return out

    # -- signed storage URLs ------------------------------------------------------------------

    def signed_url(self, served: ServedFile, ttl: float | None = None) -> str:
        expires = int(time.time() + (self.url_ttl if ttl is None else ttl))
        name = served.spec.name
        disposition = f'attachment; filename="{name}"'
        query = urlencode(
            {
                "expires": expires,
                "signature": self._sign(served.spec.id, expires),
                "response-content-disposition": disposition,
            }
        )
        return f"{self.storage_url}/files/{served.spec.id}/{quote(name)}?{query}"

    def _sign(self, file_id: int, expires: int) -> str:
        msg = f"{file_id}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def check_signature(self, file_id: int, expires: str, signature: str) -> str | None:
        """None if valid, else the reason."""
        if not expires.isdigit():
            return "missing expiry"
        if not hmac.compare_digest(self._sign(file_id, int(expires)), signature):
            return "signature does not match"
        if int(expires) < time.time():
            return "request has expired"
        return None

    # -- catalogue lookups --------------------------------------------------------------------

    def model(self, model_id: int) -> ModelSpec | None:
        return self._models.get(model_id)

    def version(self, version_id: int) -> tuple[ModelSpec, VersionSpec] | None:
        return self._versions.get(version_id)

    def listed_versions(self, model: ModelSpec) -> tuple[VersionSpec, ...]:
        """``model``'s versions in the order the API lists them (see ``version_order``)."""
        versions = model.versions
        if self.version_order == "creator" and len(versions) > 1:
            return (versions[-1], *versions[:-1])  # the oldest pinned to the top
        return versions


# --- request handling ------------------------------------------------------------------------


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
        chunk_size = 64 << 10
        sent = 0
        began = time.monotonic()
        with served.open() as fh:
            fh.seek(start)
            while sent < count:
                rate = demo.rate_limit
                n = min(chunk_size, count - sent)
                if rate:
                    n = min(n, max(1024, rate // 20))
                data = fh.read(n) or b""
                if len(data) < n:
                    data += bytes(n - len(data))  # wrong-length padding past the end
                self.wfile.write(data)
                sent += n
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0 and demo._stopping.wait(ahead):
                        return


def _body_sha256(served: ServedFile) -> str:
    """SHA256 of a safetensors file after its header: AutoV3 in full (hashlib, not sdlib)."""
    digest = hashlib.sha256()
    with served.open() as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest().upper()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) half-open; "unsatisfiable"; or None to ignore (multi-range, junk)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end
