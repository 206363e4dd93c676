"""Modal dialogs: choose the file to download (a Civitai version's, a Hub repo's), confirm
an action, show a long message."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from sdlib.formatting import human_size, terminal_safe, tilde

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sdlib.services.remote import Peek
    from sdlib.sources.civitai import CivitaiModel, CivitaiVersion
    from sdlib.sources.hf import HubRepo
    from sdlib.taxonomy import Base, Kind
    from sdlib.tui.services import Services


_T = TypeVar("_T")


class Decision(ModalScreen[_T]):
    """A dialog whose answer does something. Keys typed before it was shown are not
    answers (the app drops them): ``d`` and a quick ``⏎`` must not pick a file unseen."""

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")
        self._shown_at = math.inf

    def _on_mount(self, event: events.Mount) -> None:
        self._shown_at = event.time

    def typed_before_shown(self, event: events.Key) -> bool:
        return event.time < self._shown_at


class FilePicker(Decision[_T]):
    """A dialog that picks a file to download and says which folder it will go to."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    def _tell_where(self, kind: Kind, base: Base) -> None:
        """Show the folder a file of ``kind`` and ``base`` goes to. Reads the webUI root:
        call it from a worker thread."""
        from sdlib.errors import SdlibError

        try:
            dest = self._services.destination()
            folder = dest.folder_for(kind, base)
            text = f"where: {tilde(folder)}  ({dest.layout.title if dest.layout else 'folder'})"
        except SdlibError as exc:
            text = f"where: {exc.message}"
        self.app.call_from_thread(self._set_where, terminal_safe(text, newlines=False))

    def _set_where(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#download-where", Static).update(Content(text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class DownloadDialog(FilePicker[int | None]):
    """Pick one file of a version (format, precision, pruned/full); returns its file id."""

    def __init__(
        self,
        services: Services,
        model: CivitaiModel,
        version: CivitaiVersion,
        selected: int | None = None,
    ) -> None:
        super().__init__(services)
        self.model = model
        self.version = version
        self.selected = selected

    def compose(self) -> ComposeResult:
        from sdlib.tui.widgets.model_detail import describe_file, scan_text

        with Vertical(classes="dialog", id="download-dialog"):
            yield Static(
                Content.from_markup(
                    "[b]Download[/b] $name",
                    name=terminal_safe(f"{self.model.name} {self.version.name}", newlines=False),
                ),
                classes="dialog-title",
            )
            yield Static("where: …", id="download-where")
            options = []
            for f in self.version.files:
                star = "★ " if f.primary else "  "
                label = terminal_safe(
                    f"{star}{terminal_safe(f.name, newlines=False)}\n    {human_size(f.size)}"
                    f" · {describe_file(f)} · scan: {scan_text(f)}"
                )
                options.append(Option(Content(label), id=str(f.id)))
            yield OptionList(*options, id="download-files")
            from sdlib.sources.versions import early_access_active

            ends = self.version.early_access_ends
            if ends and early_access_active(ends):
                yield Static(
                    f"Early access until {ends[:10]}: the download "
                    "needs a token with early access.",
                    classes="dialog-warning",
                )
            yield Static("enter: add to the queue · esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        files = self.query_one("#download-files", OptionList)
        ids = [f.id for f in self.version.files]
        chosen = self.selected if self.selected in ids else None
        if chosen is None:
            primary = self.version.primary_file
            chosen = primary.id if primary is not None else None
        if chosen is not None:
            files.highlighted = ids.index(chosen)
        files.focus()
        self._where()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _where(self) -> None:
        """Which folder the file will go to (reads the webUI root: a worker's job)."""
        from sdlib.taxonomy import CIVITAI_TYPE_TO_KIND, Kind, base_from_civitai

        kind = CIVITAI_TYPE_TO_KIND.get(self.model.type, Kind.UNKNOWN)
        self._tell_where(kind, base_from_civitai(self.version.base_model))

    @on(OptionList.OptionSelected, "#download-files")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id or 0))


class HubFileDialog(FilePicker[str | None]):
    """Pick one single-file model of a Hugging Face repo; returns its path."""

    def __init__(self, services: Services, repo: HubRepo, peeks: Mapping[str, Peek] | None):
        super().__init__(services)
        self.repo = repo
        self._peeks = peeks or {}

    def compose(self) -> ComposeResult:
        from sdlib.tui.hub_text import single_files

        with Vertical(classes="dialog", id="download-dialog"):
            yield Static(
                Content.from_markup(
                    "[b]Download[/b] hf:$name",
                    name=terminal_safe(self.repo.model.id, newlines=False),
                ),
                classes="dialog-title",
            )
            yield Static("where: …", id="download-where")
            options = []
            for f, g in single_files(self.repo):
                seen = self._peeks.get(f.path)
                what = seen.summary() if seen is not None else f"{g.kind.value} (guess)"
                label = terminal_safe(f"{f.path}\n    {human_size(f.size)} · {what}")
                options.append(Option(Content(label), id=f.path))
            yield OptionList(*options, id="download-files")
            yield Static("enter: add to the queue · esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        files = self.query_one("#download-files", OptionList)
        files.highlighted = 0
        files.focus()

    @on(OptionList.OptionHighlighted, "#download-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self._where(event.option.id)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _where(self, path: str) -> None:
        """The folder this file will go to: by what its header says, else the guess."""
        from sdlib.taxonomy import Base, Kind
        from sdlib.tui.hub_text import single_files

        guess = next((g for f, g in single_files(self.repo) if f.path == path), None)
        seen = self._peeks.get(path)
        try:
            kind = Kind(seen.kind) if seen is not None and seen.kind else None
            base = Base(seen.base) if seen is not None and seen.base else None
        except ValueError:
            kind = base = None
        kind = kind or (guess.kind if guess is not None else Kind.UNKNOWN)
        self._tell_where(kind, base or self.repo.model.base)

    @on(OptionList.OptionSelected, "#download-files")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)


class ConfirmDialog(Decision[bool]):
    """A yes/no question; ``y``/``enter`` confirm, ``n``/``esc`` refuse."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, body: str, *, yes: str = "Yes", danger: bool = False):
        super().__init__()
        self._title = terminal_safe(title, newlines=False)  # often hold file names
        self._body = terminal_safe(body)
        self._yes = yes
        self._danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(Content.from_markup("[b]$t[/b]", t=self._title), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(Content(self._body))
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._yes, id="yes", variant="error" if self._danger else "primary")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class MessageDialog(ModalScreen[None]):
    """A long text (an error with details, a report); any of esc/enter/q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__(classes="dialog-screen")
        self._title = terminal_safe(title, newlines=False)  # file names, server messages
        self._body = terminal_safe(body)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="message-dialog"):
            yield Static(Content.from_markup("[b]$t[/b]", t=self._title), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(Content(self._body))
            yield Static("esc: close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
