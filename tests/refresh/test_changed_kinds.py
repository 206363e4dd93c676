"""Which webUI lists a set of changed files touches: the folder a file is in decides, as
it does for the webUI (layouts.md: each UI lists files by folder)."""

from __future__ import annotations

from pathlib import Path

from sdlib.library.layouts import get_layout
from sdlib.services.refresh import changed_kinds
from sdlib.taxonomy import Kind

ROOT = Path("/webui")


def kinds(ui: str, *placed: tuple[str, str | None]) -> frozenset[Kind]:
    return changed_kinds(get_layout(ui), ROOT, [(ROOT / p, k) for p, k in placed])


def test_a_download_keeps_its_kind_where_its_folder_agrees() -> None:
    assert kinds("a1111", ("models/Lora/add_detail.safetensors", "lora")) == {Kind.LORA}
    assert kinds("a1111", ("models/Lora/sub/retro.safetensors", "lycoris")) == {Kind.LYCORIS}
    assert kinds("forge", ("models/Stable-diffusion/flux.safetensors", "checkpoint")) == {
        Kind.CHECKPOINT
    }


def test_the_folder_wins_where_the_webui_lists_the_file_elsewhere() -> None:
    # SD.Next keeps Flux checkpoints in models/UNET: its UNet list changes, not checkpoints.
    assert kinds("sdnext", ("models/UNET/flux1-dev.safetensors", "checkpoint")) == {Kind.UNET}


def test_a_move_changes_both_lists_and_sidecars_change_none() -> None:
    moved = kinds(
        "a1111",
        ("models/Lora/actually_a_checkpoint.safetensors", None),
        ("models/Stable-diffusion/actually_a_checkpoint.safetensors", None),
        ("models/Lora/actually_a_checkpoint.civitai.info", None),
        ("models/Stable-diffusion/actually_a_checkpoint.preview.png", None),
    )
    assert moved == {Kind.LORA, Kind.CHECKPOINT}
    assert kinds("a1111", ("models/Lora/notes.txt", "lora")) == set()


def test_without_a_layout_or_outside_the_root_the_known_kind_decides() -> None:
    assert changed_kinds(None, None, [("/x/y.safetensors", "vae")]) == {Kind.VAE}
    store = [(Path("/store/Lora/a.safetensors"), "lora"), ("/store/b.bin", "unknown")]
    assert changed_kinds(get_layout("a1111"), ROOT, store) == {Kind.LORA}
