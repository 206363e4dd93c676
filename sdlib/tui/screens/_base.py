"""What every main screen shares: the nav bar, the services, error reporting, palette entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Select
from textual.worker import Worker, WorkerState

from sdlib.tui.widgets.navbar import NavBar

if TYPE_CHECKING:
    from sdlib.tui.app import SdlibApp
    from sdlib.tui.downloads import DownloadJob
    from sdlib.tui.services import Services

#: Esc in a text field, a select or a checkbox: back to the screen's main widget. Screens
#: with fields list it last (first, it would come first in the footer of every screen).
LEAVE_FIELD = Binding("escape", "leave_field", "Leave the field", show=False)

#: (title, help, callback) for the command palette.
PaletteCommand = tuple[str, str, Callable[[], Any]]


def error_text(error: BaseException | None) -> str:
    """What to tell the user about an error: sdlib's own message, or the exception."""
    from sdlib.errors import SdlibError

    if error is None:
        return "unknown error"
    if isinstance(error, SdlibError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class SdlibScreen(Screen[None]):
    """A main screen (one per mode): nav bar on top, footer at the bottom."""

    #: The mode this screen is shown for (browse, downloads, library, settings).
    MODE: ClassVar[str] = ""
    #: The widget that has the keys when no field does (esc returns to it); None: the
    #: screen itself. Screen hotkeys work there, and in no text field.
    HOME: ClassVar[str | None] = None

    @property
    def sdlib(self) -> SdlibApp:
        return cast("SdlibApp", self.app)

    @property
    def services(self) -> Services:
        return self.sdlib.services

    def nav(self) -> NavBar:
        return NavBar(self.MODE)

    def on_screen_resume(self) -> None:
        self.update_activity()

    def update_activity(self) -> None:
        """Show what the download queue is doing in the nav bar."""
        queue = self.sdlib.downloads
        bits = []
        if queue.active:
            bits.append(f"↓ {queue.active} running")
        if queue.waiting:
            bits.append(f"{queue.waiting} queued")
        for bar in self.query(NavBar):
            bar.set_activity("  ".join(bits))

    def download_changed(self, job: DownloadJob) -> None:
        """A download job changed while this screen is shown (Downloads redraws its row)."""
        self.update_activity()

    # -- focus --------------------------------------------------------------------------------
    def in_field(self) -> bool:
        """Is a field focused (a text input, a select, a checkbox or a button)?"""
        focused = self.focused
        fields = (Input, Select, Checkbox, Button)
        return focused is not None and any(
            isinstance(node, fields) for node in focused.ancestors_with_self
        )

    def home(self) -> Widget | None:
        """The widget esc returns to (``HOME``)."""
        return self.query(self.HOME).first() if self.HOME and self.query(self.HOME) else None

    def leave_field(self) -> None:
        """Esc in a field: back to the screen's main widget, where hotkeys are keys again."""
        home = self.home()
        if home is not None and home.focusable:
            home.focus()
        else:
            self.set_focus(None)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":
            return self.in_field()  # elsewhere esc is free for other bindings
        return True

    def action_leave_field(self) -> None:
        self.leave_field()

    def report_error(self, error: BaseException | str, title: str = "Error") -> None:
        text = error if isinstance(error, str) else error_text(error)
        self.notify(text, title=title, severity="error", timeout=10, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False: a failure becomes a notification, not a crash.
        if event.state is WorkerState.ERROR:
            self.report_error(event.worker.error or "a background task failed")

    def palette_commands(self) -> Iterable[PaletteCommand]:
        """One command palette entry per binding of this screen (every action is reachable)."""
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            help_text = binding.tooltip or f"key: {binding.key.split(',')[0]}"
            yield (
                f"{binding.description}",
                help_text,
                partial(self.run_action, binding.action),
            )
