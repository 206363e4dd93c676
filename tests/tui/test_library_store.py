"""The Library screen and the shared store: which webUIs see each file (a column and the
detail pane, filled in after the table), and dedupe with its undo, on real folders and
links made here."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from sdlib.config import Settings, StoreSettings
from sdlib.demo.server import DemoServer
from sdlib.formatting import human_size
from sdlib.services import Context
from sdlib.services.store import link_store
from sdlib.store.tree import init_tree
from sdlib.tui.screens.dialogs import ConfirmDialog
from sdlib.tui.screens.library import LibraryScreen
from tests.support.trees import comfyui, st
from tests.tui.test_library import CKPT, put, rows

pytestmark = pytest.mark.anyio


def seen_cell(app: Any, path: Path) -> str | None:
    """The "seen by" cell of the row of ``path`` (None: no such column or row)."""
    table = app.screen.query_one("#library-table", DataTable)
    keys = [str(c.key.value) for c in table.ordered_columns]
    if "seen" not in keys or str(path) not in table.rows:
        return None
    return str(table.get_row(str(path))[keys.index("seen")])


async def open_library(pilot: Any, ui: Any, count: int) -> LibraryScreen:
    await ui.settle(pilot)
    await pilot.press("3")
    await ui.until(pilot, lambda: len(rows(pilot.app)) == count, what="the scan")
    screen = pilot.app.screen
    assert isinstance(screen, LibraryScreen)
    return screen


@pytest.mark.skipif(os.name == "nt", reason="symlinks need admin rights or Developer Mode")
async def test_files_of_a_store_linked_into_two_webuis_say_so(
    make_app: Any, settings: Settings, home: Path, webui: Path, civitai: DemoServer, ui: Any
) -> None:
    store, _ = init_tree(home / "store", adopt=False)
    st(store / "Lora" / "shared lora.safetensors", "lora_sd15_kohya", small=True)
    put(civitai, 128713_1, webui / CKPT / "own.safetensors")
    comfy = comfyui(home / "ComfyUI")
    settings = replace(settings, store=StoreSettings(str(store)))
    with Context(settings) as ctx:
        link_store(ctx, webui, "a1111", method="symlink")
        link_store(ctx, comfy, "comfyui", method="config")
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui, 2)
        shared = webui / "models" / "Lora" / "sdlib-store" / "shared lora.safetensors"
        await ui.until(pilot, lambda: seen_cell(app, shared) is not None, what="seen by")
        assert seen_cell(app, shared) == "A1111, ComfyUI (store)"
        assert seen_cell(app, webui / CKPT / "own.safetensors") == ""  # a plain file of its own

        table = app.screen.query_one("#library-table", DataTable)
        table.move_cursor(row=table.get_row_index(str(shared)))
        await ui.settle(pilot)
        text = ui.text(app)
        assert "seen by: A1111 through the shared store" in text
        assert "ComfyUI through the shared store" in text


async def test_dedupe_shows_the_plan_applies_it_and_undoes_it(
    make_app: Any, webui: Path, civitai: DemoServer, ui: Any
) -> None:
    one = put(civitai, 128713_1, webui / CKPT / "dreamshaper.safetensors")
    two = put(civitai, 128713_1, webui / CKPT / "copies" / "dreamshaper (copy).safetensors")
    original = one.read_bytes()
    assert not os.path.samefile(one, two)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui, 2)
        await ui.settle(pilot)
        # The scan hashed both (same size: a possible duplicate): a separate copy.
        await ui.until(pilot, lambda: seen_cell(app, one) is not None, what="seen by")
        assert seen_cell(app, one) == seen_cell(app, two) == "A1111 (copy)"

        await pilot.press("d")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the plan")
        assert f"Dedupe: 1 copy, {human_size(len(original))} reclaimable" in ui.text(app)
        body = app.screen._body  # the dialog's text, unwrapped
        names = [str(p.relative_to(webui)) for p in (one, two)]
        kept = [n for n in names if f"keep  A1111 {n} (" in body]
        linked = [n for n in names if f"link  A1111 {n} (" in body]
        assert len(kept) == len(linked) == 1 and kept != linked  # one stays, one is linked
        assert f"D here, or `sdlib dedupe --undo {webui}`" in body
        await pilot.press("y")
        await ui.until(pilot, lambda: os.path.samefile(one, two), what="the link")
        await ui.until(pilot, lambda: seen_cell(app, one) == "A1111 (hardlink)",
                       what="the refreshed table")  # fmt: skip
        assert seen_cell(app, two) == "A1111 (hardlink)"
        assert one.read_bytes() == two.read_bytes() == original

        await pilot.press("D")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the undo")
        assert "sdlib dedupe --undo" in ui.text(app)
        await pilot.press("y")
        await ui.until(pilot, lambda: not os.path.samefile(one, two), what="separate files")
        await ui.until(pilot, lambda: seen_cell(app, one) == "A1111 (copy)",
                       what="copies again")  # fmt: skip
        assert one.read_bytes() == two.read_bytes() == original
        assert os.stat(one).st_nlink == os.stat(two).st_nlink == 1


async def test_undo_with_nothing_deduped_says_so(make_app: Any, webui: Path, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui, 0)
        await ui.settle(pilot)
        await pilot.press("D")
        await ui.until(pilot, lambda: any("no dedupe" in n for n in ui.notifications(app)))


async def test_the_table_is_drawn_before_who_sees_what_is_known(
    make_app: Any, webui: Path, civitai: DemoServer, ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sdlib.services import seen

    one = put(civitai, 128713_1, webui / CKPT / "one.safetensors")
    put(civitai, 128713_1, webui / CKPT / "two.safetensors")
    gate = threading.Event()
    real = seen.seen_by

    def slow(*args: Any, **kwargs: Any) -> Any:
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(seen, "seen_by", slow)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui, 2)  # both rows, while the answer is held back
        assert seen_cell(app, one) is None
        await ui.until(pilot, lambda: "seen by: …" in ui.text(app), what="the detail pane")
        assert seen_cell(app, one) is None
        gate.set()
        await ui.until(pilot, lambda: seen_cell(app, one) == "A1111 (copy)", what="seen by")
        assert "seen by: A1111 a separate copy" in ui.text(app)
