"""Mirror first: a file whose SHA256 is known comes from the studio mirror before upstream.

The installer's helper (``sdlib.install``). The mirror is keyed by SHA256, so whenever a lock
file or the source's metadata names the SHA256, its object is tried first, streamed through
sdlib's own engine (ranges, resume, every published hash verified: the mirror is trusted
for nothing). A miss, an unreachable mirror or a corrupt object (a hash mismatch: the part
file is deleted, nothing is placed) is one note, and upstream serves the file. A file that
came from upstream is pushed to the mirror afterwards when the mirror is set to publish (a
failed push is a note, never a failed install). A file that is gone upstream, or an upstream
that cannot be reached, still installs from the mirror when the lock names its SHA256.

Many machines installing one lock at once fetch each file from upstream once in total: on
a miss, a machine that may publish claims the fetch (a conditional create under
``PREFIX/claims/``); the others wait for the object it pushes, and take the claim over if it
is released without one or expires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.download import DownloadEvent, DownloadOptions, DownloadResult, DownloadSpec, download
from sdlib.errors import HashMismatch, Interrupted, SdlibError, SourceError
from sdlib.taxonomy import Base, Kind

if TYPE_CHECKING:
    import httpx2

    from sdlib.hashing import FileHashes
    from sdlib.mirror import Mirror, MirrorMeta, MirrorSource
    from sdlib.sources.protocol import RemoteFile

__all__ = ["MirrorFirst"]

#: A claim on an upstream fetch lasts this long, plus the time the file takes at
#: ``CLAIM_RATE`` bytes/s; a machine that dies holding one holds the others up that long.
CLAIM_SECONDS = 120.0
CLAIM_RATE = 1 << 20
#: How often a machine waiting for another's upload looks for the object, and how many
#: failed looks in a row end the wait (then it fetches from upstream itself).
POLL_SECONDS = 1.0
WAIT_ERRORS = 5

#: Where an installed file's bytes came from (``InstallResult.came_from``).
FROM_MIRROR = "mirror"
FROM_UPSTREAM = "upstream"


@dataclass
class MirrorFirst:
    mirror: Mirror
    #: The mirror's own client (no Civitai or Hub token on it).
    http: httpx2.Client
    options: DownloadOptions
    on_event: Callable[[DownloadEvent], None] | None
    on_note: Callable[[str], None]
    #: SHA256s this machine claimed the upstream fetch of (released when it ends).
    _claimed: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return self.mirror.url

    # -- reading ----------------------------------------------------------------------------
    def fetch(self, spec: DownloadSpec, sha256: str) -> DownloadResult | None:
        """``spec``'s file from the mirror, verified against what ``spec`` says it must be
        (size and hashes as upstream published them, or as the lock says); None, with a
        note where it matters, when upstream has to serve it instead."""
        name = spec.dest.name
        try:
            size = self.mirror.stat(sha256)
        except SdlibError as exc:
            self.on_note(f"{name}: the mirror {self.url} cannot be reached ({exc.message}); "
                         "downloading from upstream")  # fmt: skip
            return None
        if size is None:
            size = self._wait_for_another_machine(name, sha256, spec.size)
            if size is None:
                return None  # a miss: upstream, then (with publish) the mirror has it too
        if spec.size is not None and size != spec.size:
            self.on_note(f"{name}: the mirror's copy is {size:,} bytes, not {spec.size:,}; "
                         "not used, downloading from upstream")  # fmt: skip
            return None
        hashes = dict(spec.hashes)
        hashes.setdefault("SHA256", sha256.upper())
        try:
            url = self.mirror.object_url(sha256)
        except SdlibError as exc:
            self.on_note(f"{name}: no URL for the mirror's copy ({exc.message}); "
                         "downloading from upstream")  # fmt: skip
            return None
        mirror_spec = replace(spec, url=url, size=size, hashes=hashes, refresh=None)
        # The mirror's answers are plain HTTP (no source's error bodies); a down mirror
        # must not hold the install up through a long back-off; its bytes are never
        # accepted unverified.
        options = replace(self.options, raise_for_status=None, accept_mismatch=False,
                          retries=min(self.options.retries, 1), backoff_max=1.0)  # fmt: skip
        try:
            return download(self.http, mirror_spec, options, self.on_event)
        except HashMismatch as exc:
            self.on_note(f"{name}: the mirror's copy is corrupt ({exc.message}); it was not "
                         "placed; downloading from upstream")  # fmt: skip
        except Interrupted:
            raise
        except SdlibError as exc:
            self.on_note(f"{name}: the mirror failed ({exc.message}); downloading from upstream")
        return None

    def _wait_for_another_machine(self, name: str, sha256: str, size: int | None) -> int | None:
        """On a miss, when the mirror takes claims: claim the upstream fetch (None: ours to
        do), or wait while another machine holds it, until its object appears (its size)
        or its claim ends unfulfilled (then ours)."""
        seconds = CLAIM_SECONDS + (size or 0) / CLAIM_RATE
        waited = False
        errors = 0
        while True:
            try:
                claimed = self.mirror.claim(sha256, seconds)
                # Ours, or still another machine's: the object may have arrived just before
                # (a machine pushes, then releases its claim).
                found = self.mirror.stat(sha256) if claimed is not None else None
            except SdlibError:
                # Before any wait: the mirror is not there, go upstream. While waiting: a
                # busy mirror's hiccup; give up only when it keeps failing.
                errors += 1
                if not waited or errors >= WAIT_ERRORS:
                    return None
                self._pause(name)
                continue
            errors = 0
            if claimed:
                if found is not None:
                    with contextlib.suppress(SdlibError):
                        self.mirror.release(sha256)
                    return found
                self._claimed.add(sha256.lower())
                return None  # ours to fetch from upstream (and push)
            if found is not None:
                return found
            if claimed is None:
                return None
            if not waited:
                waited = True
                self.on_note(f"{name}: another machine is fetching it from upstream; "
                             "waiting for the mirror's copy")  # fmt: skip
            self._pause(name)

    def _pause(self, name: str) -> None:
        cancel = self.options.cancel
        if cancel is None:
            self.options.sleep(POLL_SECONDS)
        elif cancel.wait(POLL_SECONDS):
            raise Interrupted(f"{name}: stopped while waiting for the mirror")

    def release(self, sha256: str) -> None:
        """Let other machines go: this one's upstream fetch (and push) ended, either way."""
        sha = sha256.lower()
        if sha in self._claimed:
            self._claimed.discard(sha)
            with contextlib.suppress(SdlibError):
                self.mirror.release(sha)

    def target(self, ref: str, sha256: str, upstream: SourceError) -> RemoteFile:
        """The file as the mirror knows it, for a lock entry upstream cannot serve (gone,
        unreachable): what its sidecar says, verified against the lock's SHA256. Raises
        ``upstream`` when the mirror does not have it either."""
        from sdlib.sources.protocol import RemoteFile

        try:
            size = self.mirror.stat(sha256)
            meta = self.mirror.meta(sha256) if size is not None else None
        except SdlibError:
            raise upstream from None
        if size is None:
            raise upstream
        names = meta.names if meta is not None else ()
        file_name = names[0] if names else f"{sha256.lower()[:16]}.safetensors"
        kind, base = _kind(meta), _base(meta)
        source = _first_source(meta)
        self.on_note(f"{ref}: upstream cannot serve it ({upstream.message}); the mirror has "
                     f"{file_name}")  # fmt: skip
        return RemoteFile(
            source="civitai" if source is None or source.type == "civitai" else "hf",
            pinned_ref=ref, url=self.mirror.object_url(sha256), file_name=file_name,
            size=size, hashes={"SHA256": sha256.upper()}, container=None, kind=kind,
            base=base, base_label=None, title=file_name,
            picked=f"{file_name} from the mirror (upstream: {upstream.message})",
            page_url="", model_id=source.model_id if source else None,
            version_id=source.version_id if source else None,
            file_id=source.file_id if source else None,
            revision=source.revision if source else None,
        )  # fmt: skip

    # -- publishing -------------------------------------------------------------------------
    def publish(
        self, path: Path, hashes: FileHashes, target: RemoteFile, kind: Kind, base: Base
    ) -> str | None:
        """Push a file verified from upstream: "created", "exists", or None (not publishing,
        or the push failed: a note)."""
        if not self.mirror.can_publish:
            return None
        from sdlib.mirror import MirrorMeta

        meta = MirrorMeta(hashes=hashes, kind=kind.value, base=base.value,
                          names=(target.file_name,), sources=_sources(target))  # fmt: skip
        try:
            return self.mirror.push(path, hashes, meta).status
        except (SdlibError, OSError) as exc:
            why = exc.message if isinstance(exc, SdlibError) else (exc.strerror or str(exc))
            self.on_note(f"{path.name}: not published to the mirror {self.url}: {why}")
            return None


