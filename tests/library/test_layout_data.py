"""Layout facts the scanner relies on (reference layouts.md sections 1-6 and 9)."""

from __future__ import annotations

import pytest

from sdlib.library.layouts import LAYOUTS, PLAIN, KeyedBy, get_layout
from sdlib.library.placement import base_folder, is_base_folder
from sdlib.taxonomy import Base, Kind


def lists(ui: str, folder: str, name: str) -> list[Kind]:
    return [r.kind for r in get_layout(ui).rules if folder in r.folders and r.accepts_name(name)]


@pytest.mark.parametrize(
    ("ui", "folder", "name", "kinds"),
    [
        # A1111 1.10 upscalers take no .safetensors (DAT does); Forge and reForge do.
        ("a1111", "models/ESRGAN", "4x.safetensors", []),
        ("a1111", "models/DAT", "4x.safetensors", [Kind.UPSCALER]),
        ("forge", "models/ESRGAN", "4x.safetensors", [Kind.UPSCALER]),
        ("reforge", "models/SwinIR", "x.safetensors", [Kind.UPSCALER]),
        # *.vae.* in the checkpoint folder are VAEs, not checkpoints.
        ("a1111", "models/Stable-diffusion", "m.vae.safetensors", [Kind.VAE]),
        ("a1111", "models/Stable-diffusion", "m.safetensors", [Kind.CHECKPOINT]),
        # Case: A1111 globs VAEs and hypernetworks case-sensitively; walk_files does not.
        ("a1111", "models/VAE", "v.SAFETENSORS", []),
        ("a1111", "models/hypernetworks", "h.PT", []),
        ("a1111", "models/Lora", "l.SAFETENSORS", [Kind.LORA, Kind.LYCORIS]),
        ("a1111", "models/hypernetworks", "h.safetensors", []),
        ("forge", "models/Stable-diffusion", "flux.gguf", [Kind.CHECKPOINT, Kind.UNET]),
        ("forge", "models/text_encoder", "t5.sft", []),
        ("reforge", "models/text_encoders", "clip.ckpt", [Kind.TEXT_ENCODER]),
        ("sdnext", "models/Stable-diffusion", "m.ckpt", []),
        ("comfyui", "models/vae", "ae.sft", [Kind.VAE]),
        ("comfyui", "models/checkpoints", "x.gguf", []),
        ("stabilitymatrix", "Models/IpAdaptersXl", "ip.bin", [Kind.IP_ADAPTER]),
    ],
)
def test_what_each_front_end_lists(ui: str, folder: str, name: str, kinds: list[Kind]) -> None:
    assert lists(ui, folder, name) == kinds


def test_keying() -> None:
    forge = get_layout("forge")
    assert forge.rule(Kind.TEXT_ENCODER).keyed_by is KeyedBy.NAME  # type: ignore[union-attr]
    reforge = get_layout("reforge")
    assert reforge.rule(Kind.TEXT_ENCODER).keyed_by is KeyedBy.RELPATH  # type: ignore[union-attr]
    assert all(r.keyed_by is KeyedBy.RELPATH for r in get_layout("comfyui").rules)


def test_accepted_folders() -> None:
    a1111 = get_layout("a1111")
    assert a1111.accepted_folders(Kind.LYCORIS) == ("models/Lora", "models/LyCORIS")
    assert a1111.accepted_folders(Kind.UNET) == ()
    sdnext = get_layout("sdnext")
    assert "models/UNET" in sdnext.accepted_folders(Kind.CHECKPOINT, Base.FLUX)
    assert "models/UNET" not in sdnext.accepted_folders(Kind.CHECKPOINT, Base.SD1)
    assert "models/LyCORIS" in sdnext.scan_folders()  # legacy: scanned, never accepted
    assert "models/LyCORIS" not in sdnext.accepted_folders(Kind.LYCORIS)


def test_a_download_folder_elsewhere_is_read_beside_the_webuis_own() -> None:
    layout = get_layout("a1111").with_overrides({"lora": "/data/loras"})
    assert layout.folder_for(Kind.LORA) == "/data/loras"
    # A1111 still reads models/Lora: a download folder only says where new files go.
    assert layout.accepted_folders(Kind.LORA) == ("/data/loras", "models/Lora", "models/LyCORIS")
    assert {"models/Lora", "/data/loras"} <= set(layout.scan_folders())
    added = get_layout("a1111").with_overrides({"text-encoder": "models/te"})
    assert added.folder_for(Kind.TEXT_ENCODER) == "models/te"


def test_a_download_folder_inside_the_kinds_folder_adds_no_scan_folder() -> None:
    plain = get_layout("a1111")
    layout = plain.with_overrides({"lora": "models/Lora/civitai"})
    assert layout.folder_for(Kind.LORA) == "models/Lora/civitai"
    assert layout.scan_folders() == plain.scan_folders()
    assert layout.accepted_folders(Kind.LORA) == plain.accepted_folders(Kind.LORA)
    same = get_layout("comfyui").with_overrides({"checkpoint": "models\\checkpoints\\sdxl"})
    assert same.scan_folders() == get_layout("comfyui").scan_folders()


def test_every_layout_places_the_common_kinds() -> None:
    for layout in LAYOUTS.values():
        for kind in (Kind.CHECKPOINT, Kind.LORA, Kind.EMBEDDING, Kind.VAE):
            assert layout.folder_for(kind, Base.SD1), (layout.name, kind)
    assert PLAIN.any_kind and PLAIN.scan_folders() == (".",)


def test_base_folders() -> None:
    assert base_folder(Base.SD1) == "SD1.5" and base_folder(Base.FLUX) == "FLUX1"
    assert base_folder(Base.UNKNOWN) is None
    assert is_base_folder("sdxl") and is_base_folder("SD1.5") and not is_base_folder("styles")
