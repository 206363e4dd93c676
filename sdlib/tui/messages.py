"""The messages workers post back to the UI thread: small dataclasses, nothing else.

Workers never touch widgets; they post one of these (``post_message`` is thread-safe) and a
handler on the UI thread updates the screen. ``DownloadProgress`` arrives up to ten times a
second per file, so it replaces an older queued copy for the same job (``can_replace``)
instead of piling up behind a busy screen (toolong's ``SizeChanged`` pattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from sdlib.install import InstallResult
    from sdlib.sources.civitai import (
        CivitaiModel,
        CivitaiVersion,
        RecommendedSettings,
        SearchPage,
    )


# --- Browse -----------------------------------------------------------------------------------


@dataclass
class SearchResults(Message):
    """One page of search results for search number ``generation``."""

    generation: int
    page: SearchPage
    #: False for the first page of a new search (the table is cleared first).
    append: bool
    #: Seconds the request took (shown in the status line).
    elapsed: float


@dataclass
class SearchFailed(Message):
    """Search number ``generation`` failed; ``append`` as in :class:`SearchResults`."""

    generation: int
    message: str
    append: bool = False


@dataclass
class VersionLoaded(Message):
    """The full ``/model-versions`` record and the voted generation settings."""

    model: CivitaiModel
    version: CivitaiVersion
    recommended: RecommendedSettings | None


@dataclass
class DetailFailed(Message):
    model_id: int
    version_id: int
    message: str


@dataclass
class HubResults(Message):
    """Hub repos found by search number ``generation`` (``more``: the search goes on)."""

    generation: int
    models: list[Any]
    append: bool
    more: bool
    #: Why paging stopped early (the paging guard's reason), if it did.
    stopped: str | None = None


@dataclass
class HubRepoLoaded(Message):
    """A Hub repo's info and files (``peeks`` None: its headers are still being read)."""

    repo_id: str
    repo: Any
    peeks: list[Any] | None = None


@dataclass
class HubRepoFailed(Message):
    repo_id: str
    message: str


@dataclass
class HubDownloadChecked(Message):
    """A gated repo's file was resolved (``message`` set: no access, and why)."""

    repo_id: str
    path: str
    size: int | None
    message: str | None = None


@dataclass
class PreviewReady(Message):
    """A decoded preview (a ``PIL.Image`` or None when it could not be fetched or read)."""

    url: str
    image: Any
    note: str | None = None


# --- Downloads --------------------------------------------------------------------------------


@dataclass
class DownloadProgress(Message):
    """Bytes written so far for one job (coalesced: only the newest queued copy survives)."""

    job_id: int
    done: int
    total: int | None
    #: ``time.monotonic()`` when the bytes were counted (for speed, whatever gets dropped).
    at: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgress) and message.job_id == self.job_id


@dataclass
class DownloadPhase(Message):
    """A job moved on: resolving, downloading (with resume offset), retrying, verifying."""

    job_id: int
    phase: str
    detail: str | None = None
    total: int | None = None
    resumed_from: int = 0
    file_name: str | None = None


@dataclass
class DownloadDone(Message):
    job_id: int
    result: InstallResult


@dataclass
class DownloadStopped(Message):
    """Paused or cancelled at the user's request; ``part`` is the kept partial file."""

    job_id: int
    part: str | None


@dataclass
class DownloadFailed(Message):
    job_id: int
    #: A short label for the status column ("login needed", "early access"...).
    reason: str
    message: str


# --- Library / settings -----------------------------------------------------------------------


@dataclass
class LibraryChanged(Message):
    """Files were added, moved or removed (a download finished, an action ran)."""

    paths: tuple[str, ...] = ()


@dataclass
class LibraryScanned(Message):
    """A scan finished: ``result`` is a ``ScanResult``, or None with ``error`` set."""

    result: Any
    error: str | None = None


@dataclass
class LibraryProgress(Message):
    """What a long library task is doing (coalesced like download progress)."""

    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LibraryProgress)


@dataclass
class LibraryEvidence(Message):
    """Classification evidence and cached hashes of one file
    (``sdlib.services.library.Evidence``)."""

    evidence: Any


@dataclass
class LibraryTaskDone(Message):
    """A library action finished: show ``title``/``text``; rescan if files changed."""

    title: str
    text: str
    changed: bool = False
    ok: bool = True
    #: Show the text in a dialog (long reports) instead of a notification.
    dialog: bool = False
    #: An organize ``Plan`` to show and, if the user agrees, apply.
    plan: Any = None
    #: With ``plan``: the journal of an organize run on the folder that was interrupted
    #: (applying it finishes that run first, as ``sdlib organize --apply`` does).
    interrupted: str | None = None
    #: A dedupe to confirm (``sdlib.tui.screens.library_store.Proposal``).
    dedupe: Any = None


@dataclass
class LibrarySeen(Message):
    """Which webUIs see the scanned files (``sdlib.services.seen.SeenReport``), for the
    scan of ``root``."""

    root: str
    report: Any


@dataclass
class SettingsChanged(Message):
    """The settings were saved; ``app.services`` has been rebuilt from them."""