def _sources(target: RemoteFile) -> tuple[MirrorSource, ...]:
    from sdlib.mirror import MirrorSource

    if target.source == "civitai" and target.version_id is not None:
        return (MirrorSource("civitai", model_id=target.model_id, version_id=target.version_id,
                             file_id=target.file_id),)  # fmt: skip
    if target.source == "hf":  # pinned as hf:OWNER/NAME@COMMIT/PATH
        owner, _, rest = target.pinned_ref.removeprefix("hf:").partition("/")
        name_rev, _, path = rest.partition("/")
        name, _, rev = name_rev.partition("@")
        revision = target.revision or rev or None
        return (MirrorSource("huggingface", repo=f"{owner}/{name}", revision=revision,
                             path=path or None),)  # fmt: skip
    return ()


def _first_source(meta: MirrorMeta | None) -> MirrorSource | None:
    if meta is None:
        return None
    for source in meta.sources:
        if source.type in ("civitai", "huggingface"):
            return source
    return None


def _kind(meta: MirrorMeta | None) -> Kind:
    with contextlib.suppress(ValueError):
        return Kind(meta.kind) if meta is not None else Kind.UNKNOWN
    return Kind.UNKNOWN


def _base(meta: MirrorMeta | None) -> Base:
    with contextlib.suppress(ValueError):
        return Base(meta.base) if meta is not None else Base.UNKNOWN
    return Base.UNKNOWN
