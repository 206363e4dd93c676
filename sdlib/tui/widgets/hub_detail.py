"""The detail pane of a Hugging Face repo on Browse: its facts, card summary, gated state,
single-file models (with sizes, sha256 and what their headers say), diffusers folders
summarised, and other files. It shows what it is given; the screen fetches (workers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

from sdlib.formatting import terminal_safe
from sdlib.tui.hub_text import (
    folders_lines,
    gated_line,
    model_meta,
    other_files_line,
    single_file_lines,
)

if TYPE_CHECKING:
    from sdlib.services.remote import Peek
    from sdlib.sources.hf import HubModel, HubRepo

#: Statics filled from the records (all cleared together).
_FIELDS = ("#hub-title", "#hub-meta", "#hub-gated", "#hub-card", "#hub-files",
           "#hub-folders", "#hub-others")  # fmt: skip


class HubDetail(VerticalScroll):
    """One repo. ``model`` is set from the search result at once; ``repo`` when its info
    and file listing arrive; ``peeks`` when the single files' headers have been read."""

    def __init__(self, endpoint: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.endpoint = endpoint.rstrip("/")
        self.model: HubModel | None = None
        self.repo: HubRepo | None = None
        self.peeks: dict[str, Peek] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="hub-title")
        yield Static("", id="hub-meta")
        yield Static("", id="hub-gated")
        yield Static("", id="hub-card")
        yield Label("Single-file models  (d: download; kinds are guesses from names and tags)",
                    classes="detail-heading")  # fmt: skip
        yield Static("", id="hub-files")
        yield Label("Diffusers folders  (webUIs load the single files, not these)",
                    classes="detail-heading")  # fmt: skip
        yield Static("", id="hub-folders")
        yield Label("Other files", classes="detail-heading")
        yield Static("", id="hub-others")

    def _set(self, widget_id: str, text: str) -> None:
        self.query_one(widget_id, Static).update(Content(terminal_safe(text)))

    def clear(self) -> None:
        """Show nothing (the results it belonged to are gone)."""
        self.model = self.repo = self.peeks = None
        for widget_id in _FIELDS:
            self._set(widget_id, "")
        self.query_one("#hub-card").display = False

    def page_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"

    def show_model(self, model: HubModel) -> None:
        """What the search result tells, while the repo's files load."""
        self.clear()
        self.model = model
        self._head(model)
        self._set("#hub-files", "loading…")

    def _head(self, model: HubModel) -> None:
        by = f"by {model.author}" if model.author else ""
        self.query_one("#hub-title", Static).update(
            Content.from_markup(
                "[b]hf:$id[/b]  [dim]$by[/dim]",
                id=terminal_safe(model.id, newlines=False),
                by=terminal_safe(by, newlines=False),
            )
        )
        self._set("#hub-meta", model_meta(model))
        gated = gated_line(model, self.page_url(model.id))
        gated_static = self.query_one("#hub-gated", Static)
        gated_static.display = gated is not None
        if gated is not None:
            gated_static.update(Content.from_markup("[$warning]$g[/]", g=terminal_safe(gated)))

    def show_repo(self, repo: HubRepo, peeks: Sequence[Peek] | None) -> None:
        """The repo's info and files; ``peeks`` None while the headers are being read."""
        self.model = repo.model
        self.repo = repo
        self.peeks = {p.path: p for p in peeks} if peeks is not None else None
        self._head(repo.model)
        card = repo.card_summary or ""
        if repo.renamed_from:
            card = f"({repo.renamed_from} moved to {repo.model.id})\n{card}".rstrip()
        self._set("#hub-card", card)
        self.query_one("#hub-card").display = bool(card)
        files = single_file_lines(repo, self.peeks)
        self._set("#hub-files", "\n".join(files) or "none (nothing here loads on its own)")
        self._set("#hub-folders", "\n".join(folders_lines(repo)) or "none")
        self._set("#hub-others", other_files_line(repo) or "none")

    def show_error(self, message: str) -> None:
        """The repo could not be read (missing, private, offline): one line, no crash."""
        self.repo = self.peeks = None
        self._set("#hub-files", message)

    def show_access(self, message: str) -> None:
        """Why downloads from this repo are refused (gated, no access): one line."""
        gated = self.query_one("#hub-gated", Static)
        gated.display = True
        gated.update(Content.from_markup("[$error]$m[/]", m=terminal_safe(message)))
