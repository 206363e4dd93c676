"""The root is a wall: scan, organize and dedupe never act through links that lead out of it,
and link loops neither list files twice nor nest them deeper on every run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.library._journal import Journal, apply_journal
from sdlib.library.layouts import resolve_layout
from sdlib.library.scan import ScanResult, load_layout
from sdlib.library.wall import Wall, is_link
from tests.support import trees
from tests.support.organize import Lib

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Lib]:
    lib = Lib(tmp_path)
    yield lib
    lib.close()


def statuses(result: ScanResult) -> dict[str, set[str]]:
    return {f.rel: set(f.status) for f in result.files}


def test_symlinked_folder_outside_is_listed_and_never_organized(tmp_path: Path, lib: Lib) -> None:
    root, outside = trees.a1111(tmp_path / "webui"), tmp_path / "elsewhere"
    sd = root / "models" / "Stable-diffusion"
    trees.st(sd / "mine.safetensors", "sd15_pruned_fp16", small=True)
    # A LoRA in the Stable-diffusion folder behind the link: "misplaced", and the webUI
    # loads through the link, so scan lists it; organize must still never move it.
    trees.st(outside / "theirs.safetensors", "lora_sd15_kohya")
    trees.touch(outside / "theirs.civitai.info", "{}")
    os.symlink(outside, sd / "ext", target_is_directory=True)
    before = trees.tree_state(outside)
    result = lib.scan(root)
    assert statuses(result) == {
        "models/Stable-diffusion/mine.safetensors": {"ok"},
        "models/Stable-diffusion/ext": {"link-outside-root"},
        "models/Stable-diffusion/ext/theirs.safetensors": {"misplaced"},
        "models/Stable-diffusion/ext/theirs.civitai.info": {"ok"},
    }
    ext = next(f for f in result.files if f.rel.endswith("ext"))
    assert str(outside) in ext.notes[0]
    theirs = next(f for f in result.files if f.rel.endswith("theirs.safetensors"))
    assert theirs.kind == "lora"  # read through the link, as A1111 reads it
    plan, _journal, report = lib.plan_apply(root)
    assert plan.ops == [] and report.done == []
    assert any("ext: left alone" in n for n in plan.notes)
    assert any("theirs.safetensors: left in place" in n for n in plan.notes)
    assert trees.tree_state(outside) == before
    assert not (root / "models" / "Lora" / "theirs.safetensors").exists()


def test_dedupe_delete_never_deletes_behind_a_link(tmp_path: Path, lib: Lib) -> None:
    root, outside = trees.a1111(tmp_path / "webui"), tmp_path / "elsewhere"
    lora = root / "models" / "Lora"
    trees.st(lora / "a.safetensors", "lora_sd15_kohya")
    trees.st(lora / "b.safetensors", "lora_sd15_kohya")  # same bytes: a real duplicate
    outside.mkdir()
    shutil.copy2(lora / "a.safetensors", outside / "z.safetensors")  # same bytes again
    os.symlink(outside, lora / "shared", target_is_directory=True)
    os.symlink(outside / "z.safetensors", lora / "zz.safetensors")  # a file link out
    result = lib.scan(root)
    assert statuses(result) == {
        "models/Lora/a.safetensors": {"duplicate"},
        "models/Lora/b.safetensors": {"duplicate"},
        "models/Lora/shared": {"link-outside-root"},
        # Read through the links (the webUI lists them), so they are duplicates too...
        "models/Lora/shared/z.safetensors": {"duplicate"},
        "models/Lora/zz.safetensors": {"duplicate", "link-outside-root"},
    }
    plan, _journal, report = lib.plan_apply(root, dedupe="delete")
    deleted = [op.path for op in plan.ops if op.action == "delete"]
    # ...but only the copy inside the root is ever deleted.
    assert deleted == [str(lora / "b.safetensors")] and report.failed == []
    assert (outside / "z.safetensors").is_file() and os.path.islink(lora / "zz.safetensors")
    assert (lora / "a.safetensors").is_file() and not (lora / "b.safetensors").exists()


@pytest.mark.parametrize("where", ["Lora", "Stable-diffusion"])
def test_parent_loop_link_does_not_nest_files_deeper_on_each_run(
    tmp_path: Path, lib: Lib, where: str
) -> None:
    root = trees.a1111(tmp_path / "webui")
    models = root / "models"
    trees.st(models / "Lora" / "style.safetensors", "lora_sd15_kohya")
    trees.st(models / "Stable-diffusion" / "ckpt.safetensors", "sd15_pruned_fp16", small=True)
    os.symlink("..", models / where / "loop", target_is_directory=True)  # -> models/
    os.symlink("../..", models / where / "up", target_is_directory=True)  # -> the root
    first = lib.scan(root)
    assert statuses(first) == {
        "models/Lora/style.safetensors": {"ok"},
        "models/Stable-diffusion/ckpt.safetensors": {"ok"},
    }
    for _ in range(2):
        plan, _journal, report = lib.plan_apply(root, by_base=True)
        assert report.failed == [] and report.skipped == []
        for op in plan.ops:
            for path in (op.path, op.dst):
                parts = Path(os.path.relpath(path or op.path, root)).parts
                assert "loop" not in parts and "up" not in parts, op
    after = lib.scan(root)
    # by_base sorted each file once, into its base folder, and never through the links.
    assert sorted(f.rel for f in after.files) == [
        "models/Lora/SD1.5/style.safetensors",
        "models/Stable-diffusion/SD1.5/ckpt.safetensors",
    ]
    assert lib.plan(root, by_base=True).ops == []


def test_a_link_planted_after_the_plan_blocks_the_step(tmp_path: Path, lib: Lib) -> None:
    root, outside = trees.a1111(tmp_path / "webui"), tmp_path / "elsewhere"
    trees.st(root / "models" / "Stable-diffusion" / "lora.safetensors", "lora_sd15_kohya")
    (root / "models" / "Lora").mkdir(parents=True)
    plan = lib.plan(root)
    assert [(op.action, os.path.basename(op.dst or "")) for op in plan.ops] == [
        ("move", "lora.safetensors")
    ]
    # Between plan and apply, the destination folder becomes a link to elsewhere.
    (root / "models" / "Lora").rmdir()
    outside.mkdir()
    os.symlink(outside, root / "models" / "Lora", target_is_directory=True)
    journal = Journal.create(lib.jdir, plan.header())
    report = apply_journal(journal, lib.sha)
    assert report.done == [] and "outside the root" in report.skipped[0][1]
    assert list(outside.iterdir()) == []
    assert (root / "models" / "Stable-diffusion" / "lora.safetensors").is_file()


def test_the_wall_is_the_root_plus_configured_folders(tmp_path: Path) -> None:
    root = trees.comfyui(tmp_path / "ComfyUI")
    shared, other = tmp_path / "a1111", tmp_path / "other"
    other.mkdir()
    (shared / "models" / "Lora").mkdir(parents=True)
    trees.touch(
        root / "extra_model_paths.yaml", f"a:\n  base_path: {shared}\n  loras: models/Lora\n"
    )
    (root / "models").mkdir()
    os.symlink(other, root / "models" / "loras", target_is_directory=True)
    wall = Wall.for_layout(root, load_layout(root, "auto"))
    assert wall.holds(root / "models" / "checkpoints" / "x.safetensors")
    assert wall.holds(shared / "models" / "Lora" / "x.safetensors")  # configured: inside
    assert not wall.holds(root / "models" / "loras" / "x.safetensors")  # spelled in, leads out
    assert not wall.holds(root / ".." / "other")
    assert not wall.holds(tmp_path)
    assert resolve_layout("auto", root).name == "comfyui"


def test_junctions_count_as_links() -> None:
    class Junction:
        path, name = "/x/j", "j"

        def is_symlink(self) -> bool:
            return False

        def is_junction(self) -> bool:
            return True

    class Plain(Junction):
        def is_junction(self) -> bool:
            return False

    assert is_link(Junction()) is True  # type: ignore[arg-type]
    if os.name != "nt":
        assert is_link(Plain()) is False  # type: ignore[arg-type]
