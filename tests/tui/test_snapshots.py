"""SVG snapshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic by construction: the demo server's catalogue has fixed dates, sizes and
hashes; HOME is a temporary folder so paths read ``~/webui``; previews are off (a fixed
placeholder); the cursor does not blink; notifications are cleared before the shot.
Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from sdlib.tui.downloads import JobState

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

Before = Callable[[Pilot[Any]], Awaitable[None]]


def steps(ui: Any, *actions: Callable[[Pilot[Any]], Awaitable[None]]) -> Before:
    async def run(pilot: Pilot[Any]) -> None:
        await ui.settle(pilot)
        for action in actions:
            await action(pilot)
            await ui.settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run


def open_model(ui: Any, row: int) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#results", DataTable).move_cursor(row=row)
        await ui.settle(pilot)
        await pilot.press("enter")

    return run


def download(ui: Any, model_id: int | str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Queue the primary file of a model's newest version and wait until it ends.

    (The search -> open -> d -> enter path is what test_downloads.py drives; here only
    the resulting screen matters.)"""

    async def run(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        model, version = await asyncio.to_thread(app.services.civitai.lookup, str(model_id))
        app.queue_download(model, version, version.primary_file.id)
        await ui.until(
            pilot, lambda: all(j.state in (JobState.DONE, JobState.FAILED) for j in app.downloads)
        )

    return run


def press(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await pilot.press(*keys)

    return run


@pytest.mark.parametrize("size", SIZES)
def test_browse(snap_compare: Any, make_app: Any, ui: Any, size: tuple[int, int]) -> None:
    """The results, with DreamShaper open in the detail pane."""
    assert snap_compare(make_app(), terminal_size=size, run_before=steps(ui, open_model(ui, 1)))


@pytest.mark.parametrize("size", SIZES)
def test_downloads(snap_compare: Any, make_app: Any, ui: Any, size: tuple[int, int]) -> None:
    """One finished download and one refused for early access."""
    before = steps(ui, download(ui, 4384), download(ui, "4201@245598"), press("2"))
    assert snap_compare(make_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_library(snap_compare: Any, make_app: Any, ui: Any, size: tuple[int, int]) -> None:
    """The downloaded model, identified, with its classification evidence."""
    before = steps(ui, download(ui, 4384), press("3"))
    assert snap_compare(make_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_settings(snap_compare: Any, make_app: Any, ui: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=steps(ui, press("4")))


def test_help(snap_compare: Any, make_app: Any, ui: Any) -> None:
    before = steps(ui, press("question_mark"))
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before)
