"""`sdlib link --move-existing`: a webUI's own model files (with their sidecars) move into the
store it is linked to, the UI sees them there, and `sdlib unlink` puts every one back at its
original path with its bytes, mtime and mode. Links are never moved or followed; names the
store already has stay where they are; without the flag nothing moves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdlib.errors import UsageError
from sdlib.services import Context
from sdlib.services.library import scan
from sdlib.services.store import link_store, unlink_store
from tests.store.conftest import make_root
from tests.support.trees import sha256, st, touch, tree_state


def _user_files(root: Path, outside: Path) -> dict[str, Path]:
    """The user's own files in an A1111 root: a model with a sidecar, a LoRA in a sub-folder
    with its preview, a placeholder git tracks, and a file link to a model outside."""
    ckpt = root / "models" / "Stable-diffusion"
    lora = root / "models" / "Lora"
    files = {
        "ckpt": ckpt / "own.safetensors",  # made by make_root
        "info": touch(ckpt / "own.civitai.info", '{"id": 7}'),
        "lora": st(lora / "styles" / "ink wash.safetensors", "lora_sd15_kohya", {"i": "1"},
                   small=True),
        "preview": touch(lora / "styles" / "ink wash.preview.png", b"\x89PNG\r\n\x1a\n-"),
        "far": st(outside / "far.safetensors", "lora_sd15_kohya", {"far": "1"}, small=True),
    }  # fmt: skip
    (lora / "far link.safetensors").symlink_to(files["far"])
    os.chmod(files["info"], 0o640)
    os.utime(files["lora"], ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    return files


def _stats(paths: dict[str, Path]) -> dict[str, tuple[str, int, int]]:
    return {
        k: (sha256(p), p.stat().st_mtime_ns, p.stat().st_mode & 0o7777) for k, p in paths.items()
    }


def test_move_existing_then_unlink_gives_everything_back(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "a1111")
    files = _user_files(root, tmp_path / "elsewhere")
    before, store_before = tree_state(root), tree_state(store)
    stats = _stats(files)

    done = link_store(ctx, root, "a1111", move_existing=True)
    assert done.moves is not None and done.moves.moved == 4
    moved = {
        "ckpt": store / "StableDiffusion" / "own.safetensors",
        "info": store / "StableDiffusion" / "own.civitai.info",
        "lora": store / "Lora" / "styles" / "ink wash.safetensors",
        "preview": store / "Lora" / "styles" / "ink wash.preview.png",
    }
    assert _stats(moved) == {k: stats[k] for k in moved}
    assert not any(files[k].exists() for k in moved)
    assert done.moves.bytes == sum(p.stat().st_size for p in moved.values())
    # What is not a model or its sidecar, and every link, stays; what a link leads to too.
    ckpt = root / "models" / "Stable-diffusion"
    assert (ckpt / "Put Stable Diffusion checkpoints here.txt").is_file()
    assert (root / "models" / "Lora" / "far link.safetensors").is_symlink()
    assert _stats({"far": files["far"]}) == {"far": stats["far"]}
    # The webUI sees its models through the store link, as ok models.
    result = scan(ctx, root, "a1111")
    status = {f.rel: f.status for f in result.models}
    assert status["models/Stable-diffusion/sdlib-store/own.safetensors"] == ["ok"], [
        (f.rel, f.status, f.notes) for f in result.files
    ]
    assert status["models/Lora/sdlib-store/styles/ink wash.safetensors"] == ["ok"]

    back = unlink_store(ctx, root)
    assert back.moved_back is not None and back.moved_back.moved == 4
    assert not back.kept
    assert tree_state(root) == before
    assert tree_state(store) == store_before
    assert _stats(files) == stats


def test_a_name_the_store_has_stays_put(ctx: Context, store: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path, "a1111")
    mine = root / "models" / "Stable-diffusion" / "shared one.safetensors"
    st(mine, "sd15_pruned_fp16", {"mine": "yes"}, small=True)
    digest, theirs = sha256(mine), sha256(store / "StableDiffusion" / "shared one.safetensors")
    done = link_store(ctx, root, "a1111", move_existing=True)
    assert done.moves is not None and done.moves.moved == 1  # own.safetensors only
    assert sha256(mine) == digest
    assert sha256(store / "StableDiffusion" / "shared one.safetensors") == theirs
    assert any("already has" in note and str(mine) in note for note in done.notes)


def test_without_the_flag_nothing_moves(ctx: Context, store: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path, "a1111")
    own = root / "models" / "Stable-diffusion" / "own.safetensors"
    digest = sha256(own)
    done = link_store(ctx, root, "a1111")
    assert done.moves is None and sha256(own) == digest
    assert not (store / "StableDiffusion" / "own.safetensors").exists()


@pytest.mark.parametrize("ui", ["comfyui", "sdnext"])
def test_config_methods_move_the_folders_the_edit_replaces(
    ctx: Context, store: Path, tmp_path: Path, ui: str
) -> None:
    root = make_root(tmp_path, ui)
    own = root / "models" / ("checkpoints" if ui == "comfyui" else "Stable-diffusion")
    digest = sha256(own / "own.safetensors")
    before, store_before = tree_state(root), tree_state(store)
    # SD.Next with models of its own would get links; moving them, its config.json serves.
    done = link_store(ctx, root, ui, move_existing=True)
    assert done.method == "config"
    assert done.moves is not None and done.moves.moved == 1
    assert sha256(store / "StableDiffusion" / "own.safetensors") == digest
    assert not (own / "own.safetensors").exists()
    unlink_store(ctx, root)
    assert tree_state(root) == before and tree_state(store) == store_before


def test_across_volumes_copies_verifies_then_removes(
    ctx: Context, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDLIB_TEST_FORCE_COPY", "1")  # the journal's cross-volume path
    root = make_root(tmp_path, "a1111")
    own = root / "models" / "Stable-diffusion" / "own.safetensors"
    digest, inode = sha256(own), own.stat().st_ino
    before = tree_state(root)
    done = link_store(ctx, root, "a1111", move_existing=True)
    assert done.moves is not None and done.moves.moved == 1
    there = store / "StableDiffusion" / "own.safetensors"
    assert sha256(there) == digest and there.stat().st_ino != inode  # a copy, not a rename
    assert not own.exists()
    assert not list(store.rglob("*.sdlib-part"))
    unlink_store(ctx, root)
    assert tree_state(root) == before


def test_refusals_and_links_out(ctx: Context, store: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path, "a1111")
    with pytest.raises(UsageError, match="snapshot"):
        link_store(ctx, root, "a1111", method="hardlink", move_existing=True)
    assert sha256(root / "models" / "Stable-diffusion" / "own.safetensors")
    # A webUI folder that is itself a link to elsewhere: nothing in it is moved.
    other = make_root(tmp_path / "b", "a1111", own_models=False)
    shelf = tmp_path / "shelf"
    st(shelf / "kept.safetensors", "lora_sd15_kohya", small=True)
    os.rmdir(other / "models" / "Lora")
    (other / "models" / "Lora").symlink_to(shelf, target_is_directory=True)
    done = link_store(ctx, other, "a1111", move_existing=True)
    assert done.moves is None or done.moves.moved == 0
    assert (shelf / "kept.safetensors").is_file()
    assert not (store / "Lora" / "kept.safetensors").exists()


def test_a_copy_the_store_already_has_goes_and_comes_back(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "comfyui")
    theirs = store / "StableDiffusion" / "shared one.safetensors"
    mine = root / "models" / "checkpoints" / "shared one.safetensors"
    mine.write_bytes(theirs.read_bytes())  # the very bytes, under the same name
    os.chmod(mine, 0o604)
    os.utime(mine, ns=(1_650_000_000_000_000_000, 1_650_000_000_555_000_000))
    stats, before, store_before = _stats({"mine": mine}), tree_state(root), tree_state(store)

    done = link_store(ctx, root, "comfyui", move_existing=True)
    assert done.moves is not None and (done.moves.moved, done.moves.same) == (2, 1)
    assert not mine.exists()  # the store's copy serves ComfyUI now
    assert tree_state(store)[0]["StableDiffusion/shared one.safetensors"] == stats["mine"][0]

    back = unlink_store(ctx, root)
    assert back.moved_back is not None and back.moved_back.moved == 2 and not back.kept
    assert _stats({"mine": mine}) == stats  # copied back: bytes, mtime, mode
    assert tree_state(root) == before and tree_state(store) == store_before
