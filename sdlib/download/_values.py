"""The values a download takes and reports: what to fetch, how, and progress events.

Defined apart from the engine (``_engine``; ``sdlib.download`` exports them) so that
front ends and the engine's helpers share them without importing each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from sdlib.hashing import FileHashes
from sdlib.taxonomy import Container

if TYPE_CHECKING:
    from sdlib.config import Settings
    from sdlib.files.verification import Verification

PART_SUFFIX = ".part"


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadEvent:
    name: str


@dataclass(frozen=True)
class Started(DownloadEvent):
    total: int | None
    resumed_from: int
    connections: int


@dataclass(frozen=True)
class Progress(DownloadEvent):
    done: int
    total: int | None


@dataclass(frozen=True)
class Retrying(DownloadEvent):
    attempt: int
    reason: str
    delay: float


@dataclass(frozen=True)
class Verifying(DownloadEvent):
    pass


@dataclass(frozen=True)
class Finished(DownloadEvent):
    path: str
    size: int


EventCallback = Callable[[DownloadEvent], None]


# --- inputs and outputs -----------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadSpec:
    """What to fetch and what it must turn out to be."""

    url: str
    dest: Path
    size: int | None = None
    #: Civitai's ``hashes`` dict ({"SHA256": ..., "AutoV2": ...}); every one is checked, and
    #: ``sdlib.files.verification`` says which decide.
    hashes: Mapping[str, str] = field(default_factory=dict)
    #: The container the source promised (safetensors, or any pickle for PickleTensor).
    container: Container | None = None
    #: Returns a fresh URL when a signed storage URL has expired (re-resolved via the API).
    refresh: Callable[[], str] | None = None
    #: What the caller needs to fetch this file again in a later process (a source's
    #: ``ref``, file id, destination); kept, as JSON, in the unfinished download's record
    #: (``sdlib downloads``) until the file is complete.
    origin: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DownloadOptions:
    #: The most connections one file is fetched over. With ``adaptive`` (the default) a
    #: download starts with one and adds ranged connections only while each one raises the
    #: total (a server capping each connection); without, it uses exactly this many for
    #: files of ``split_threshold`` or more (the user's ``--connections N``).
    connections: int = 4
    adaptive: bool = True
    split_threshold: int = 64 << 20
    piece_size: int = 8 << 20
    limit_rate: int = 0
    retries: int = 4
    backoff_max: float = 30.0
    stall_timeout: float = 60.0
    connect_timeout: float = 10.0
    #: Where resume state lives (validator per part file). None: no cross-run If-Range.
    state_dir: Path | None = None
    #: Wait (up to this many seconds) for another process holding the part file, else fail.
    lock_wait: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    #: Maps a failed response to an sdlib error. The caller passes its source's mapper
    #: (Civitai's reads its error bodies); None: ``sdlib.http.raise_for_status``, which
    #: maps the bare status and knows no source.
    raise_for_status: Callable[[httpx2.Response], None] | None = None
    #: Set it to stop: the next write raises ``Interrupted`` (path: the part file, kept for
    #: resume). Front ends use it for pause and cancel.
    cancel: threading.Event | None = None
    #: Keep the bytes even when size or the deciding hash differs from what the source
    #: published (the user knowingly takes what it serves); the result says unverified.
    accept_mismatch: bool = False
    #: Bytes per second a body must average over each ``stall_timeout`` window; a server
    #: trickling slower (a byte now and then never trips a read timeout) is cut and retried.
    min_speed: int = 1024
    #: Where no size is known (none published, no Content-Length), stop past this many bytes.
    max_unknown_size: int = 64 << 30

    def wait(self, seconds: float) -> None:
        """Back off between retries; a cancel ends the wait at once."""
        if self.cancel is not None and self.sleep is time.sleep:
            self.cancel.wait(seconds)
        else:
            self.sleep(seconds)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DownloadOptions:
        d, n = settings.download, settings.network
        base = cls(
            connections=d.connections,
            split_threshold=d.split_threshold_mib << 20,
            limit_rate=d.limit_rate,
            retries=n.retries,
            backoff_max=n.backoff_max,
            stall_timeout=d.stall_timeout,
            connect_timeout=n.connect_timeout,
            state_dir=settings.cache_dir / "partials",
            max_unknown_size=d.max_unknown_size_gib << 30,
        )
        return replace(base, **overrides)


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    hashes: FileHashes
    resumed_from: int
    connections: int
    #: What the published size and hashes said (None only for results built elsewhere).
    verification: Verification | None = None

    @property
    def size(self) -> int:
        return self.hashes.size


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)
