"""The demo server's CivArchive host: its JSON lookups and the mirrors it lists.

``CivArchiveDemo`` belongs to a ``DemoServer`` (``server.civarchive``, ``civarchive_url``):
one more HTTP server on 127.0.0.1 (its own origin, so a Civitai token never reaches it)
speaking the routes public clients use (reference civarchive.md):

* ``GET /api/sha256/{hash}``: the model with its nested ``version`` and ``files[]``, or,
  for the archived Protogen, only ``files[]`` (the 2025 quirk that needs a second call);
* ``GET /api/models/{id}?modelVersionId={vid}``: the model with that ``version`` and
  ``versions[]`` (any model id works with a version id, as on CivArchive);
* ``GET /mirror/{file_id}/{name}``: a mirror's bytes (Range supported).

Records: the demo Civitai's archived Protogen x3.4 (``3666@4048``, answered 410 by the
download endpoint) with a live mirror of its real bytes; a LoRA taken down from Civitai
that only CivArchive knows (``ARCHIVE_ONLY``: ``7701@7702``, Civitai answers 404 for it
and its hash); and ``TAMPERED`` (``7711@7712``), whose live mirror serves other bytes
than the SHA256 the record publishes. Every mirror list starts with one already removed
(``deletedAt`` set). ``fault`` switches the host to ``"slow"`` (answers after
``fault_seconds``), ``"down"`` (drops the connection) or ``"500"``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from sdlib.demo._base import RequestRecord, _HTTPServer
from sdlib.demo._civitai_api import Reply
from sdlib.demo._handler import _Handler
from sdlib.demo.catalogue import FileSpec, ModelSpec, ServedFile, VersionSpec, build_files

if TYPE_CHECKING:
    from sdlib.demo.server import DemoServer

__all__ = ["ARCHIVED_ON_CIVITAI", "ARCHIVE_ONLY", "TAMPERED", "CivArchiveDemo"]

#: A LoRA taken down from Civitai: the demo Civitai knows neither it nor its hash.
ARCHIVE_ONLY = ModelSpec(
    id=7701, name="Vanished Ink Style", type="LORA", creator="gone_artist",
    tags=("style", "ink"), description="<p>An ink-wash style LoRA, taken down in 2024.</p>",
    versions=(
        VersionSpec(
            id=7702, name="v1.0", base_model="SD 1.5", published_at="2023-09-01T00:00:00.000Z",
            trained_words=("inkwash style",),
            files=(FileSpec(7702_1, "vanishedInk_v10.safetensors", "sd1-lora", type="Model",
                            primary=True, metadata={"ss_output_name": "vanishedInk_v10"}),),
        ),
    ),
)  # fmt: skip
#: A record whose live mirror serves bytes other than the SHA256 it publishes.
TAMPERED = ModelSpec(
    id=7711, name="Tampered Mirror LoRA", type="LORA", creator="gone_artist",
    versions=(
        VersionSpec(
            id=7712, name="v1", base_model="SD 1.5", published_at="2023-10-01T00:00:00.000Z",
            files=(FileSpec(7712_1, "tamperedMirror_v1.safetensors", "sd1-lora", primary=True,
                            metadata={"ss_output_name": "tamperedMirror_v1"}),),
        ),
    ),
)  # fmt: skip
#: The demo Civitai's archived model (410 at its download endpoint).
ARCHIVED_ON_CIVITAI = 3666
_FAULTS = ("slow", "down", "500")


class CivArchiveDemo:
    def __init__(
        self, demo: DemoServer, files_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.demo = demo
        self.host = host
        self._files_dir = Path(files_dir)
        self._files: dict[int, ServedFile] | None = None
        self._lock = threading.Lock()
        #: None, or one of "slow", "down", "500" (until reset).
        self.fault: str | None = None
        self.fault_seconds = 3.0
        server = _HTTPServer((host, port), _CivArchiveHandler)
        server.demo = demo
        server.role = "civarchive"
        self.servers = [server]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.servers[0].server_address[1]}"

    def reset(self) -> None:
        self.fault = None
        self.fault_seconds = 3.0

    def set_fault(self, kind: str | None, seconds: float | None = None) -> None:
        if kind is not None and kind not in _FAULTS:
            raise ValueError(f"unknown civarchive fault {kind!r}; one of: {', '.join(_FAULTS)}")
        self.fault = kind
        if seconds is not None:
            self.fault_seconds = seconds

    # -- what it archives ---------------------------------------------------------------------

    @property
    def files(self) -> dict[int, ServedFile]:
        """The archive-only files (written on first use) and the demo Civitai's own."""
        with self._lock:
            if self._files is None:
                own = build_files(self._files_dir, (ARCHIVE_ONLY, TAMPERED))
                self._files = {**self.demo.files, **own}
            return self._files

    def _entries(self) -> list[tuple[ModelSpec, VersionSpec]]:
        archived = self.demo.model(ARCHIVED_ON_CIVITAI)
        models = [ARCHIVE_ONLY, TAMPERED] + ([archived] if archived is not None else [])
        return [(m, v) for m in models for v in m.versions]

    def published_sha256(self, spec: FileSpec) -> str:
        return self.files[spec.id].hashes["SHA256"].lower()

    def served_for(self, spec: FileSpec) -> ServedFile:
        """What the mirror sends: the tampered record's mirror sends another file's bytes."""
        if spec.id == TAMPERED.versions[0].files[0].id:
            return self.files[ARCHIVE_ONLY.versions[0].files[0].id]
        return self.files[spec.id]

    def by_sha256(self, value: str) -> tuple[ModelSpec, VersionSpec] | None:
        for model, version in self._entries():
            if any(self.published_sha256(f) == value.lower() for f in version.files):
                return model, version
        return None

    def by_model(self, raw_id: str) -> tuple[ModelSpec, VersionSpec] | None:
        return next(((m, v) for m, v in self._entries() if str(m.id) == raw_id), None)

    def by_version(self, version_id: int) -> tuple[ModelSpec, VersionSpec] | None:
        return next(((m, v) for m, v in self._entries() if v.id == version_id), None)

    # -- records ------------------------------------------------------------------------------

    def file_json(self, origin: str, model: ModelSpec, version: VersionSpec,
                  spec: FileSpec) -> dict[str, Any]:  # fmt: skip
        served = self.files[spec.id]
        mirror = f"{origin}/mirror/{spec.id}/{quote(spec.name)}"
        return {
            "id": spec.id, "name": spec.name, "sha256": self.published_sha256(spec),
            "sizeKB": served.size / 1024, "type": spec.type, "primary": spec.primary,
            "modelId": model.id, "modelVersionId": version.id,
            "mirrors": [
                {"url": f"{origin}/mirror/gone/{quote(spec.name)}", "filename": spec.name,
                 "source": "civitai", "deletedAt": "2024-03-01T00:00:00.000Z"},
                {"url": mirror, "filename": spec.name, "source": "archive", "deletedAt": None},
            ],
        }  # fmt: skip

    def version_json(self, origin: str, model: ModelSpec, version: VersionSpec) -> dict[str, Any]:
        return {
            "id": version.id, "modelId": model.id, "name": version.name,
            "baseModel": version.base_model, "createdAt": version.published_at,
            "trigger": list(version.trained_words), "description": version.description,
            "files": [self.file_json(origin, model, version, f) for f in version.files],
        }  # fmt: skip

    def model_json(self, origin: str, model: ModelSpec, version: VersionSpec) -> dict[str, Any]:
        return {
            "id": model.id, "name": model.name, "type": model.type, "nsfw": model.nsfw,
            "description": model.description, "creator": model.creator,
            "tags": list(model.tags), "downloadCount": model.downloads, "rating": 4.8,
            "deletedAt": "2024-05-01T00:00:00.000Z",
            "version": self.version_json(origin, model, version),
            "versions": [{"id": v.id, "name": v.name, "baseModel": v.base_model}
                         for v in model.versions],
        }  # fmt: skip


