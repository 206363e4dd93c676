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

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sdlib.demo._base import (
    _BODY_KINDS,
    _HASH_KINDS,
    FAULT_KINDS,
    Fault,
    RequestRecord,
    _body_sha256,
    _HTTPServer,
    parse_fault,
)
from sdlib.demo._civitai_api import parse_date
from sdlib.demo._handler import _Handler
from sdlib.demo.catalogue import (
    CATALOGUE,
    CATALOGUE_NOW,
    ModelSpec,
    ServedFile,
    VersionSpec,
    build_files,
    large_model,
)

__all__ = ["FAULT_KINDS", "DemoServer", "Fault", "RequestRecord", "parse_fault"]


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
