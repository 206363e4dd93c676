"""link_store / unlink_store on real folders with real links: each webUI sees the store the
way the reference's matrix says, and unlinking leaves the tree exactly as it was (every path,
every byte) and the store untouched."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from sdlib.errors import LibraryError, NotFound, UsageError
from sdlib.library.comfy_paths import read_extra_paths
from sdlib.services import Context
from sdlib.services.store import link_store, store_status, unlink_store
from sdlib.store import apply
from sdlib.store.record import load_records
from tests.store.conftest import COMFY_YAML, make_root
from tests.support.trees import tree_state


def _records(ctx: Context) -> list[object]:
    return list(load_records(Path(ctx.settings.data_dir) / "store-links.json"))


@pytest.mark.parametrize("ui", ["a1111", "forge", "reforge"])
def test_a1111_family_gets_sub_folder_links_and_unlink_restores_the_tree(
    ctx: Context, store: Path, tmp_path: Path, ui: str
) -> None:
    root = make_root(tmp_path, ui)
    before, store_before = tree_state(root), tree_state(store)
    done = link_store(ctx, root, ui)
    assert done.method == "symlink"
    link = root / "models" / "Lora" / "sdlib-store"
    assert link.is_symlink() and os.path.samefile(link, store / "Lora")
    assert (link / "sub" / "shared lora.safetensors").is_file()
    ckpt = root / "models" / "Stable-diffusion"
    assert not ckpt.is_symlink()  # the UI's own (git-tracked) folder is never replaced
    assert (ckpt / "own.safetensors").is_file()
    assert os.path.samefile(ckpt / "sdlib-store", store / "StableDiffusion")
    if ui == "forge":  # Forge's module list does not follow folder links: flags instead
        assert not (root / "models" / "VAE" / "sdlib-store").exists()
        assert any("--vae-dir" in note for note in done.notes)
        assert os.path.samefile(root / "models" / "Lora" / "sdlib-store-LyCORIS", store / "LyCORIS")
    linked = store_status(ctx).links
    assert [(link["root"], link["ui"], link["intact"]) for link in linked] == [
        (str(root), ui, True)
    ]
    undone = unlink_store(ctx, root)
    assert not undone.kept
    assert tree_state(root) == before
    assert tree_state(store) == store_before
    assert _records(ctx) == []


def test_comfyui_gets_its_own_yaml_section_and_keeps_the_users(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "comfyui")
    before, store_before = tree_state(root), tree_state(store)
    done = link_store(ctx, root, "comfyui")
    assert done.method == "config"
    text = (root / "extra_model_paths.yaml").read_text(encoding="utf-8")
    assert text.startswith(COMFY_YAML)  # every line and comment of the user's, in place
    folders = read_extra_paths(root)
    assert {(f.section, f.key) for f in folders} >= {("a111", "loras"), ("other", "vae")}
    loras = {f.path for f in folders if f.key == "loras" and f.section == "sdlib_store"}
    assert loras == {str(store / "Lora"), str(store / "LyCORIS")}
    unlink_store(ctx, root)
    assert tree_state(root) == before
    assert tree_state(store) == store_before


def test_comfyui_yaml_edited_since_loses_only_sdlibs_block(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "comfyui")
    link_store(ctx, root, "comfyui")
    yaml = root / "extra_model_paths.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8") + "later:\n    vae: /x\n", encoding="utf-8")
    unlink_store(ctx, root)
    text = yaml.read_text(encoding="utf-8")
    assert "sdlib_store" not in text and "sdlib link" not in text
    assert text.startswith(COMFY_YAML.rstrip("\n")) and text.endswith("later:\n    vae: /x\n")


def test_comfyui_without_a_yaml_gets_one_and_unlink_removes_it(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "comfyui")
    (root / "extra_model_paths.yaml").unlink()
    before = tree_state(root)
    link_store(ctx, root, "comfyui")
    assert read_extra_paths(root)
    unlink_store(ctx, root)
    assert tree_state(root) == before


def test_sdnext_config_keys_are_set_and_given_back(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "sdnext", own_models=False)
    before = tree_state(root)
    done = link_store(ctx, root, "sdnext")
    assert done.method == "config"
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    assert config["lora_dir"] == str(store / "Lora")
    assert config["ckpt_dir"] == str(store / "StableDiffusion")
    assert config["sd_model_checkpoint"] == "own.safetensors"
    unlink_store(ctx, root)
    assert tree_state(root) == before  # the very bytes, formatting included


def test_sdnext_with_its_own_models_gets_links_not_keys_that_would_hide_them(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "sdnext")
    before = tree_state(root)
    done = link_store(ctx, root, "sdnext")
    assert done.method == "symlink"
    assert os.path.samefile(root / "models" / "Stable-diffusion" / "sdlib-store",
                            store / "StableDiffusion")  # fmt: skip
    unlink_store(ctx, root)
    assert tree_state(root) == before


def test_hardlinks_are_a_snapshot_and_unlink_never_deletes_the_last_copy(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "a1111")
    before = tree_state(root)
    link_store(ctx, root, "a1111", method="hardlink")
    seen = root / "models" / "Lora" / "sdlib-store" / "sub" / "shared lora.safetensors"
    assert os.path.samestat(
        seen.stat(), (store / "Lora" / "sub" / "shared lora.safetensors").stat()
    )
    unlink_store(ctx, root)
    assert tree_state(root) == before
    link_store(ctx, root, "a1111", method="hardlink")
    (store / "Lora" / "sub" / "shared lora.safetensors").unlink()  # the store lost it
    undone = unlink_store(ctx, root)
    assert seen.is_file()  # now the only copy: kept
    assert any(p == str(seen) and "last copy" in why for p, why in undone.kept)


def test_unlink_leaves_a_link_the_user_repointed_and_never_follows_one(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "a1111")
    store_before = tree_state(store)
    link_store(ctx, root, "a1111")
    link = root / "models" / "Lora" / "sdlib-store"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep.safetensors").parent.mkdir()
    (elsewhere / "keep.safetensors").write_bytes(b"mine")
    link.unlink()
    link.symlink_to(elsewhere, target_is_directory=True)
    undone = unlink_store(ctx, root)
    assert link.is_symlink() and (elsewhere / "keep.safetensors").read_bytes() == b"mine"
    assert any(p == str(link) for p, _ in undone.kept)
    assert not (root / "models" / "Stable-diffusion" / "sdlib-store").exists()
    assert tree_state(store) == store_before


def test_a_failure_half_way_undoes_what_was_done(
    ctx: Context, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path, "a1111")
    before = tree_state(root)
    real = apply.make_link
    calls = []

    def flaky(method: str, target: str, path: str) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(method, target, path)

    monkeypatch.setattr(apply, "make_link", flaky)
    with pytest.raises(LibraryError, match="nothing was changed"):
        link_store(ctx, root, "a1111")
    assert tree_state(root) == before
    assert _records(ctx) == []


def test_an_interrupted_link_is_recorded_so_unlink_cleans_it(
    ctx: Context, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path, "a1111")
    before = tree_state(root)
    real = apply.do_actions

    def killed(actions: list[apply.Action]) -> None:  # type: ignore[name-defined]
        real(actions[: len(actions) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(apply, "do_actions", killed)
    with pytest.raises(KeyboardInterrupt):
        link_store(ctx, root, "a1111")
    assert tree_state(root) != before
    unlink_store(ctx, root)
    assert tree_state(root) == before


def test_refusals(ctx: Context, store: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path, "a1111")
    with pytest.raises(NotFound):
        unlink_store(ctx, root)
    with pytest.raises(UsageError, match="no config file"):
        link_store(ctx, root, "a1111", method="config")
    with pytest.raises(UsageError, match="overlap"):
        link_store(ctx, store / "Lora", "a1111")
    link_store(ctx, root, "a1111")
    with pytest.raises(UsageError, match="already linked"):
        link_store(ctx, root, "a1111")
    taken = make_root(tmp_path / "2", "a1111")
    (taken / "models" / "Lora" / "sdlib-store").mkdir()
    before = tree_state(taken)
    with pytest.raises(UsageError, match="already exists"):
        link_store(ctx, taken, "a1111")
    assert tree_state(taken) == before


@pytest.mark.skipif(sys.platform == "win32", reason="checks the refusal off Windows")
def test_junctions_are_refused_off_windows(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Windows only"):
        link_store(ctx, make_root(tmp_path, "a1111"), "a1111", method="junction")


@pytest.mark.skipif(sys.platform != "win32", reason="junctions exist on Windows only")
def test_junction_link_and_unlink_on_windows(
    ctx: Context, store: Path, tmp_path: Path
) -> None:  # pragma: no cover - Windows CI
    root = make_root(tmp_path, "a1111")
    before, store_before = tree_state(root), tree_state(store)
    link_store(ctx, root, "a1111", method="junction")
    assert os.path.samefile(root / "models" / "Lora" / "sdlib-store", store / "Lora")
    unlink_store(ctx, root)
    assert tree_state(root) == before
    assert tree_state(store) == store_before


def test_a_second_run_at_the_same_time_is_refused(ctx: Context, tmp_path: Path) -> None:
    from sdlib.store.record import locked

    root = make_root(tmp_path, "a1111")
    before = tree_state(root)
    lock = locked(Path(ctx.settings.data_dir) / "store-links.json")
    with lock, pytest.raises(LibraryError, match="another"):
        link_store(ctx, root, "a1111")
    assert tree_state(root) == before


def test_a_linked_roots_destination_is_the_store_for_what_it_sees_there(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    from sdlib.taxonomy import Kind

    root = make_root(tmp_path, "forge")
    own = ctx.destination(root, "forge").folder_for(Kind.LORA)
    assert own == root / "models" / "Lora"
    link_store(ctx, root, "forge")
    dest = ctx.destination(root, "forge")
    assert dest.folder_for(Kind.LORA) == store / "Lora"  # downloaded once, into the store
    assert dest.folder_for(Kind.CHECKPOINT) == store / "StableDiffusion"
    # Forge does not follow a folder link for VAEs: they still go where Forge reads them.
    assert dest.folder_for(Kind.VAE) == root / "models" / "VAE"
    unlink_store(ctx, root)
    assert ctx.destination(root, "forge").folder_for(Kind.LORA) == own


def test_a_ui_folder_that_leads_outside_the_root_is_not_written_into(
    ctx: Context, store: Path, tmp_path: Path
) -> None:
    root = make_root(tmp_path, "a1111")
    elsewhere = tmp_path / "loras on another drive"
    elsewhere.mkdir()
    (root / "models" / "Lora").rmdir()
    (root / "models" / "Lora").symlink_to(elsewhere, target_is_directory=True)
    done = link_store(ctx, root, "a1111")
    assert list(elsewhere.iterdir()) == []  # nothing made outside the root
    assert any("models/Lora leads outside the root" in note for note in done.notes)
    assert os.path.samefile(root / "models" / "Stable-diffusion" / "sdlib-store",
                            store / "StableDiffusion")  # fmt: skip
