"""``sdlib show`` for what Civitai no longer serves: the file a download would take instead
(Civitai's other host, or a live CivArchive mirror), found by ``services.fallback.elsewhere``
and printed as an offer; nothing is downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sdlib.cli._common import console, human_size

if TYPE_CHECKING:
    from sdlib.sources.protocol import RemoteFile

__all__ = ["elsewhere_dict", "print_elsewhere"]


def elsewhere_dict(found: RemoteFile) -> dict[str, Any]:
    """The offer as ``--json`` gives it."""
    return {
        "source": found.source,
        "title": found.title,
        "file_name": found.file_name,
        "size": found.size,
        "sha256": found.sha256,
        "url": found.url,
        "page_url": found.page_url,
        "pinned_ref": found.pinned_ref,
    }


def print_elsewhere(ref: str, found: RemoteFile, *, gone: str | None = None) -> None:
    """The offer for people: where the bytes are, what they are verified against, and the
    command that fetches them. ``gone`` is Civitai's answer when it showed nothing."""
    from rich.markup import escape

    out = console()
    host = urlsplit(found.url).netloc
    label = "CivArchive" if found.source == "civarchive" else host
    where = f"a mirror at {host}" if found.source == "civarchive" else host
    if gone is not None:
        out.print(f"[bold]{escape(ref)}[/]: [yellow]gone from Civitai[/]: {escape(gone)}")
    else:
        out.print()
    out.print(f"source: {escape(label)}  {escape(found.title)}")
    size = f"  {human_size(found.size)}" if found.size is not None else ""
    out.print(f"  {escape(found.file_name)}{size}  from {escape(where)}")
    if found.sha256:
        out.print(f"  SHA256 {found.sha256} (a download is verified against it)")
    if found.page_url:
        out.print(f"  page: {escape(found.page_url)}", soft_wrap=True)
    out.print(f"[dim]sdlib download {escape(ref)} fetches it from there.[/]")
