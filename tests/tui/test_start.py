"""What the first frame waits for, and what waits for it (issue 20: no bench regresses).

Work held back from start-up must still happen: the first search runs once the first frame
is on screen, the Hub's filters appear when the Hub is chosen. And a new page of results
leaves the detail pane where it is instead of closing and reopening it (each class change
restyles the whole screen, in the path from a search's answer to the rendered table)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.message import Message
from textual.widgets import Select

from sdlib.config import HuggingfaceSettings, Settings
from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.tui.screens.dialogs import DownloadDialog
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

pytestmark = pytest.mark.anyio


def names(app: Any) -> list[str]:
    table = app.screen.query_one(ResultsTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def test_what_the_first_frame_does_not_need_is_not_imported_at_start() -> None:
    """Markdown (markdown-it and its rules, ~70 ms) is for the detail pane, the dialogs for
    later keys: neither is imported with the app."""
    code = (
        "import sys, sdlib.cli.tui_cmd, sdlib.tui.app\n"
        "print(sorted(m for m in ('markdown_it', 'textual.widgets._markdown',\n"
        "                         'sdlib.tui.screens.dialogs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_the_first_search_starts_once_the_first_frame_is_shown(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    """Its thread imports the HTTP stack and connects: started before the first paint it
    took the interpreter from it. It must still run, by itself, right after."""
    app = make_app()
    searches_at_first_frame: list[int] = []

    def hook(message: Message) -> None:
        if isinstance(message, events.Ready):  # Textual: the first frame has been displayed
            searches_at_first_frame.append(sum(1 for w in app.workers if w.group == "search"))

    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await ui.until(pilot, lambda: len(names(app)) > 0, what="the first page")
        await ui.settle(pilot)
        assert searches_at_first_frame == [0]
        # The demo catalogue's models, as Civitai's default search (NSFW off) lists them.
        assert set(names(app)) <= {m.name for m in CATALOGUE}
        assert "DreamShaper" in names(app)
        assert any(r.path.startswith("/api/v1/models?") for r in civitai.requests)


async def test_the_hubs_filters_are_mounted_when_the_hub_is_first_chosen(
    make_app: Any, settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(replace(settings, huggingface=HuggingfaceSettings(endpoint=civitai.hub_url)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        screen = app.screen
        assert not screen.query_one("#hub-filters").children  # not built for the first frame
        await pilot.press("s")
        await ui.settle(pilot)
        selects = list(screen.query_one("#hub-filters").query(Select))
        assert [s.id for s in selects] == ["hub-type", "hub-base", "hub-sort"]
        assert screen.query_one("#hub-sort", Select).value == "downloads"
        assert all(s.region for s in selects)  # shown
        screen.query_one("#hub-sort", Select).value = "likes"
        await ui.settle(pilot)
        hub_search = [r.path for r in civitai.requests if r.path.startswith("/api/models?")]
        assert "sort=likes" in hub_search[-1]
        # Back to Civitai and to the Hub again: the same selects, with the user's choice.
        await pilot.press("s")
        await ui.settle(pilot)
        await pilot.press("s")
        await ui.settle(pilot)
        assert list(screen.query_one("#hub-filters").query(Select)) == selects
        assert screen.query_one("#hub-sort", Select).value == "likes"


async def test_new_results_keep_the_detail_pane_open_and_blank_until_the_next_model(
    make_app: Any, ui: Any
) -> None:
    """The pane stays (no close and reopen a moment later), shows nothing of the model the
    old results had, and d offers the model now highlighted."""
    app = make_app(detail_delay=60.0)  # the highlighted model is shown only on request
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("down", "enter")  # DreamShaper's detail
        await ui.settle(pilot)
        screen = app.screen
        detail = screen.query_one(ModelDetail)
        assert detail.model is not None and detail.model.name == "DreamShaper"
        assert detail.display
        await pilot.press("slash", *"retro", "enter")
        await ui.settle(pilot)
        assert names(app) and "DreamShaper" not in names(app)
        assert detail.display and screen.has_class("-has-detail")  # still open
        assert detail.model is None and "DreamShaper" not in ui.text(app)  # and blank
        highlighted = names(app)[0]
        await pilot.press("d")
        await ui.settle(pilot)
        assert isinstance(app.screen, DownloadDialog)
        assert detail.model is not None and detail.model.name == highlighted
        await pilot.press("escape")
        await ui.settle(pilot)
        assert list(app.downloads) == []


async def test_drawing_results_does_not_ask_the_os_for_the_terminal_size(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, ui: Any
) -> None:
    """Rich's console asked for each cell measured or drawn (600 times for a page of 100
    results); the app knows its size and tells the console."""
    import os

    app = make_app(page_size=100)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        asked: list[int] = []
        real = os.get_terminal_size

        def get_terminal_size(fd: int = 1) -> os.terminal_size:
            asked.append(fd)
            return real(fd)

        monkeypatch.setattr(os, "get_terminal_size", get_terminal_size)
        await pilot.press("slash", "enter")  # the same search again: every row drawn anew
        await ui.settle(pilot)
        assert len(names(app)) > 5 and not asked
        assert app.console.size == (120, 40)
        await pilot.resize_terminal(100, 30)
        await ui.settle(pilot)
        assert app.console.size == (100, 30)


def test_sdlib_tui_starts_without_the_cyclic_collector_until_the_first_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ui: Any
) -> None:
    """Start-up objects live as long as the app: not collected while they are made, frozen
    once the first frame is drawn (later collections skip them), the collector on again."""
    import asyncio
    import gc

    from click.testing import CliRunner

    import sdlib.cli.tui_cmd
    from sdlib.cli import main
    from sdlib.tui.app import SdlibApp

    seen: dict[str, Any] = {}

    async def drive(app: SdlibApp) -> None:
        seen["collector at start"] = gc.isenabled()
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.settle(pilot)
            seen["collector after the first frame"] = gc.isenabled()
            seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(SdlibApp, "run", lambda self, *a, **k: asyncio.run(drive(self)))
    monkeypatch.setattr(sdlib.cli.tui_cmd, "_leave", lambda code: None)
    monkeypatch.setenv("SDLIB_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("SDLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SDLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SDLIB_CIVITAI_URL", "http://127.0.0.1:9")  # nothing listens
    try:
        result = CliRunner().invoke(main, ["tui", "--previews", "off"])
        assert result.exit_code == 0, result.output
        assert seen["collector at start"] is False
        assert seen["collector after the first frame"] is True and seen["frozen"] > 10_000
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
