"""The help screen: every key of every screen, read from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

_INTRO = (
    "Find a model in Browse, press d to pick a file; it downloads in Downloads and is "
    "placed in your webUI folder (set it in Settings). Library lists what you have. "
    "ctrl+p opens the command palette: every action below is there too."
)

#: Keys that widgets handle themselves (not in any BINDINGS list).
_WIDGET_KEYS = (
    ("↑ ↓ pgup pgdn home end", "move in tables and lists"),
    ("enter", "open the highlighted row / choose"),
    ("tab / shift+tab", "next / previous field"),
    ("esc", "leave a field or close a dialog"),
)


def key_label(key: str) -> str:
    names = {
        "question_mark": "?",
        "slash": "/",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "delete": "del",
        "escape": "esc",
    }
    return " ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            rows.append((key_label(b.key), b.description))
        elif isinstance(b, tuple) and len(b) >= 3 and b[2]:
            rows.append((key_label(str(b[0])), str(b[2])))
    return rows


def help_sections(app: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(keys, what)]) for the app and each screen class, in tab order."""
    from sdlib.tui.screens.browse import BrowseScreen
    from sdlib.tui.screens.downloads import DownloadsScreen
    from sdlib.tui.screens.library import LibraryScreen
    from sdlib.tui.screens.settings import SettingsScreen

    sections = [("Everywhere", binding_rows(type(app).BINDINGS) + [("ctrl+p", "command palette")])]
    for title, cls in (
        ("Browse", BrowseScreen),
        ("Downloads", DownloadsScreen),
        ("Library", LibraryScreen),
        ("Settings", SettingsScreen),
    ):
        sections.append((title, binding_rows(cls.BINDINGS)))
    sections.append(("Tables and fields", list(_WIDGET_KEYS)))
    return sections


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Static(Content.from_markup("[b]sdlib keys[/b]"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body", id="help-body"):
                yield Static(Content(_INTRO), classes="help-intro")
                for title, rows in help_sections(self.app):
                    yield Static(Content.from_markup("[b]$t[/b]", t=title), classes="help-title")
                    width = max((len(k) for k, _ in rows), default=4)
                    text = "\n".join(f"{k:<{width}}  {what}" for k, what in rows)
                    yield Static(Content(text), classes="help-keys")
            yield Static("esc: close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
