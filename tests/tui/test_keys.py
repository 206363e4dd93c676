"""Keys: esc leaves a field so hotkeys are hotkeys again; keys typed in a burst (fast
typing, a paste, tmux send-keys) act one after another on the screen they were meant for;
no key typed before a dialog appeared answers it, so nothing is downloaded unseen."""

from __future__ import annotations

from typing import Any

import pytest
from textual import events
from textual.widgets import Input

from sdlib.demo.server import DemoServer
from sdlib.tui.screens.browse import BrowseScreen
from sdlib.tui.screens.dialogs import ConfirmDialog, DownloadDialog
from sdlib.tui.screens.library import LibraryScreen
from sdlib.tui.screens.settings import SettingsScreen

pytestmark = pytest.mark.anyio

_CHARS = {"enter": "\r", "escape": "\x1b", "slash": "/", "tab": "\t"}


def burst(app: Any, *keys: str) -> None:
    """Post keys the way a terminal delivers a burst: all of them before any is handled
    (Pilot's press waits between keys, which hides what this tests)."""
    for key in keys:
        app.post_message(events.Key(key, _CHARS.get(key, key if len(key) == 1 else None)))


def model_requests(server: DemoServer) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/api/v1/models?"))


async def test_escape_leaves_the_search_field_and_the_next_key_is_a_hotkey(
    make_app: Any, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("slash", "a", "b", "escape", "3")
        await ui.settle(pilot)
        assert isinstance(app.screen, LibraryScreen)
        assert app.get_screen_stack("browse")[0].query_one("#query", Input).value == "ab"


async def test_escape_leaves_the_library_filter(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("3")
        await ui.settle(pilot)
        screen = app.screen
        await pilot.press("slash", "x", "escape")
        assert screen.focused is not None and screen.focused.id == "library-table"
        await pilot.press("4")
        await ui.settle(pilot)
        assert isinstance(app.screen, SettingsScreen)
        assert screen.query_one("#library-filter", Input).value == "x"


async def test_escape_leaves_a_settings_field_and_1_goes_to_browse(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("4")
        await ui.settle(pilot)
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        assert not isinstance(screen.focused, Input)  # arriving focuses no text field
        lora = screen.query_one("#folder-lora", Input)
        lora.focus()
        await pilot.press(*"abc", "escape", "1")
        await ui.settle(pilot)
        assert isinstance(app.screen, BrowseScreen)
        assert lora.value == "abc"


@pytest.mark.parametrize("start", ["1", "2"], ids=["on-browse", "from-downloads"])
async def test_a_typed_search_is_a_search_not_a_download(
    civitai: DemoServer, make_app: Any, ui: Any, start: str
) -> None:
    """`/dream⏎` typed fast (after `1` from another screen) searches for dream: its `d` is
    a letter of the query, not Browse's download key."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press(start)
        await ui.settle(pilot)
        keys = ["slash", *"dream", "enter"]
        burst(app, *(["1", *keys] if start != "1" else keys))
        await ui.settle(pilot)
        await ui.settle(pilot)
        assert isinstance(app.screen, BrowseScreen)
        assert app.screen.query_one("#query", Input).value == "dream"
        assert list(app.downloads) == []
        assert any("query=dream" in r.path for r in civitai.requests)


async def test_keys_typed_before_the_download_dialog_appeared_do_not_answer_it(
    make_app: Any, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("4")
        await ui.settle(pilot)
        burst(app, "1", "d", "enter")
        await ui.settle(pilot)
        await ui.settle(pilot)
        assert isinstance(app.screen, DownloadDialog)  # d on Browse: the file picker
        assert list(app.downloads) == []  # but the enter typed with it chose nothing
        await pilot.press("enter")  # an enter pressed while the dialog is shown does
        await ui.settle(pilot)
        assert [j.file_name for j in app.downloads] == ["easynegative.safetensors"]


async def test_keys_after_a_screen_switch_go_to_the_new_screen(
    civitai: DemoServer, make_app: Any, ui: Any
) -> None:
    """`3` then `r` at once: r rescans the Library; Browse does not search again."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        searches = model_requests(civitai)
        burst(app, "3", "r", "1", "slash", "x")
        await ui.until(pilot, lambda: not app._keys.busy, what="the burst handled")
        await ui.settle(pilot)
        assert model_requests(civitai) == searches
        assert isinstance(app.screen, BrowseScreen)
        assert app.screen.query_one("#query", Input).value == "x"
        library = app.get_screen_stack("library")[0]
        assert library.query_one("#library-filter", Input).value == ""


async def test_a_burst_cannot_confirm_a_dialog(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        app.push_screen(ConfirmDialog("Sure?", "typed ahead", yes="Yes"))
        burst(app, "y")  # typed while the dialog was still being put up
        await ui.settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmDialog)
