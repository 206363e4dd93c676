"""The Library screen on a real webUI folder: filters, evidence, and every action."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Select

from sdlib.demo.server import DemoServer
from sdlib.tui.screens.dialogs import ConfirmDialog, MessageDialog
from sdlib.tui.screens.library import LibraryScreen

pytestmark = pytest.mark.anyio

CKPT = "models/Stable-diffusion"


def put(server: DemoServer, file_id: int, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    served = server.files[file_id]
    assert served.path is not None
    shutil.copyfile(served.path, dest)
    return dest


@pytest.fixture
def library(civitai: DemoServer, webui: Path) -> Path:
    """DreamShaper 7 and 8, a .ckpt, and a LoRA put in the checkpoint folder by mistake."""
    put(civitai, 128713_1, webui / CKPT / "dreamshaper_8.safetensors")
    put(civitai, 109123_1, webui / CKPT / "dreamshaper_7.safetensors")
    put(civitai, 128713_2, webui / CKPT / "dreamshaper_8.ckpt")
    put(civitai, 62833_1, webui / CKPT / "add_detail.safetensors")
    return webui


def rows(app: Any) -> dict[str, list[str]]:
    table = app.screen.query_one("#library-table", DataTable)
    out = {}
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        out[cells[0]] = cells
    return out


def notified(app: Any, text: str) -> bool:
    return any(text in f"{n.title}: {n.message}" for n in app._notifications)


def civitai_name(app: Any, name: str) -> str:
    row = rows(app).get(name)
    return row[5] if row else ""


async def open_library(pilot: Pilot[Any], ui: Any) -> LibraryScreen:
    await ui.settle(pilot)
    await pilot.press("3")
    screen = pilot.app.screen
    assert isinstance(screen, LibraryScreen)
    await ui.until(pilot, lambda: len(rows(pilot.app)) == 4, what="the scan")
    await ui.settle(pilot)
    return screen


async def select(pilot: Pilot[Any], ui: Any, name: str) -> None:
    table = pilot.app.screen.query_one("#library-table", DataTable)
    names = list(rows(pilot.app))
    table.move_cursor(row=names.index(name))
    await ui.settle(pilot)


async def test_table_filters_and_evidence(make_app: Any, library: Path, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_library(pilot, ui)
        table = rows(app)
        assert table["dreamshaper_8.safetensors"][1:3] == ["checkpoint", "sd1"]
        assert table["dreamshaper_8.ckpt"][1:3] == ["checkpoint", "sd1"]
        assert table["add_detail.safetensors"][1] == "lora"
        assert "misplaced" in table["add_detail.safetensors"][4]

        screen.query_one("#lib-kind", Select).value = "lora"
        await ui.settle(pilot)
        assert list(rows(app)) == ["add_detail.safetensors"]
        screen.query_one("#lib-kind", Select).value = Select.NULL
        screen.query_one("#lib-status", Select).value = "problems"
        await ui.settle(pilot)
        assert list(rows(app)) == ["add_detail.safetensors"]
        text = ui.text(app)
        assert "belongs in: ~/webui/models/Lora" in text
        assert "LoRA: lora, rank 4" in text  # the classification's evidence
        screen.query_one("#lib-status", Select).value = Select.NULL
        await ui.settle(pilot)

        await select(pilot, ui, "dreamshaper_8.ckpt")
        text = ui.text(app)
        assert "classification: checkpoint · sd1" in text and "pickle scan: safe" in text


async def test_identify_verify_and_updates(make_app: Any, library: Path, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_7.safetensors")
        await pilot.press("v")
        # Same size as dreamshaper_8 (a possible duplicate), so the scan hashed it already.
        # (`sdlib verify`'s words since the TUI runs its check: every reference, named.)
        await ui.until(pilot, lambda: notified(app, "matches the library index (an earlier scan)"))

        await pilot.press("I")  # identify every file
        await ui.until(pilot, lambda: civitai_name(app, "dreamshaper_7.safetensors")
                       == "DreamShaper 7", what="identified")  # fmt: skip
        assert civitai_name(app, "add_detail.safetensors").startswith("Detail Tweaker")
        await ui.settle(pilot)
        await select(pilot, ui, "dreamshaper_7.safetensors")
        await pilot.press("v")
        await ui.until(pilot, lambda: notified(app, "matches Civitai's published SHA256"))

        await pilot.press("u")
        await ui.until(pilot, lambda: isinstance(app.screen, MessageDialog), what="report")
        text = ui.text(app)
        assert "1 update available" in text
        assert "↑ dreamshaper_7.safetensors: DreamShaper 7 → 8" in text
        assert "✓ dreamshaper_8.safetensors: up to date" in text


async def test_a_corrupted_file_fails_verification(make_app: Any, library: Path, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_8.safetensors")
        await pilot.press("i")
        await ui.settle(pilot)
        model = library / CKPT / "dreamshaper_8.safetensors"
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF  # a flipped bit in the tensor data: same size, other hash
        model.write_bytes(bytes(data))
        await pilot.press("v")
        await ui.settle(pilot)
        assert any(
            "hash mismatch" in n and "differs from Civitai" in n for n in ui.notifications(app)
        )


async def test_verify_is_sdlib_verify_and_keeps_the_cached_hash_of_a_damaged_file(
    make_app: Any, library: Path, settings: Any, ui: Any
) -> None:
    """The Library's verify is `sdlib verify`'s check (one implementation): a file whose
    bytes rotted in place (same size and time) is a mismatch, and the hash cache keeps the
    SHA256 it had, so a later `sdlib verify` still sees the difference. The TUI had its own
    verify, which stored the damaged file's hashes over the good ones."""
    import hashlib

    from sdlib.services import Context
    from sdlib.services.verify import verify_paths

    model = library / CKPT / "dreamshaper_7.safetensors"
    good = hashlib.sha256(model.read_bytes()).hexdigest().upper()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_7.safetensors")
        await pilot.press("v")  # hashed by the scan (same size as dreamshaper_8): cached
        await ui.until(pilot, lambda: notified(app, "matches"), what="the first verify")
        st = model.stat()
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF  # bit rot: same size, and the time put back
        model.write_bytes(bytes(data))
        os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
        await pilot.press("v")
        await ui.until(pilot, lambda: notified(app, "hash mismatch"), what="the mismatch")
        (said,) = [n for n in ui.notifications(app) if "hash mismatch" in n]
        assert "differs from the library index (an earlier scan); the hash cache" in said
    with Context(settings) as ctx:
        cached = ctx.hashes.lookup(model)
        assert cached is not None and cached.sha256.upper() == good
        (check,) = verify_paths(ctx, [model]).files  # what `sdlib verify FILE` runs
    assert check.state == "mismatch" and "hash-cache" in check.mismatched


