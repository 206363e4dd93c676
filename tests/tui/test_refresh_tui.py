"""A download finished in the TUI asks the running webUIs ([webui.NAME]) to rescan the list
the new file is in, as `sdlib download` does, and says how it went in a notification."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from sdlib.config import Settings, WebuiSettings
from sdlib.tui.downloads import JobState
from sdlib.tui.screens.dialogs import DownloadDialog
from tests.support.fake_webui import FakeWebui, closed_port_url

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # a real download and a fake webUI


async def download_first_result(pilot: Pilot[Any], ui: Any, query: str) -> Any:
    """Search, open the first result, press d, take the primary file; wait for the job."""
    app = pilot.app
    app.screen.query_one("#query", Input).value = query
    await pilot.press("slash", "enter")
    await ui.settle(pilot)
    await pilot.press("enter")
    await ui.settle(pilot)
    await pilot.press("d")
    await ui.until(pilot, lambda: isinstance(app.screen, DownloadDialog), what="dialog")
    await ui.settle(pilot)
    await pilot.press("enter")
    await ui.until(pilot, lambda: [j.state for j in app.downloads] in ([JobState.DONE],
                   [JobState.FAILED]), what="the download")  # fmt: skip
    [job] = list(app.downloads)
    assert job.state is JobState.DONE, job.message
    return job


def refresh_notes(app: Any) -> list[str]:
    return [n for n in ui_notes(app) if n.startswith("webUI refresh: ")]


def ui_notes(app: Any) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_a_lora_downloaded_in_the_tui_refreshes_loras(
    make_app: Any, settings: Settings, webui: Path, ui: Any
) -> None:
    with FakeWebui(login=("me", "pw")) as fake:
        webuis = (WebuiSettings("forge", fake.url, "forge", "me", "pw"),)
        app = make_app(replace(settings, webuis=webuis))
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.settle(pilot)
            job = await download_first_result(pilot, ui, "detail tweaker")
            assert job.result.path.parent == webui / "models" / "Lora"
            await ui.until(pilot, lambda: bool(refresh_notes(app)), what="the refresh note")
            [note] = refresh_notes(app)
    assert fake.calls == ["POST /sdapi/v1/refresh-loras"]
    assert [s.authorization for s in fake.seen] == [fake.basic()]
    assert note == f"webUI refresh: webui forge ({fake.url}): refreshed LoRAs"


async def test_a_webui_that_is_down_is_a_warning_and_the_download_stays_done(
    make_app: Any, settings: Settings, ui: Any
) -> None:
    url = closed_port_url()
    app = make_app(replace(settings, webuis=(WebuiSettings("a1111", url, "a1111"),)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        job = await download_first_result(pilot, ui, "detail tweaker")
        await ui.until(pilot, lambda: bool(refresh_notes(app)), what="the refresh note")
        [note] = [n for n in app._notifications if n.title == "webUI refresh"]
        assert job.state is JobState.DONE
    assert note.severity == "warning" and "not running" in note.message
