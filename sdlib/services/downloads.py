"""Unfinished downloads: list them, finish them, forget them (CLI ``sdlib downloads``, the
TUI's Downloads screen, scripts).

A download that stops before its file is complete (Ctrl-C, a dropped link, a failed
verification, a crash) keeps its ``.part`` file beside the target and a record in the cache
dir (``sdlib.download``). Resuming runs the same install path ``sdlib download`` takes, to
the same target: the download continues from the part file's bytes, and the whole file is
verified against the source's hashes before it takes its name.

    from sdlib.services import Context, downloads

    with Context() as ctx:
        for entry in downloads.unfinished_downloads(ctx):
            print(entry.id, entry.ref, entry.file_name, entry.kept, entry.reason)
            result = downloads.resume_download(ctx, entry.id)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.download import DownloadEvent, UnfinishedDownload
    from sdlib.install import InstallResult
    from sdlib.library.placement import Destination
    from sdlib.services._context import Context

__all__ = ["find_download", "forget_download", "resume_download", "unfinished_downloads"]


def _state_dir(ctx: Context) -> Path:
    """Where the download engine keeps its records (the same settings decide it)."""
    from sdlib.download import DownloadOptions

    state_dir = DownloadOptions.from_settings(ctx.settings).state_dir
    assert state_dir is not None  # from_settings always names one
    return state_dir


def unfinished_downloads(ctx: Context) -> list[UnfinishedDownload]:
    """Every unfinished download, oldest first: what it was, the bytes its part file keeps
    (``part_exists`` False when the part file is gone: a resume starts from zero) and why
    it stopped (``stopped_by``: interrupted, network, integrity, disk-full, access, failed,
    ended; running when another process is downloading it now)."""
    from sdlib.download import list_unfinished

    return list_unfinished(_state_dir(ctx))


def find_download(ctx: Context, wanted: str) -> UnfinishedDownload:
    """The unfinished download whose ID is ``wanted`` (or the one ID starting with it);
    ``NotFound`` (exit 5) when there is none."""
    from sdlib.download import find_unfinished

    return find_unfinished(_state_dir(ctx), wanted)


def _entry(ctx: Context, entry: str | UnfinishedDownload) -> UnfinishedDownload:
    """Read again from its record: what a listing said may have changed since."""
    return find_download(ctx, entry if isinstance(entry, str) else entry.id)


def forget_download(ctx: Context, entry: str | UnfinishedDownload) -> UnfinishedDownload:
    """Drop an unfinished download (by ID) and delete its part file: only that file, only
    when it sits beside the recorded target, never while another process downloads it."""
    from sdlib.download import forget_unfinished

    found = _entry(ctx, entry)
    forget_unfinished(_state_dir(ctx), found)
    return found


def resume_download(
    ctx: Context,
    entry: str | UnfinishedDownload,
    *,
    on_event: Callable[[DownloadEvent], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    previews: bool = True,
) -> InstallResult:
    """Finish an unfinished download (by ID) through the install path: the same file of
    the same version, to the same target, from the bytes its part file keeps, verified
    like any download. Raises as ``install`` does (an interruption keeps it listed)."""
    from sdlib.errors import SdlibError
    from sdlib.install import FileChoice

    found = _entry(ctx, entry)
    if found.running:
        raise SdlibError(
            f"{found.file_name} is downloading in another sdlib process; wait for it to finish"
        )
    origin = found.origin
    ref = origin.get("ref")
    if not isinstance(ref, str) or not ref:
        raise SdlibError(
            f"{found.file_name}: no source reference was recorded; download it again by its "
            f"ref, or forget it (sdlib downloads --forget {found.id})"
        )
    destination = _destination(ctx, found)
    file_id = origin.get("file_id")
    installer = ctx.installer(
        on_event=on_event, on_note=on_note, cancel=cancel, destination=destination,
        previews=previews,
    )  # fmt: skip
    result = installer.install(
        ref, FileChoice(file_id=file_id if isinstance(file_id, int) else None),
        destination=destination, at=found.target, sort=bool(origin.get("sort")),
    )  # fmt: skip
    _drop_if_done(ctx, found)
    return result


def _drop_if_done(ctx: Context, entry: UnfinishedDownload) -> None:
    """A download whose process died between placing the file and dropping its record
    finds its file already there: nothing was downloaded, so nothing dropped the record."""
    from sdlib.download import forget_unfinished
    from sdlib.errors import NotFound

    try:
        left = find_download(ctx, entry.id)
    except NotFound:
        return
    if not left.part_exists:
        forget_unfinished(_state_dir(ctx), left)


def _destination(ctx: Context, entry: UnfinishedDownload) -> Destination:
    """Where the first run was putting files: its webUI root and layout, or its folder."""
    from sdlib.library.placement import Destination

    root = entry.origin.get("root")
    ui = entry.origin.get("ui")
    if not isinstance(root, str) or not root:
        return Destination.folder(entry.target.parent)
    if isinstance(ui, str) and ui:
        return ctx.destination(root, ui)
    return Destination.folder(root)