class _CivArchiveHandler(_Handler):
    """CivArchive's routes; the plumbing (``_send``, ``_send_file``) is the demo's own."""

    @property
    def archive(self) -> CivArchiveDemo:
        return self.demo.civarchive

    def _dispatch(self) -> None:
        demo = self.demo
        demo._record(RequestRecord(self.server.role, self.command, self.path, dict(self.headers)))
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        segs = [s for s in parts.path.split("/") if s]
        fault = self.archive.fault
        try:
            if fault == "down":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "slow" and demo._stopping.wait(self.archive.fault_seconds):
                return
            if fault == "500":
                raise Reply(500, {"error": "Internal server error"})
            if self.command not in ("GET", "HEAD"):
                raise Reply(405, {"error": "Method not allowed"})
            if segs[:1] == ["mirror"]:
                self._mirror(segs[1:])
            elif segs[:2] == ["api", "sha256"] and len(segs) == 3:
                found = self.archive.by_sha256(segs[2])
                if found is None:
                    raise Reply(404, {"error": "Not found"})
                model, version = found
                if model.id == ARCHIVED_ON_CIVITAI:  # the files-only shape
                    files = [self.archive.file_json(self.origin, model, version, f)
                             for f in version.files]  # fmt: skip
                    self._send_json(200, {"files": files})
                else:
                    self._send_json(200, {"model": self.archive.model_json(self.origin, *found)})
            elif segs[:2] == ["api", "models"] and len(segs) == 3:
                raw = self._q("modelVersionId") or ""
                if raw.isdigit():
                    found = self.archive.by_version(int(raw))
                else:  # the model alone: its newest version
                    found = self.archive.by_model(segs[2])
                if found is None:
                    raise Reply(404, {"error": "Not found"})
                self._send_json(200, self.archive.model_json(self.origin, *found))
            else:
                raise Reply(404, {"error": "Not found"})
        except Reply as reply:
            self._send_json(reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _mirror(self, segs: list[str]) -> None:
        spec = None
        if len(segs) == 2 and segs[0].isdigit():
            spec = next((f for _, v in self.archive._entries() for f in v.files
                         if f.id == int(segs[0])), None)  # fmt: skip
        if spec is None:
            self._send(404, b"not found", ctype="text/plain")
            return
        self._send_file(self.archive.served_for(spec), self.path)
