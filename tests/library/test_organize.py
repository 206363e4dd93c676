"""``organize``: plans that fix what scan found, journaled apply, and byte-exact undo."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdlib.errors import UsageError
from sdlib.library._journal import Journal, apply_journal, undo_journal
from sdlib.library.organize import find_journal
from sdlib.library.scan import ScanResult
from tests.support import trees
from tests.support.organize import Lib


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Lib]:
    lib = Lib(tmp_path)
    yield lib
    lib.close()


def rel_ops(plan: Any) -> list[tuple[str, str, str]]:
    return [(a["action"], a["path_rel"], a.get("dst_rel") or a.get("keep_rel") or "")
            for a in plan.to_dict()["actions"]]  # fmt: skip


def sidecars_beside_models(result: ScanResult, orphans: tuple[str, ...] = ()) -> None:
    for f in result.files:
        if f.role == "sidecar" and os.path.basename(f.path) not in orphans:
            assert "orphan-sidecar" not in f.status, f.rel
            assert f.model and os.path.dirname(f.model) == os.path.dirname(f.path)


def test_plan_for_messy_a1111_fixes_what_can_be_fixed(tmp_path: Path, lib: Lib) -> None:
    root = tmp_path / "webui"
    trees.messy_a1111(root, tmp_path / "outside")
    plan = lib.plan(root)
    ops = rel_ops(plan)
    long_name = "a" * 238 + ".safetensors"
    assert ops == [
        ("move", f"models/Lora/{long_name}", "models/Lora/" + "a" * 188 + ".safetensors"),
        ("move", "models/Lora/characters/style.safetensors",
         "models/Lora/characters/style_2.safetensors"),
        ("move", "models/Lora/readonly.safetensors", "embeddings/readonly.safetensors"),
        ("move", "models/Stable-diffusion/add_detail.safetensors",
         "models/Lora/add_detail.safetensors"),
        ("move", "models/Stable-diffusion/add_detail.civitai.info",
         "models/Lora/add_detail.civitai.info"),
        ("move", "models/Stable-diffusion/add_detail.json", "models/Lora/add_detail.json"),
        ("move", "models/Stable-diffusion/add_detail.preview.png",
         "models/Lora/add_detail.preview.jpeg"),
        ("move", "models/VAE/Upper.SAFETENSORS", "models/VAE/Upper.safetensors"),
        ("move", "models/Lora/lost.preview.png", "models/LyCORIS/lost.preview.png"),
    ]  # fmt: skip
    notes = "\n".join(plan.notes)
    for left in ("evil.pt: left in place: an unsafe pickle", "broken.safetensors: left",
                 "4x.safetensors: left in place", "ghost.civitai.info: left as it is"):  # fmt: skip
        assert left in notes
    assert not any(op.path.endswith("dead.safetensors") for op in plan.ops)


def test_apply_fixes_the_tree_and_undo_restores_it_byte_for_byte(tmp_path: Path, lib: Lib) -> None:
    root = tmp_path / "webui"
    trees.messy_a1111(root, tmp_path / "outside")
    before = trees.tree_state(root)
    outside_before = trees.tree_state(tmp_path / "outside")
    journal, report = lib.apply(root)
    assert report.skipped == [] and report.failed == [] and len(report.done) == 9
    after = lib.scan(root)
    fixed = {"misplaced", "name-clash", "wrong-preview-extension", "illegal-or-too-long-name"}
    assert not fixed & {s for f in after.files for s in f.status}
    sidecars_beside_models(after, orphans=("ghost.civitai.info",))
    ro = root / "embeddings" / "readonly.safetensors"
    assert ro.stat().st_mode & 0o777 == 0o444  # moved, still read-only
    # The same files, by content, are all still there.
    files_after, _ = trees.tree_state(root)
    assert sorted(files_after.values()) == sorted(before[0].values())
    assert Journal.load(journal.path).state == "complete"
    undo = undo_journal(Journal.load(journal.path), lib.sha)
    assert undo.skipped == [] and undo.failed == []
    assert trees.tree_state(root) == before
    assert trees.tree_state(tmp_path / "outside") == outside_before
    assert Journal.load(journal.path).state == "undone"


def test_by_base_and_hardlink_dedupe(tmp_path: Path, lib: Lib) -> None:
    root = trees.small_tree(tmp_path / "webui")
    before = trees.tree_state(root)
    journal, report = lib.apply(root, by_base=True, dedupe="hardlink")
    assert report.failed == [] and report.skipped == []
    lyco = root / "models" / "LyCORIS" / "SDXL"  # LoKr files: A1111's LyCORIS folder
    assert (lyco / "lora 1.safetensors").is_file()
    assert (lyco / "lora 1.preview.jpeg").read_bytes().startswith(b"\xff\xd8")
    assert (root / "models" / "Stable-diffusion" / "SD1.5" / "model [v1].vae.safetensors").is_file()
    lora = root / "models" / "Lora" / "SDXL"
    dup, copy = lora / "dup.safetensors", lora / "dup copy.safetensors"
    assert os.path.samefile(dup, copy)
    after = lib.scan(root)
    assert {s for f in after.files for s in f.status} == {"ok"}
    undo_journal(Journal.load(journal.path), lib.sha)
    assert trees.tree_state(root) == before
    assert not os.path.samefile(root / "models" / "Lora" / "dup.safetensors",
                                root / "models" / "Lora" / "dup copy.safetensors")  # fmt: skip


def test_delete_dedupe_keeps_one_copy_and_its_sidecars(tmp_path: Path, lib: Lib) -> None:
    root = trees.small_tree(tmp_path / "webui")
    before = trees.tree_state(root)
    plan = lib.plan(root, dedupe="delete")
    deletes = [a for a in plan.to_dict()["actions"] if a["action"] == "delete"]
    assert [(a["path_rel"], a["keep_rel"]) for a in deletes] == [
        ("models/Lora/dup.safetensors", "models/Lora/dup copy.safetensors")
    ]
    journal = Journal.create(lib.jdir, plan.header())
    apply_journal(journal, lib.sha)
    assert not (root / "models" / "Lora" / "dup.safetensors").exists()
    assert (root / "models" / "Lora" / "dup copy.json").is_file()
    undo_journal(Journal.load(journal.path), lib.sha)
    assert trees.tree_state(root) == before


def test_duplicate_with_different_sidecars_is_not_deleted(tmp_path: Path, lib: Lib) -> None:
    root = trees.a1111(tmp_path / "webui")
    a = trees.st(root / "models" / "Lora" / "a.safetensors", "lokr_sdxl")
    b = root / "models" / "Lora" / "b.safetensors"
    b.write_bytes(a.read_bytes())
    trees.touch(a.with_suffix(".json"), '{"description": "mine"}')
    trees.touch(b.with_suffix(".json"), '{"description": "other"}')
    plan = lib.plan(root, dedupe="delete")
    assert plan.ops == []
    assert any("differs from the one beside" in n for n in plan.notes)


def test_plan_never_overwrites_and_skips_files_changed_since(tmp_path: Path, lib: Lib) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Stable-diffusion" / "x.safetensors", "lokr_sdxl")
    trees.st(root / "models" / "Lora" / "x.safetensors", "loha_sd15")  # a different LoRA x
    plan = lib.plan(root)
    # A LyCORIS goes to models/LyCORIS, where A1111 would still key it "x", like Lora/x.
    assert rel_ops(plan) == [
        ("mkdir", "models/LyCORIS", ""),
        ("move", "models/Stable-diffusion/x.safetensors", "models/LyCORIS/x_2.safetensors"),
    ]
    journal = Journal.create(lib.jdir, plan.header())
    trees.st(root / "models" / "Stable-diffusion" / "x.safetensors", "embedding_sd15")
    report = apply_journal(journal, lib.sha)
    assert report.done == [0] and "changed since the plan" in report.skipped[0][1]
    assert (root / "models" / "Stable-diffusion" / "x.safetensors").is_file()


def test_cross_device_move_copies_verifies_then_deletes(tmp_path: Path, lib: Lib) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to move across")
    other = Path(os.path.realpath(shm)) / f"sdlib-test-{os.getpid()}-{tmp_path.name}"
    try:
        root = trees.comfyui(tmp_path / "ComfyUI")
        yaml = f"ssd:\n    base_path: {other}\n    is_default: true\n    loras: loras\n"
        trees.touch(root / "extra_model_paths.yaml", yaml)
        (other / "loras").mkdir(parents=True)
        src = trees.st(root / "models" / "embeddings" / "lora.safetensors", "lokr_sdxl")
        trees.touch(src.with_name("lora.civitai.info"), json.dumps({"id": 5}))
        sha, mtime = trees.sha256(src), src.stat().st_mtime_ns
        before = trees.tree_state(root)
        journal, report = lib.apply(root)
        assert report.failed == [] and len(report.done) == 2
        moved = other / "loras" / "lora.safetensors"
        assert trees.sha256(moved) == sha and not src.exists()
        assert (other / "loras" / "lora.civitai.info").is_file()
        assert moved.stat().st_mtime_ns == mtime
        rescan = lib.scan(root)
        found = next(f for f in rescan.files if f.path == str(moved))
        assert found.status == ["ok"]
        undo_journal(Journal.load(journal.path), lib.sha)
        assert trees.tree_state(root) == before and not moved.exists()
    finally:
        import shutil

        shutil.rmtree(other, ignore_errors=True)


def test_forced_copy_path_and_resume_after_partial_copy(
    tmp_path: Path, lib: Lib, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDLIB_TEST_FORCE_COPY", "1")
    root = trees.small_tree(tmp_path / "webui")
    before = trees.tree_state(root)
    plan = lib.plan(root)
    journal = Journal.create(lib.jdir, plan.header())
    first = next(op for op in plan.ops if op.action == "move")
    assert first.dst is not None
    # A crash left a half-written part file and both names with the same verified bytes.
    Path(first.dst).parent.mkdir(parents=True, exist_ok=True)
    trees.touch(Path(first.dst).with_name(f".{Path(first.dst).name}.sdlib-part"), b"junk")
    report = apply_journal(journal, lib.sha)
    assert report.failed == [] and report.skipped == []
    assert not list(root.rglob("*.sdlib-part"))
    undo_journal(Journal.load(journal.path), lib.sha)
    assert trees.tree_state(root) == before


def test_journal_lookup_and_refusals(tmp_path: Path, lib: Lib) -> None:
    root = trees.small_tree(tmp_path / "webui")
    assert find_journal(lib.jdir, str(root), ("applying", "complete")) is None
    plan = lib.plan(root)
    journal = Journal.create(lib.jdir, plan.header())
    assert find_journal(lib.jdir, str(root), ("applying",)).path == journal.path  # type: ignore[union-attr]
    apply_journal(journal, lib.sha)
    undo_journal(journal, lib.sha)
    with pytest.raises(UsageError):
        apply_journal(Journal.load(journal.path), lib.sha)
    with pytest.raises(UsageError):
        undo_journal(Journal.load(journal.path), lib.sha)
    # A line torn by a crash is dropped, and the journal stays readable and appendable.
    with open(journal.path, "a", encoding="utf-8") as fh:
        fh.write('{"type": "do')
    loaded = Journal.load(journal.path)
    assert loaded.state == "undone"
    loaded.append({"type": "note"})
    assert Journal.load(journal.path).records[-1] == {"type": "note"}


@pytest.mark.parametrize("dedupe", ["keep", "hardlink", "delete"])
def test_misplaced_copy_of_a_placed_model_is_not_moved_beside_it(
    tmp_path: Path, lib: Lib, dedupe: str
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora = trees.st(root / "models" / "Lora" / "style.safetensors", "lora_sd15_kohya")
    stray = root / "models" / "Stable-diffusion" / "style.safetensors"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(lora.read_bytes())
    plan = lib.plan(root, dedupe=dedupe)
    ops = rel_ops(plan)
    # Never a second listing of the same LoRA in models/Lora.
    assert not any(op[0] == "move" and op[2].startswith("models/Lora/") for op in ops)
    expected = {"keep": [], "hardlink": [("link", "models/Stable-diffusion/style.safetensors",
                                          "models/Lora/style.safetensors")],
                "delete": [("delete", "models/Stable-diffusion/style.safetensors",
                            "models/Lora/style.safetensors")]}  # fmt: skip
    assert ops == expected[dedupe]
    if dedupe != "delete":
        assert any("already in the right folder" in n for n in plan.notes)
