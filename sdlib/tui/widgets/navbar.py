"""The one-line bar at the top of every screen: the four screens as tabs, and activity."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.widgets import Static

#: (mode, key, label) in tab order.
TABS = (
    ("browse", "1", "Browse"),
    ("downloads", "2", "Downloads"),
    ("library", "3", "Library"),
    ("settings", "4", "Settings"),
)


class _Tab(Static):
    def __init__(self, mode: str, key: str, label: str, current: bool) -> None:
        super().__init__(f"{key} {label}", classes="tab -current" if current else "tab")
        self.mode = mode

    def on_click(self, event: Click) -> None:
        event.stop()
        self.app.switch_mode(self.mode)


class NavBar(Horizontal):
    """``sdlib  1 Browse  2 Downloads  3 Library  4 Settings        ↓ 1 running``."""

    def __init__(self, current: str) -> None:
        super().__init__(id="navbar")
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static("sdlib", id="nav-title")
        for mode, key, label in TABS:
            yield _Tab(mode, key, label, mode == self.current)
        yield Static("", id="nav-activity")

    def set_activity(self, text: str) -> None:
        # A download's message can arrive while the app closes and the bar is unmounted.
        for widget in self.query("#nav-activity").results(Static):
            widget.update(text)
