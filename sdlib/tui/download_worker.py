"""The worker side of the download queue: one job's install in a worker thread, which
only posts messages (``sdlib.tui.messages``) for the queue on the UI thread to apply."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.tui.messages import (
    DownloadDone,
    DownloadFailed,
    DownloadPhase,
    DownloadProgress,
    DownloadStopped,
)

if TYPE_CHECKING:
    from textual.message import Message

    from sdlib.errors import SdlibError
    from sdlib.install import InstallResult
    from sdlib.tui.downloads import DownloadJob
    from sdlib.tui.services import Services

__all__ = ["describe_failure", "discard_part", "refresh_webuis", "run_job"]


def run_job(job: DownloadJob, services: Services, post: Callable[[Message], object]) -> None:
    """Install one job (in a worker thread); report everything through ``post``."""
    from sdlib import download as d
    from sdlib.errors import Interrupted, SdlibError

    job_id = job.id
    cancel = job.cancel

    def on_event(event: d.DownloadEvent) -> None:
        if isinstance(event, d.Progress):
            post(DownloadProgress(job_id, event.done, event.total, time.monotonic()))
        elif isinstance(event, d.Started):
            post(
                DownloadPhase(
                    job_id,
                    "downloading",
                    total=event.total,
                    resumed_from=event.resumed_from,
                    file_name=event.name,
                )
            )
        elif isinstance(event, d.Retrying):
            post(DownloadPhase(job_id, "retrying", detail=f"retry {event.attempt}: {event.reason}"))
        elif isinstance(event, d.Verifying):
            post(DownloadPhase(job_id, "verifying"))

    def on_note(text: str) -> None:
        post(DownloadPhase(job_id, "note", detail=text))

    post(DownloadPhase(job_id, "resolving"))
    try:
        if cancel.is_set():
            raise Interrupted("stopped before it started")
        if job.entry_id is not None:  # left by an earlier session: to its recorded target
            from sdlib.services.downloads import resume_download

            result = resume_download(
                services, job.entry_id, on_event=on_event, on_note=on_note, cancel=cancel
            )
        else:
            overrides = {"accept_mismatch": True} if job.accept_mismatch else None
            installer = services.installer(
                on_event=on_event, on_note=on_note, cancel=cancel, overrides=overrides
            )
            result = installer.install(job.ref, job.choice)
    except Interrupted as exc:
        part = exc.path
        if job.stop == "cancel" and part:
            discard_part(part, services)
            part = None
        post(DownloadStopped(job_id, part))
    except SdlibError as exc:
        reason, message = describe_failure(exc)
        post(DownloadFailed(job_id, reason, message))
    except Exception as exc:  # a bug must not take the app down; say what it was
        post(DownloadFailed(job_id, "error", f"unexpected {type(exc).__name__}: {exc}"))
    else:
        post(DownloadDone(job_id, result))
        refresh_webuis(services, result, post)


def refresh_webuis(services: Services, result: InstallResult, post: Callable[..., object]) -> None:
    """Ask the running webUIs ([webui.NAME]) to rescan the list the new file is in, as
    ``sdlib download`` does; each says how it went in a notification (never an error)."""
    if result.status == "already-present" or not services.settings.webuis:
        return
    from textual.notifications import Notification, Notify

    from sdlib.errors import SdlibError
    from sdlib.services.refresh import changed_kinds, refresh

    try:
        dest = services.destination()
        layout, root = dest.layout, dest.root
    except SdlibError:  # resumed into a folder no longer configured: the kind decides
        layout, root = None, None
    kinds = changed_kinds(layout, root, [(result.path, result.kind)])
    for outcome in refresh(services, kinds):
        note = Notification(outcome.line(), "webUI refresh", markup=False)
        post(Notify(note if outcome.ok else replace(note, severity="warning")))


def discard_part(path: str, services: Services | None = None) -> None:
    """Forget a cancelled job's unfinished download: its part file and its record (in a
    worker thread)."""
    if services is not None:
        from sdlib.errors import SdlibError
        from sdlib.services.downloads import forget_download, unfinished_downloads

        with contextlib.suppress(SdlibError, OSError):
            for entry in unfinished_downloads(services):
                if path and entry.part == Path(path):
                    forget_download(services, entry)
                    return
    if path:
        with contextlib.suppress(OSError):
            Path(path).unlink()


def describe_failure(exc: SdlibError) -> tuple[str, str]:
    """(short reason for the status column, full message) for a failed install."""
    from sdlib import errors as e

    message = exc.message
    if isinstance(exc, e.AuthRequired):
        return "login needed", message
    if isinstance(exc, e.AccessDenied):
        if exc.early_access_ends:
            return f"early access until {exc.early_access_ends[:10]}", message
        return "no access", message
    if isinstance(exc, e.HashMismatch):
        return "hash mismatch", message
    if isinstance(exc, e.DiskFull):
        return "disk full", message
    if isinstance(exc, e.Gone):
        return "archived", message
    if isinstance(exc, e.NotFound):
        return "not found", message
    if isinstance(exc, e.RateLimited):
        return "rate limited", message
    if isinstance(exc, e.UnsafeFileError):
        return "unsafe file", message
    if isinstance(exc, (e.UsageError, e.ConfigError)):
        return "setup needed", message
    if isinstance(exc, e.SourceError):
        return "network", message
    if isinstance(exc, e.DownloadError):
        return "download failed", message
    return "failed", message
