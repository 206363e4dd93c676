"""The Library screen's reach outside itself: thumbnails of its previews, the model's Civitai
page in the browser, and the ``<lora:name:weight>`` prompt tag on the clipboard.

Functions here take facts (file reports, settings) and return what to show; the screen
runs the IO ones (reading a card, starting a browser) in workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work

from sdlib.library.prompt_tags import LORA_KINDS, lora_tag
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.widgets.thumbs import ThumbItem

if TYPE_CHECKING:
    from sdlib.library.scan import FileReport

__all__ = [
    "Outcome", "Reach", "copy_tag", "model_page", "open_page", "preview_of", "thumb_items",
]  # fmt: skip

#: Preview sidecars A1111 looks for, in its order (``<stem>.png`` before ``.preview.png``).
_PREVIEW_ORDER = (".png", ".preview.png", ".jpg", ".jpeg", ".preview.jpg", ".preview.jpeg",
                  ".webp", ".preview.webp", ".gif", ".preview.gif")  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What an action tells the user: a notification, and text for the clipboard."""

    message: str
    title: str
    ok: bool = True
    clipboard: str | None = None


def preview_of(report: FileReport) -> str | None:
    """The preview image sidecar of a model (videos are not drawn), or None."""
    stem = os.path.splitext(os.path.basename(report.path))[0]
    by_name = {os.path.basename(s).lower(): s for s in report.sidecars}
    for suffix in _PREVIEW_ORDER:
        found = by_name.get((stem + suffix).lower())
        if found is not None:
            return found
    return None


def thumb_items(reports: Iterable[FileReport]) -> list[ThumbItem]:
    from sdlib.formatting import terminal_safe

    return [
        ThumbItem(
            r.path,
            terminal_safe(os.path.basename(r.rel), newlines=False),
            preview_of(r),
        )
        for r in reports
        if r.role == "model"
    ]


def model_page(report: FileReport, site: str) -> str | None:
    """The Civitai page of an identified model's version on ``site``, or None."""
    r = report.row
    if r.civitai_model_id is None:
        return None
    page = f"{site.rstrip('/')}/models/{r.civitai_model_id}"
    return page + (f"?modelVersionId={r.civitai_version_id}" if r.civitai_version_id else "")


def open_page(report: FileReport, site: str) -> Outcome:
    """Open the model's page in the browser (worker thread: a browser may take a while)."""
    import webbrowser

    url = model_page(report, site)
    if url is None:
        return Outcome(
            f"{os.path.basename(report.rel)} is not identified: press i to look it up by hash",
            "No Civitai page",
            ok=False,
        )
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if opened:
        return Outcome(url, "Opened in the browser")
    return Outcome(f"no browser to open: {url} (copied)", "Civitai page", clipboard=url)


def copy_tag(report: FileReport) -> Outcome:
    """``<lora:name:weight>`` for a LoRA or LyCORIS (worker thread: reads its card)."""
    kind = report.kind or "unknown"
    if kind not in LORA_KINDS:
        return Outcome(
            f"a {kind} has no <lora:…> tag (only LoRA and LyCORIS files do)",
            "Nothing copied",
            ok=False,
        )
    tag = lora_tag(report.path)
    where = (
        f"weight from {tag.source}"
        if tag.source != "default"
        else "weight 1: no recommended weight in its card"
    )
    return Outcome(f"copied {tag.text} ({where})", "Prompt tag", clipboard=tag.text)


class Reach(SdlibScreen):
    """The keys that reach outside: c (prompt tag to the clipboard), p (Civitai page).
    A base of :class:`~sdlib.tui.screens.library.LibraryScreen`."""

    if TYPE_CHECKING:  # LibraryScreen defines it

        def _need(self, *, model: bool = True) -> FileReport | None: ...

    def action_copy_tag(self) -> None:
        f = self._need()
        if f is not None:
            self._reach(lambda: copy_tag(f))

    def action_open_page(self) -> None:
        f = self._need()
        if f is not None:
            site = self.services.settings.civitai.base_url
            self._reach(lambda: open_page(f, site))

    @work(thread=True, group="library-reach", exit_on_error=False)
    def _reach(self, fn: Callable[[], Outcome]) -> None:
        self.app.call_from_thread(self._reached, fn())

    def _reached(self, outcome: Outcome) -> None:
        if outcome.clipboard is not None:
            self.app.copy_to_clipboard(outcome.clipboard)
        self.notify(
            outcome.message,
            title=outcome.title,
            severity="information" if outcome.ok else "warning",
            markup=False,
        )
