"""Small things users read: counts in the singular, a version picker without a blank
entry, and a status column that gets the spare width."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Select

from sdlib.formatting import plural
from sdlib.sources.civitai import RecommendedSettings
from sdlib.tui.widgets.model_detail import ModelDetail, recommended_text
from sdlib.tui.widgets.results import ResultsTable
from tests.tui.test_library import CKPT, library

__all__ = ["library"]


def test_counts_are_singular_for_one() -> None:
    one = RecommendedSettings(sampler="Euler a", steps=20, samples=1)
    assert recommended_text(one).endswith("(from 1 image)")
    three = RecommendedSettings(sampler="Euler a", steps=20, samples=3)
    assert recommended_text(three).endswith("(from 3 images)")
    assert plural(1, "operation") == "1 operation" and plural(2, "operation") == "2 operations"
    assert plural(0, "file") == "0 files"


@pytest.mark.anyio
async def test_the_version_picker_has_no_blank_entry(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        table = app.screen.query_one(ResultsTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        table.move_cursor(row=names.index("Retro Anime Style (LoHa)"))
        await pilot.press("enter")
        await ui.settle(pilot)
        versions = app.screen.query_one(ModelDetail).query_one("#versions", Select)
        # The demo catalogue's two versions of model 7371, newest first; nothing else.
        assert [v for _, v in versions._options] == [8217, 8100]
        assert versions.value == 8217


@pytest.mark.anyio
async def test_the_status_column_takes_the_spare_width(
    make_app: Any, library: Path, ui: Any
) -> None:
    # add_detail is a LoRA in the checkpoint folder (misplaced) and now also sits, byte for
    # byte, in the LoRA folder (a duplicate): its status is longer than the 16-cell minimum.
    lora = library / "models" / "Lora"
    lora.mkdir(parents=True)
    shutil.copyfile(library / CKPT / "add_detail.safetensors", lora / "add_detail.safetensors")
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("3")
        table = app.screen.query_one("#library-table", DataTable)
        await ui.until(pilot, lambda: table.row_count == 5, what="the scan")
        await ui.settle(pilot)
        statuses = [str(table.get_row_at(i)[4]) for i in range(table.row_count)]
        assert "misplaced, duplicate" in statuses  # whole, not "misplaced, dupl…"
        assert table.columns["status"].width >= len("misplaced, duplicate")  # type: ignore[index]
