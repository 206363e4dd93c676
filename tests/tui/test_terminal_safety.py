"""The TUI never hands a server's escape sequences, C1 controls or bidi overrides to the
terminal: a hostile model name, creator, version, file name and description show clean."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Markdown

from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.tui.app import SdlibApp
from sdlib.tui.screens.dialogs import MessageDialog
from sdlib.tui.services import TuiOptions
from sdlib.tui.widgets.results import ResultsTable

from .conftest import tui_settings

pytestmark = pytest.mark.anyio
HOSTILE = "Detail \x1b]0;pwned\x07Tweaker\x1b[2J \x9b31mred \u202egpj.exe\u2066x"
BAD = ("\x1b", "\x9b", "\x9d", "\x07", "\u202e", "\u2066")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    lora = next(m for m in CATALOGUE if m.id == 58390)
    version = replace(lora.versions[0], name="v1\x1b[1A\x1b[2K", trained_words=("w\x1b]2;t\x07",))
    model = replace(lora, name=HOSTILE, creator="Ly\x9b2Jkon",
                    description=f"<p>{HOSTILE}</p>", versions=(version,))  # fmt: skip
    with DemoServer(tmp_path_factory.mktemp("hostile"), catalogue=(model,)) as server:
        yield server


def shown(app: Any) -> str:
    """Every character the compositor would send for the current screen (styles aside)."""
    return "".join(seg.text for strip in app.screen._compositor.render_strips() for seg in strip)


def assert_clean(text: str) -> None:
    for ch in BAD:
        assert ch not in text, (ch, text)


async def test_hostile_names_render_clean(
    hostile: DemoServer, home: Path, webui: Path, ui: Any
) -> None:
    app = SdlibApp(tui_settings(hostile, home), options=TuiOptions(previews="off", detail_delay=0))
    async with app.run_test(size=(140, 44)) as pilot:
        await ui.settle(pilot)
        table = app.screen.query_one(ResultsTable)
        assert table.row_count == 1
        assert_clean(shown(app))
        assert "Detail Tweaker" in ui.text(app)
        await pilot.press("enter")
        await ui.settle(pilot)
        text = shown(app)
        assert_clean(text)
        assert "Lykon" in text and "gpj.exe" in text
        markdown = app.screen.query_one("#description", Markdown)
        assert_clean(markdown.source)
        assert "Tweaker" in markdown.source
        app.notify(HOSTILE, title="t\x1b[2J")
        app.push_screen(MessageDialog(HOSTILE, f"body {HOSTILE}"))
        await ui.settle(pilot)
        assert_clean(shown(app))
        for line in ui.notifications(app):
            assert_clean(line)
