"""The Library's detail pane: one file's facts (status, Civitai identity, hashes,
classification evidence, sidecars) beside its preview. It shows what it is given; the
screen reads the evidence in a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from sdlib.formatting import human_size, terminal_safe
from sdlib.tui.library_text import civitai_line, hashes_text, status_lines
from sdlib.tui.widgets.preview import LocalPreview

if TYPE_CHECKING:
    from sdlib.library.scan import FileReport
    from sdlib.services.library import Evidence

_FIELDS = ("#lib-summary", "#lib-status-text", "#lib-seen", "#lib-civitai", "#lib-hashes",
           "#lib-evidence", "#lib-sidecars")  # fmt: skip


class LibraryDetail(Horizontal):
    def __init__(self, previews: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._previews = previews

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="library-info"):
            for field in _FIELDS:
                yield Static("", id=field[1:])
        yield LocalPreview(self._previews, id="library-preview")

    def _set(self, field: str, content: Content | str) -> None:
        self.query_one(field, Static).update(content)

    def show(self, f: FileReport | None, seen: str = "") -> None:
        """Show ``f`` (None: nothing) and ``seen`` (which webUIs see it); its evidence
        follows with :meth:`show_evidence`."""
        self.query_one(LocalPreview).show_path(None)
        if f is None:
            for field in _FIELDS:
                self._set(field, "")
            return
        self._set(
            "#lib-summary",
            Content.from_markup(
                "[b]$rel[/b]\n$what",
                rel=terminal_safe(f.rel, newlines=False),
                what=f"{f.role} · {human_size(f.size)}",
            ),
        )
        self._set("#lib-status-text", Content(status_lines(f)))
        self.show_seen(seen if f.role == "model" else "")
        self._set("#lib-civitai", Content(civitai_line(f)))
        sha = f.row.sha256
        self._set("#lib-hashes", Content(f"SHA256 {sha}" if sha else "hashes: loading…"))
        self._set("#lib-evidence", Content("classification: loading…"))
        sidecars = ", ".join(s.rsplit("/", 1)[-1] for s in f.sidecars) or "none"
        self._set("#lib-sidecars", Content(f"sidecars: {terminal_safe(sidecars, newlines=False)}"))

    def show_seen(self, text: str) -> None:
        """Which webUIs see the file (already terminal-safe), or nothing."""
        self._set("#lib-seen", Content(text))

    def show_evidence(self, ev: Evidence, sha256: str | None) -> None:
        lines = [f"classification: {ev.summary}"] + [f"  · {line}" for line in ev.lines]
        self._set("#lib-evidence", Content(terminal_safe("\n".join(lines))))
        self._set("#lib-hashes", Content(hashes_text(ev.hashes, sha256)))
        self.query_one(LocalPreview).show_path(ev.preview)
