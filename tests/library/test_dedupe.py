"""``dedupe`` through the service layer on real folders: identical model files inside and
across two webUI roots become hard links, ``undo`` gives every name its own bytes back.

Expected values come from the file system (``os.stat``, ``os.readlink``) and ``hashlib``,
never from sdlib's own report.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.config import Settings
from sdlib.services import Context, dedupe
from tests.support import trees

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    settings = replace(Settings(), cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    with Context(settings) as c:
        yield c


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


def state(*roots: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under the roots: (SHA256 or link target, mtime_ns, mode)."""
    out: dict[str, tuple[str, int, int]] = {}
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath, name)
                st = os.lstat(p)
                what = f"link:{os.readlink(p)}" if p.is_symlink() else sha(p)
                out[str(p)] = (what, st.st_mtime_ns, st.st_mode)
    return out


def inodes(*paths: Path) -> set[tuple[int, int]]:
    return {(os.stat(p).st_dev, os.stat(p).st_ino) for p in paths}


def two_roots(base: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Two A1111 roots with odd names: one model in both (other names), one in each only,
    and a LoRA twice inside the second root, each copy with its own sidecars."""
    a, b = trees.a1111(base / "stable diffusion webui"), trees.a1111(base / "Forge ü 模型")
    ckpt = trees.st(a / "models/Stable-diffusion/dream shaper [v8] é.safetensors",
                    "sd15_pruned_fp16", small=True)  # fmt: skip
    trees.touch(ckpt.with_suffix(".civitai.info"), '{"id": 1, "note": "A"}')
    other = b / "models/Stable-diffusion/模型 copy (1).safetensors"
    other.parent.mkdir(parents=True)
    shutil.copy2(ckpt, other)
    trees.touch(other.with_suffix(".civitai.info"), '{"id": 1, "note": "B"}')
    trees.touch(b / "models/Stable-diffusion/模型 copy (1).preview.png", trees.PNG)
    lora = trees.st(b / "models/Lora/détail tweaker.safetensors", "lora_sd15_kohya")
    lora2 = b / "models/Lora/sub dir/détail tweaker copy.safetensors"
    lora2.parent.mkdir(parents=True)
    shutil.copy2(lora, lora2)
    only_a = trees.st(a / "models/Lora/only here.safetensors", "lora_sdxl_kohya")
    # Same size as the checkpoint, other bytes: compared by SHA256, not a duplicate.
    same_size = b / "models/Stable-diffusion/same size.safetensors"
    shutil.copy2(ckpt, same_size)
    with open(same_size, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x01")
    files = {"ckpt": ckpt, "other": other, "lora": lora, "lora2": lora2, "only_a": only_a,
             "same_size": same_size}  # fmt: skip
    return a, b, files


def test_duplicates_across_two_roots_with_odd_names(tmp_path: Path, ctx: Context) -> None:
    a, b, f = two_roots(tmp_path)
    before = state(a, b)
    plan = dedupe.plan(ctx, [a, b])
    groups = {frozenset(c.path for c in g.copies): g for g in plan.groups}
    want_ckpt = frozenset({str(f["ckpt"]), str(f["other"])})
    want_lora = frozenset({str(f["lora"]), str(f["lora2"])})
    assert set(groups) == {want_ckpt, want_lora}
    assert groups[want_ckpt].sha256 == sha(f["ckpt"])
    assert groups[want_ckpt].size == os.stat(f["ckpt"]).st_size
    assert groups[want_lora].size == os.stat(f["lora"]).st_size
    assert plan.reclaimable == os.stat(f["ckpt"]).st_size + os.stat(f["lora"]).st_size
    # One copy of each stays, the first found (roots in the order given).
    keep = {c.path for g in plan.groups for c in g.copies if c.role == "keep"}
    assert keep == {str(f["ckpt"]), str(f["lora"])}
    assert {op.path for op in plan.ops} == {str(f["other"]), str(f["lora2"])}
    assert state(a, b) == before  # a plan changes nothing


def test_apply_then_undo_is_byte_exact(tmp_path: Path, ctx: Context) -> None:
    a, b, f = two_roots(tmp_path)
    before = state(a, b)
    sizes = {k: os.stat(p).st_size for k, p in f.items()}
    done = dedupe.apply(ctx, [a, b])
    assert done.done == 2 and not done.failed and not done.skipped
    # One inode per model now, both names read the same bytes, the sidecars are untouched.
    assert len(inodes(f["ckpt"], f["other"])) == 1 and os.stat(f["other"]).st_nlink == 2
    assert len(inodes(f["lora"], f["lora2"])) == 1
    assert sha(f["other"]) == before[str(f["ckpt"])][0]
    after = state(a, b)
    for p in (f["ckpt"].with_suffix(".civitai.info"), f["other"].with_suffix(".civitai.info")):
        assert after[str(p)] == before[str(p)]
    assert len(inodes(*f.values())) == len(f) - 2
    assert not [p for p in state(a, b) if p.endswith(".sdlib-part")]

    undone = dedupe.undo(ctx, [b, a])  # the roots in any order
    assert undone.done == 2 and not undone.failed
    assert state(a, b) == before  # every byte, mtime and mode as it was
    assert len(inodes(*f.values())) == len(f)  # separate files again
    assert all(os.stat(p).st_nlink == 1 for p in f.values())
    assert {k: os.stat(p).st_size for k, p in f.items()} == sizes


def test_files_already_hard_linked_are_already_deduped(tmp_path: Path, ctx: Context) -> None:
    a, b = trees.a1111(tmp_path / "a"), trees.a1111(tmp_path / "b")
    model = trees.st(a / "models/Lora/x.safetensors", "lora_sd15_kohya")
    (b / "models/Lora").mkdir(parents=True)
    os.link(model, b / "models/Lora/x.safetensors")
    plan = dedupe.plan(ctx, [a, b])
    assert plan.groups == [] and plan.ops == [] and plan.reclaimable == 0


def test_a_symlink_is_never_a_copy_and_never_followed(tmp_path: Path, ctx: Context) -> None:
    """A symlinked file (inside or leading outside the root) is left as it is, and what it
    leads to outside the roots is never linked, replaced or deleted."""
    outside = tmp_path / "elsewhere"
    target = trees.st(outside / "shared.safetensors", "lora_sd15_kohya")
    a, b = trees.a1111(tmp_path / "a"), trees.a1111(tmp_path / "b")
    lora_a, lora_b = a / "models/Lora", b / "models/Lora"
    lora_a.mkdir(parents=True)
    lora_b.mkdir(parents=True)
    os.symlink(target, lora_a / "shared.safetensors")  # leads outside the root
    shutil.copy2(target, lora_b / "shared copy.safetensors")  # a real copy in b
    shutil.copy2(target, lora_a / "real copy.safetensors")  # and one in a
    os.symlink(lora_a / "real copy.safetensors", lora_a / "alias.safetensors")  # inside
    os.symlink(outside, lora_b / "linked dir", target_is_directory=True)  # a folder link out
    target_st = os.stat(target)
    before_outside = state(outside)
    done = dedupe.apply(ctx, [a, b])
    assert [op["path"] for op in done.actions] == [str(lora_b / "shared copy.safetensors")]
    assert os.path.samefile(lora_b / "shared copy.safetensors", lora_a / "real copy.safetensors")
    # The links are still links to where they led; what is outside is as it was.
    assert os.readlink(lora_a / "shared.safetensors") == str(target)
    assert os.readlink(lora_a / "alias.safetensors") == str(lora_a / "real copy.safetensors")
    assert os.readlink(lora_b / "linked dir") == str(outside)
    assert state(outside) == before_outside
    assert done.plan is not None  # the file behind "linked dir" is said to be left alone
    assert any(n.startswith("1 model file behind links") for n in done.plan.notes)
    after = os.stat(target)
    assert (after.st_ino, after.st_nlink) == (target_st.st_ino, 1)
    dedupe.undo(ctx, [a, b])
    assert state(outside) == before_outside


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_copy_replaced_by_a_link_after_the_plan_is_skipped(tmp_path: Path, ctx: Context,
                                                             where: str) -> None:  # fmt: skip
    """Between plan and apply a copy became a symlink (to the same bytes, outside the roots
    or inside them): the link is left as the user made it, and nothing is done through it
    (the journal checks each path again right before acting)."""
    from sdlib.library.dedupe import apply_dedupe

    a, b, f = two_roots(tmp_path)
    plan = dedupe.plan(ctx, [a, b])
    home = tmp_path if where == "outside" else b / "models" / "Stable-diffusion"
    outside = Path(tempfile.mkdtemp(dir=home)) / "victim.safetensors"
    shutil.copy2(f["other"], outside)
    victim = state(outside.parent)
    f["other"].unlink()
    os.symlink(outside, f["other"])
    roots = (str(a), str(b))
    journal, report, _ = apply_dedupe(ctx.settings.data_dir, roots, lambda: plan,
                                      ctx.sha256_of())  # fmt: skip
    assert journal is not None and report is not None
    skipped = {plan.ops[i].path for i, _why in report.skipped}
    assert skipped == {str(f["other"])}
    assert os.readlink(f["other"]) == str(outside) and state(outside.parent) == victim


def test_a_second_plan_reads_no_model_file(tmp_path: Path, ctx: Context,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import sdlib.hashcache

    a, b, _files = two_roots(tmp_path)
    first = dedupe.plan(ctx, [a, b])
    assert first.hashed >= 1  # at least the checkpoint in a, which its own scan had no need to hash

    def no_read(*_a: object, **_k: object) -> None:
        raise AssertionError("a model file was hashed again")

    monkeypatch.setattr(sdlib.hashcache, "hash_file", no_read)
    second = dedupe.plan(ctx, [a, b])
    assert second.hashed == 0
    assert [g.sha256 for g in second.groups] == [g.sha256 for g in first.groups]


def test_copies_on_another_volume_are_reported_not_linked(tmp_path: Path, ctx: Context) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to put a root on")
    a = trees.a1111(tmp_path / "a")
    model = trees.st(a / "models/Lora/x.safetensors", "lora_sd15_kohya")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        b = trees.a1111(Path(other) / "b")
        (b / "models/Lora").mkdir(parents=True)
        shutil.copy2(model, b / "models/Lora/x.safetensors")
        plan = dedupe.plan(ctx, [a, b])
        assert plan.ops == [] and plan.reclaimable == 0
        assert plan.other_volume == os.stat(model).st_size
        assert any("sdlib store" in n for n in plan.notes)


def test_two_copies_in_one_root_and_a_third_name_already_linked(tmp_path: Path,
                                                                ctx: Context) -> None:  # fmt: skip
    """The inode with the most names stays: linking the single copy to it frees its bytes."""
    a = trees.a1111(tmp_path / "a")
    lora = a / "models/Lora"
    single = trees.st(lora / "a single.safetensors", "lora_sd15_kohya")
    shutil.copy2(single, lora / "b pair.safetensors")
    os.link(lora / "b pair.safetensors", lora / "c pair.safetensors")
    plan = dedupe.plan(ctx, [a])
    assert [op.path for op in plan.ops] == [str(single)]
    assert plan.reclaimable == os.stat(single).st_size
    dedupe.apply(ctx, [a])
    assert len(inodes(single, lora / "b pair.safetensors", lora / "c pair.safetensors")) == 1


def test_undo_without_a_run_is_a_usage_error(tmp_path: Path, ctx: Context) -> None:
    from sdlib.errors import UsageError

    a = trees.a1111(tmp_path / "a")
    with pytest.raises(UsageError, match="no dedupe run"):
        dedupe.undo(ctx, [a])


def test_sdlib_exports_the_api_lazily() -> None:
    import sdlib

    assert sdlib.dedupe_plan is dedupe.plan
    assert sdlib.dedupe_apply is dedupe.apply and sdlib.dedupe_undo is dedupe.undo
