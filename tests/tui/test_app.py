"""The app shell: screens by number, help from the bindings, a palette entry per action,
errors as notifications, and the CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner
from textual.binding import Binding

from sdlib.tui.app import SdlibApp
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.screens.browse import BrowseScreen
from sdlib.tui.screens.downloads import DownloadsScreen
from sdlib.tui.screens.help import HelpScreen
from sdlib.tui.screens.library import LibraryScreen
from sdlib.tui.screens.settings import SettingsScreen

pytestmark = pytest.mark.anyio

SCREENS: tuple[type[SdlibScreen], ...] = (
    BrowseScreen,
    DownloadsScreen,
    LibraryScreen,
    SettingsScreen,
)


async def test_number_keys_switch_screens_and_the_nav_bar_follows(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        for key, cls in zip(
            "2341", (DownloadsScreen, LibraryScreen, SettingsScreen, BrowseScreen), strict=True
        ):
            await pilot.press(key)
            await ui.settle(pilot)
            assert isinstance(app.screen, cls)
            current = app.screen.query_one(".tab.-current")
            assert str(current.render()).split()[0] == key


async def test_help_lists_every_binding_of_every_screen(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = "\n".join(str(s.render()) for s in app.screen.query(".help-keys"))
        bindings = [*SdlibApp.BINDINGS] + [b for cls in SCREENS for b in cls.BINDINGS]
        for b in bindings:
            assert isinstance(b, Binding)
            assert b.description in body, b.description
        await pilot.press("escape")
        assert isinstance(app.screen, BrowseScreen)


async def test_every_screen_action_is_in_the_command_palette(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        for key, cls in zip("1234", SCREENS, strict=True):
            await pilot.press(key)
            await ui.settle(pilot)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for b in cls.BINDINGS:
                assert isinstance(b, Binding)
                assert f"{cls.MODE.title()}: {b.description}" in titles
            assert {
                "Go to Browse",
                "Go to Downloads",
                "Go to Library",
                "Go to Settings",
                "Help",
                "Quit",
                "Theme",
            } <= set(titles)


async def test_a_palette_command_runs_its_action(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        [command] = [c for c in app.get_system_commands(app.screen) if c.title == "Browse: Search"]
        app.call_later(command.callback)
        await ui.settle(pilot)
        assert app.focused is not None and app.focused.id == "query"


async def test_light_theme_keeps_the_layout(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        dark = ui.text(app)
        app.theme = "textual-light"
        await ui.settle(pilot)
        assert ui.text(app) == dark  # same words in the same places; only colours change


async def test_an_unexpected_worker_error_is_a_notification(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        screen = app.screen

        def broken() -> None:
            raise RuntimeError("boom")

        screen.run_worker(broken, thread=True, exit_on_error=False)
        await ui.settle(pilot)
        assert any("RuntimeError: boom" in n for n in ui.notifications(app))
        assert app.is_running


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_tui_help_shows_keys_and_loads_no_textual() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from sdlib.cli import main;"
        "r = CliRunner().invoke(main, ['tui', '--help']); print(r.exit_code);"
        "print('textual' in sys.modules); print(r.output)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    exit_code, loaded, help_text = out.split("\n", 2)
    assert exit_code == "0" and loaded == "False"
    words = " ".join(help_text.split())
    assert "--previews" in words and "ctrl+p command palette" in words


def test_tui_command_builds_the_app_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``sdlib tui --root --ui`` reaches the app (run() replaced: no terminal here)."""
    from sdlib.cli import main

    seen: dict[str, Any] = {}

    def fake_run(self: SdlibApp, *args: Any, **kwargs: Any) -> None:
        seen["settings"] = self.services.settings
        seen["options"] = self.services.options

    import sdlib.cli.tui_cmd

    monkeypatch.setattr(SdlibApp, "run", fake_run)
    monkeypatch.setattr(sdlib.cli.tui_cmd, "_leave", lambda code: None)
    monkeypatch.setenv("SDLIB_CONFIG", str(tmp_path / "config.toml"))
    root = tmp_path / "webui"
    root.mkdir()
    result = CliRunner().invoke(
        main, ["tui", "--root", str(root), "--ui", "comfyui", "--previews", "off"]
    )
    assert result.exit_code == 0, result.output
    assert seen["settings"].library.root == str(root)
    assert seen["settings"].library.ui == "comfyui"
    assert seen["options"].previews == "off"


async def test_quit_asks_while_downloads_run(make_app: Any, civitai: Any, ui: Any) -> None:
    import asyncio

    from sdlib.tui.screens.dialogs import ConfirmDialog

    civitai.rate_limit = 256 << 10
    app: Any = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        model, version = await asyncio.to_thread(app.services.civitai.lookup, "4384@128713")
        app.queue_download(model, version, version.files[2].id)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmDialog)
        assert "1 download is not finished" in ui.text(app)
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmDialog)
        await pilot.press("ctrl+q")
        # (a key typed before the dialog is up is no answer: wait for it, as a user does)
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="dialog")
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running
    job = next(iter(app.downloads))
    assert job.cancel.is_set()  # told to stop at its next write; the part file stays
