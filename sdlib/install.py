"""Resolve -> pick a file -> download -> verify -> inspect -> place -> sidecars.

The one path every front end (CLI ``download``, ``install``, the TUI) takes to put a model
from a source into a user's folder. A source turns the reference into a
:class:`~sdlib.sources.protocol.RemoteFile`; nothing below ``resolve`` asks which source
it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sdlib.download import DownloadEvent, DownloadOptions, DownloadResult, DownloadSpec, download
from sdlib.errors import HashMismatch, SdlibError, SourceError, UnsafeFileError, UsageError
from sdlib.hashcache import HashCache
from sdlib.library.placement import Destination, choose_name, same_family
from sdlib.library.sidecars import (
    a1111_user_metadata,
    image_extension,
    stability_matrix_info,
    write_json,
    write_model_sidecars,
)
from sdlib.sources.protocol import ANY_FILE, FileChoice, RemoteFile
from sdlib.taxonomy import Base, Kind

if TYPE_CHECKING:
    import httpx2

    from sdlib._mirrorfirst import MirrorFirst
    from sdlib.files.verification import Verification
    from sdlib.hashing import FileHashes
    from sdlib.mirror import Mirror
    from sdlib.sources.civitai import CivitaiClient
    from sdlib.sources.hf import HubClient

__all__ = ["FileChoice", "InstallResult", "Installer", "RemoteFile", "run_all"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class InstallResult:
    ref: str
    model_id: int | None
    version_id: int | None
    file_id: int | None
    path: Path
    size: int
    sha256: str
    kind: str
    base: str
    verified: bool
    #: downloaded | already-present
    status: str
    picked: str
    warnings: tuple[str, ...] = ()
    sidecars: tuple[str, ...] = ()
    #: What the published size and hashes said (``sdlib.files.verification``); None when nothing
    #: was downloaded (an identical file was already present).
    verification: Verification | None = None
    #: Where it came from (``civitai``, ``hf``), and the exact revision when the source has one.
    source: str = "civitai"
    revision: str | None = None
    #: The reference naming exactly this file's version, and the URL its bytes came from.
    pinned_ref: str | None = None
    url: str | None = None
    #: Where the bytes came from: "mirror" (the studio mirror), "upstream" (the source's
    #: host), "cache" (the Hugging Face cache); None when nothing was fetched.
    came_from: str | None = None
    #: The mirror's answer to publishing a file that came from upstream: "created",
    #: "exists" (another machine was first); None when not published.
    published: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "source": self.source, "revision": self.revision,
            "pinned_ref": self.pinned_ref, "from": self.came_from, "published": self.published,
            "model_id": self.model_id, "version_id": self.version_id,
            "file_id": self.file_id, "path": str(self.path), "size": self.size,
            "sha256": self.sha256, "kind": self.kind, "base": self.base,
            "verified": self.verified, "status": self.status, "picked": self.picked,
            "warnings": list(self.warnings), "sidecars": list(self.sidecars),
            "verification": self.verification.to_dict() if self.verification else None,
        }  # fmt: skip


@dataclass
class Installer:
    """Installs references of any source into a ``Destination``. Thread-safe."""

    civitai: CivitaiClient
    http: httpx2.Client
    destination: Destination
    options: DownloadOptions
    hashes: HashCache
    #: Download example images as previews, and whether NSFW ones may be used.
    previews: bool = True
    nsfw: bool = False
    on_event: Callable[[DownloadEvent], None] | None = None
    on_note: Callable[[str], None] = field(default=lambda _m: None)
    #: The Hugging Face Hub, for ``hf:`` references and Hub links (None: Civitai only).
    hub: HubClient | None = None
    #: The studio mirror, tried first for every file whose SHA256 is known (None: none),
    #: and the client for it (no source's token on it; default ``http``).
    mirror: Mirror | None = None
    mirror_http: httpx2.Client | None = None

    def __post_init__(self) -> None:
        self._mirror: MirrorFirst | None = None
        if self.mirror is not None:
            from sdlib._mirrorfirst import MirrorFirst

            self._mirror = MirrorFirst(self.mirror, self.mirror_http or self.http, self.options,
                                       self.on_event, self.on_note)  # fmt: skip

    def resolve(self, ref: str, choice: FileChoice = ANY_FILE) -> RemoteFile:
        """The exact file a reference and file choice name, with its facts.

        ``hf:...`` and Hub links go to the Hugging Face Hub (``choice`` does not apply: a
        Hub reference names one file); everything else to Civitai, where besides every
        form ``parse_ref`` takes, ``sha256:<hex>`` finds a file by its hash.
        """
        if self.hub is not None and self.hub.claims(ref):
            from sdlib.sources.hf import resolve_file as resolve_hub_file

            if choice != ANY_FILE:
                raise UsageError(
                    f"{ref}: file filters (type, format, size, fp, file id) apply to Civitai "
                    "references; a Hub reference names one file"
                )
            return resolve_hub_file(self.hub, ref)
        from sdlib.sources.civitai import resolve_file

        return resolve_file(self.civitai, ref, choice, on_note=self.on_note)

    def install(
        self,
        ref: str,
        choice: FileChoice = ANY_FILE,
        *,
        file_name: str | None = None,
        destination: Destination | None = None,
        expect_sha256: str | None = None,
        resolved: RemoteFile | None = None,
        at: Path | None = None,
        sort: bool | None = None,
    ) -> InstallResult:
        """Install one file. ``destination`` overrides the installer's (a manifest's
        ``folder``); ``expect_sha256`` refuses a file that changed upstream (``--frozen``).

        ``at`` downloads to exactly that path (an unfinished download's target: its part
        file is resumed). ``sort``: move the file to the folder its content belongs in
        (default: only when ``destination`` is the installer's own).
        """
        upstream_failed: SourceError | None = None
        try:
            target = resolved or self.resolve(ref, choice)
        except SourceError as exc:  # gone or unreachable upstream: the mirror may have it
            if self._mirror is None or not expect_sha256:
                raise
            target = self._mirror.target(ref, expect_sha256, exc)
            upstream_failed = exc
        if expect_sha256 and (target.sha256 or "").upper() != expect_sha256.upper():
            raise HashMismatch(
                f"{ref}: the file changed upstream (SHA256 {target.sha256 or 'unknown'}, the "
                f"lock says {expect_sha256}); run without --frozen to accept the new file",
                expected=expect_sha256, actual=target.sha256,
            )  # fmt: skip
        dest = destination or self.destination
        api_kind, api_base = target.kind, target.base
        picked = target.picked
        self.on_note(f"{ref}: picked {picked}")
        sha = target.sha256
        if at is not None:  # the same path again: its part file holds the first bytes
            name = choose_name(at.parent, at.name, tags=(), sha256=sha,
                               sha256_of=self._sha256_of)  # fmt: skip
        else:
            name = choose_name(
                dest.folder_for(api_kind, api_base), file_name or target.file_name,
                tags=target.tags, sha256=sha,
                sha256_of=self._sha256_of,
            )  # fmt: skip
        sort = destination is None if sort is None else sort
        if name.identical:
            hashes, _ = self.hashes.get(name.path)
            return self._result(ref, target, name.path, hashes.size, hashes.sha256,
                                api_kind, api_base, "already-present", picked, (), ())  # fmt: skip
        spec = DownloadSpec(
            url=target.url, dest=name.path, size=target.size, hashes=target.hashes,
            container=target.container, refresh=target.refresh,
            origin=_origin(ref, target, dest, sort),
        )  # fmt: skip
        sha = expect_sha256 or target.sha256
        try:
            return self._download_and_place(ref, target, spec, dest, sort, picked,
                                            expect_sha256, upstream_failed)  # fmt: skip
        finally:
            if self._mirror is not None and sha:
                self._mirror.release(sha)  # other machines waiting on this fetch go on

    def _download_and_place(
        self, ref: str, target: RemoteFile, spec: DownloadSpec, dest: Destination, sort: bool,
        picked: str, expect_sha256: str | None, upstream_failed: SourceError | None,
    ) -> InstallResult:  # fmt: skip
        api_kind, api_base = target.kind, target.base
        result, came_from = self._fetch(target, spec, expect_sha256, upstream_failed)
        self.hashes.store(result.path, result.hashes)
        verdict = result.verification
        path, kind, base, warnings = self._check_and_place(
            result.path, api_kind, api_base, dest if sort else None
        )
        if verdict is not None and (line := verdict.warning()) is not None:
            warnings = (line, *warnings)
        sidecars = self._sidecars(path, target, kind, base, verdict)
        if dest.layout is not None and dest.layout.name == "stabilitymatrix":
            sidecars += self._cm_info(path, target, result.hashes)
        published = None
        if self._mirror is not None and came_from == "upstream" and verdict is not None \
                and verdict.verified:  # fmt: skip
            self.hashes.store(path, result.hashes)  # the push re-reads nothing
            published = self._mirror.publish(path, result.hashes, target, kind, base)
        out = self._result(ref, target, path, result.size, result.hashes.sha256, kind, base,
                           "downloaded", picked, warnings, sidecars, verdict)  # fmt: skip
        return replace(out, came_from=came_from, published=published)

    # -- steps --------------------------------------------------------------------------------

    def _fetch(
        self, target: RemoteFile, spec: DownloadSpec, expect_sha256: str | None,
        upstream_failed: SourceError | None = None,
    ) -> tuple[DownloadResult, str]:  # fmt: skip
        """The bytes, and where they came from: the Hugging Face cache, the mirror (when
        the SHA256 is known), else upstream (``upstream_failed``: it cannot serve them)."""
        cached = self._from_local_cache(target, spec.dest)
        if cached is not None:
            return cached, "cache"
        sha = expect_sha256 or target.sha256
        if self._mirror is not None and sha:
            got = self._mirror.fetch(spec, sha)
            if got is not None:
                return got, "mirror"
            if upstream_failed is not None:  # and the mirror's copy failed too
                raise upstream_failed
        _import_in_background(_AFTER_DOWNLOAD)
        return download(self.http, spec, self._download_options(target), self.on_event), (
            "upstream"
        )

    def _from_local_cache(self, target: RemoteFile, path: Path) -> DownloadResult | None:
        """The bytes from ``target.cached_path`` (the Hugging Face cache): hard-linked when
        on the same volume, else copied, then hashed and verified like a download. None
        (and nothing left behind) when they are not there or not the published file."""
        import shutil

        from sdlib.files.verification import check
        from sdlib.hashing import hash_file

        blob = target.cached_path
        if blob is None or os.path.lexists(path):
            return None
        temp = path.with_name(path.name + ".sdlib-cache")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            try:
                os.link(blob, temp)  # no second copy of a multi-GB file
                how = "linked"
            except OSError:
                shutil.copyfile(blob, temp)
                how = "copied"
            hashes = hash_file(temp)
            verdict = check(hashes, target.hashes, target.size)
            if not verdict.verified:
                temp.unlink()
                self.on_note(f"{target.file_name}: the copy in the Hugging Face cache is not "
                             f"the published file ({verdict.problem()}); downloading")  # fmt: skip
                return None
            os.replace(temp, path)
        except (OSError, SdlibError) as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            self.on_note(f"{target.file_name}: could not use the Hugging Face cache ({exc}); "
                         "downloading")  # fmt: skip
            return None
        self.on_note(f"{target.file_name}: {how} from the Hugging Face cache ({blob}), "
                     "verified; nothing downloaded")  # fmt: skip
        return DownloadResult(path, hashes, 0, 0, verdict)

    def _download_options(self, target: RemoteFile) -> DownloadOptions:
        """The caller's options, with the source's error mapping for its download host
        (the engine knows no source)."""
        if target.raise_for_status is None:
            return self.options
        return replace(self.options, raise_for_status=target.raise_for_status)

    def _sha256_of(self, path: Path) -> str | None:
        try:
            return self.hashes.get(path)[0].sha256
        except SdlibError:
            return None

    def _check_and_place(
        self, path: Path, api_kind: Kind, api_base: Base, dest: Destination | None
    ) -> tuple[Path, Kind, Base, tuple[str, ...]]:
        """Classify the file; refuse unsafe pickles; move it where its content belongs.

        ``dest`` None: the caller chose the folder explicitly; the file stays there.
        """
        from sdlib.inspect import inspect_file
        from sdlib.library.placement import refuse_unsafe

        refuse_unsafe(path)  # the verdict first: nothing below can leave an unsafe file placed
        try:
            report = inspect_file(path)
        except SdlibError as exc:
            return path, api_kind, api_base, (f"could not inspect the file: {exc.message}",)
        except Exception as exc:  # a classifier bug: the file is judged safe, just unsorted
            why = (
                f"could not classify the file ({type(exc).__name__}); placed as its source lists it"
            )
            return path, api_kind, api_base, (why,)
        if report.safety is not None and str(report.safety.verdict) == "unsafe":
            with contextlib.suppress(OSError):
                path.unlink()
            raise UnsafeFileError(
                f"{path.name} is a pickle that would run code when loaded; it was deleted",
                path=str(path),
                findings=[f"{f.module}.{f.name}" for f in report.safety.findings],
            )
        cls = report.classification
        if cls is None or cls.kind is Kind.UNKNOWN:
            return path, api_kind, api_base, ()
        warnings: list[str] = []
        kind, base = api_kind, api_base
        if not same_family(cls.kind, api_kind):
            warnings.append(
                f"The source lists this as {api_kind.value}, but its content is a "
                f"{cls.kind.value}; placed as {cls.kind.value}"
            )
            kind = cls.kind
        if cls.base is not Base.UNKNOWN and cls.base is not api_base:
            if api_base is not Base.UNKNOWN:
                warnings.append(
                    f"The source says base {api_base.value}, the weights say {cls.base.value}; "
                    f"placed by the weights"
                )
            base = cls.base
        folder = dest.folder_for(kind, base) if dest is not None else path.parent
        if folder != path.parent:
            target = choose_name(folder, path.name, tags=(), sha256=None,
                                 sha256_of=self._sha256_of)  # fmt: skip
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, target.path)
            path = target.path
        return path, kind, base, tuple(warnings)

    def _sidecars(
        self, path: Path, target: RemoteFile, kind: Kind, base: Base,
        verdict: Verification | None = None,
    ) -> tuple[str, ...]:  # fmt: skip
        preview = self._preview(target) if self.previews else None
        notes = _notes(target)
        if verdict is not None and (line := verdict.warning()) is not None:
            notes += f"\nsdlib: {line}"  # the user sees it where the webUI shows notes
        meta = a1111_user_metadata(
            kind=kind.value, base=base, description=target.description,
            trained_words=target.trained_words, notes=notes,
        )  # fmt: skip
        # .civitai.info holds Civitai's own version record; other sources have their own.
        raw = target.record if target.source == "civitai" else None
        try:
            written = write_model_sidecars(
                path, version_json=raw, user_metadata=meta, preview=preview
            )
        except OSError as exc:
            self.on_note(f"{path.name}: could not write sidecars: {exc.strerror or exc}")
            return ()
        return tuple(str(p) for p in written)

    def _cm_info(self, path: Path, target: RemoteFile, hashes: FileHashes) -> tuple[str, ...]:
        """Stability Matrix's ``<stem>.cm-info.json``, which its model browser reads."""
        info = stability_matrix_info(
            version_json=target.record or {},
            model_name=target.model_name or target.title,
            model_description=target.description, model_type=target.model_type,
            nsfw=target.nsfw, tags=list(target.model_tags), author=target.author,
            file_name=target.file_name, file_id=target.file_id,
            file_metadata=dict(target.file_metadata),
            hashes={"SHA256": hashes.sha256, "CRC32": hashes.crc32, "BLAKE3": hashes.blake3},
            imported_at=datetime.now(timezone.utc).isoformat(), source_url=target.page_url,
        )  # fmt: skip
        target_path = path.with_name(path.stem + ".cm-info.json")
        try:
            written = write_json(target_path, info)
        except OSError as exc:
            self.on_note(f"{path.name}: could not write {target_path.name}: {exc.strerror or exc}")
            return ()
        return (str(target_path),) if written else ()

    def _preview(self, target: RemoteFile) -> bytes | None:
        """The first still image of the version that the NSFW setting allows."""
        for image in target.previews:
            if image.nsfw and not self.nsfw:
                continue
            data = self._fetch_image(image.url)
            if data and image_extension(data[:16]):
                return data
        return None

    def _fetch_image(self, url: str) -> bytes | None:
        from sdlib.sources.civitai import fetch_preview

        return fetch_preview(self.http, url)  # preview-sized, capped while streaming

    def _result(
        self, ref: str, target: RemoteFile, path: Path, size: int, sha256: str,
        kind: Kind, base: Base, status: str, picked: str, warnings: tuple[str, ...],
        sidecars: tuple[str, ...], verification: Verification | None = None,
    ) -> InstallResult:  # fmt: skip
        # Already present: its SHA256 equals the published one (that is how it was found).
        verified = verification.verified if verification is not None else True
        return InstallResult(
            ref=ref, model_id=target.model_id, version_id=target.version_id,
            file_id=target.file_id, path=path, size=size, sha256=sha256, kind=kind.value,
            base=base.value, verified=verified, status=status, picked=picked,
            warnings=warnings, sidecars=sidecars, verification=verification,
            source=target.source, revision=target.revision, pinned_ref=target.pinned_ref,
            url=target.url,
        )  # fmt: skip


#: What the steps after a download import (inspecting, the library index): ~0.3 s on a small
#: machine, imported on a thread while the download runs instead of after its last byte.
_AFTER_DOWNLOAD = ("sdlib.inspect", "sdlib.files.pickles", "sdlib.files.safetensors",
                   "sdlib.files.classify", "sdlib.library.installed", "html")  # fmt: skip
_imported = False


def _import_in_background(names: Sequence[str]) -> None:
    """A step needing one meanwhile waits for it (Python's import lock); a failure is left
    to the step's own import. Once per process: a batch's later downloads find them loaded."""
    global _imported
    if _imported:
        return
    _imported = True

    def run() -> None:
        for name in names:
            with contextlib.suppress(Exception):
                __import__(name)

    threading.Thread(target=run, daemon=True, name="sdlib-import").start()


def run_all(installer: Installer, func: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """``func`` over ``items`` on up to ``jobs`` threads, results in order.

    Ctrl-C sets the downloads' cancel event, so every running download stops at its next
    write and keeps its part file for resuming, instead of the process hanging until they
    finish.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items))))
    try:
        futures = [pool.submit(func, item) for item in items]
        results = [f.result() for f in futures]
    except BaseException:
        if installer.options.cancel is not None:
            installer.options.cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _origin(ref: str, target: RemoteFile, dest: Destination, sort: bool) -> dict[str, Any]:
    """What a later process needs to finish this download (``sdlib downloads --resume``):
    the exact version and file, and where the file goes."""
    return {
        "ref": target.pinned_ref, "asked": ref, "file_id": target.file_id,
        "title": target.title, "root": os.path.abspath(dest.root),
        "ui": dest.layout.name if dest.layout is not None else None, "sort": sort,
    }  # fmt: skip


def _notes(target: RemoteFile) -> str:
    from sdlib.library.sidecars import strip_html

    lines = [target.page_url]
    if target.base_label:
        lines.append(f"Base model: {target.base_label}")
    if target.version_description:
        lines.append(strip_html(target.version_description))
    return "\n".join(lines)