async def test_organize_shows_the_plan_applies_it_and_undoes_it(
    make_app: Any, library: Path, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await pilot.press("o")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the plan")
        text = ui.text(app)
        assert "Organize: 1 mkdir, 1 move" in text
        assert "move   models/Stable-diffusion/add_detail.safetensors →" in text
        assert "models/Lora/add_detail.safetensors" in text and "content is a lora" in text
        await pilot.press("y")
        await ui.until(pilot, lambda: isinstance(app.screen, LibraryScreen), what="closed")
        await ui.settle(pilot)
        assert (library / "models" / "Lora" / "add_detail.safetensors").is_file()
        assert not (library / CKPT / "add_detail.safetensors").exists()
        assert "misplaced" not in rows(app)["add_detail.safetensors"][4]

        await pilot.press("ctrl+z")
        await ui.settle(pilot)
        await ui.settle(pilot)
        assert (library / CKPT / "add_detail.safetensors").is_file()
        assert "misplaced" in rows(app)["add_detail.safetensors"][4]


async def test_organize_finishes_an_interrupted_run_as_sdlib_organize_apply_does(
    make_app: Any, library: Path, settings: Any, ui: Any
) -> None:
    """An organize run that stopped half way (its journal still "applying") is finished by
    the Library's organize, as `sdlib organize --apply` finishes it, and the dialog says so
    before anything moves. (The TUI once refused such a run; then it showed a fresh plan
    and applied the old run instead without a word, or said "in order" and left it.)"""
    from sdlib.library.organize import Journal, journal_dir
    from sdlib.services import Context
    from sdlib.services.library import organize_plan, scan

    lora = library / "models" / "Lora" / "add_detail.safetensors"
    misplaced = library / CKPT / "add_detail.safetensors"
    with Context(settings) as ctx:
        plan = organize_plan(ctx, scan(ctx, library, ui="a1111"))
        # The run began (its journal written) and stopped before its first step.
        journal = Journal.create(journal_dir(settings.data_dir), plan.header())
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await pilot.press("o")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the plan")
        text = ui.text(app)
        assert "An earlier organize run on this folder was interrupted" in text
        assert misplaced.is_file() and not lora.exists()  # nothing moves before a yes
        await pilot.press("y")
        await ui.until(pilot, lambda: notified(app, "interrupted organize run was finished"),
                       what="the run to finish")  # fmt: skip
        await ui.settle(pilot)
        assert lora.is_file() and not misplaced.exists()
        assert Journal.load(journal.path).state == "complete"


async def test_organize_offers_to_finish_a_run_whose_moves_were_all_made(
    make_app: Any, library: Path, settings: Any, ui: Any
) -> None:
    """A run stopped after its last move but before its journal said so: a new plan is
    empty, yet the run is unfinished; the TUI offers to finish it (it said "in order")."""
    from sdlib.library.organize import Journal, journal_dir
    from sdlib.services import Context
    from sdlib.services.library import organize_plan, scan

    lora = library / "models" / "Lora" / "add_detail.safetensors"
    with Context(settings) as ctx:
        plan = organize_plan(ctx, scan(ctx, library, ui="a1111"))
        journal = Journal.create(journal_dir(settings.data_dir), plan.header())
    lora.parent.mkdir(parents=True)
    (library / CKPT / "add_detail.safetensors").rename(lora)  # the moves, by hand
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await pilot.press("o")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the offer")
        assert "An earlier organize run on this folder was interrupted" in ui.text(app)
        await pilot.press("y")
        await ui.until(pilot, lambda: notified(app, "interrupted organize run was finished"),
                       what="the run to finish")  # fmt: skip
        await ui.settle(pilot)
    assert Journal.load(journal.path).state == "complete" and lora.is_file()


async def test_convert_writes_safetensors_beside_the_pickle(
    make_app: Any, library: Path, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_8.safetensors")
        await pilot.press("s")  # not a pickle: nothing to convert
        assert not isinstance(app.screen, ConfirmDialog)
        await select(pilot, ui, "dreamshaper_8.ckpt")
        await pilot.press("s")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await ui.settle(pilot)
        await ui.until(pilot, lambda: len(rows(app)) == 5, what="the new file")
        # dreamshaper_8.safetensors exists already: the copy takes another name
        made = rows(app)["dreamshaper_8.converted.safetensors"]
        assert made[1:3] == ["checkpoint", "sd1"]
        assert any(
            "dreamshaper_8.converted.safetensors: 717 tensors" in n for n in ui.notifications(app)
        ), ui.notifications(app)


async def test_trash_moves_the_file_and_its_sidecars(
    make_app: Any, library: Path, home: Path, ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import send2trash
    import send2trash.plat_other as freedesktop

    if send2trash.send2trash.__module__ != "send2trash.plat_other":
        pytest.skip("this platform's trash cannot be pointed at a temporary folder")
    # The system trash, but a private one: never the user's (HOME is a tmp folder here).
    data = home / ".local" / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(freedesktop, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(freedesktop, "HOMETRASH_B", os.fsencode(data / "Trash"))
    model = library / CKPT / "dreamshaper_7.safetensors"
    model.with_name("dreamshaper_7.civitai.info").write_text("{}")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_7.safetensors")
        await pilot.press("t")
        await ui.until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        assert "dreamshaper_7.civitai.info" in ui.text(app)
        await pilot.press("y")
        await ui.until(pilot, lambda: len(rows(app)) == 3, what="the row to go")
        assert not model.exists()
        trashed = data / "Trash" / "files"
        assert (trashed / "dreamshaper_7.safetensors").is_file()
        assert (trashed / "dreamshaper_7.civitai.info").is_file()
        assert not (library / ".sdlib-trash").exists()
        assert any("the system trash" in n for n in ui.notifications(app))


async def test_no_webui_folder_says_what_to_do(make_app: Any, settings: Any, ui: Any) -> None:
    from dataclasses import replace

    app = make_app(replace(settings, library=replace(settings.library, root=None)))
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        await pilot.press("3")
        await ui.settle(pilot)
        assert "no webUI folder is set: choose one in Settings" in ui.text(app)
