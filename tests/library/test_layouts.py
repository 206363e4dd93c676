from __future__ import annotations

from pathlib import Path

import pytest

from sdlib.errors import UsageError
from sdlib.library.layouts import LAYOUTS, KeyedBy, detect, get_layout, resolve_layout
from sdlib.taxonomy import Base, Kind


@pytest.mark.parametrize(
    ("ui", "kind", "base", "folder"),
    [
        ("a1111", Kind.CHECKPOINT, Base.SD1, "models/Stable-diffusion"),
        ("a1111", Kind.EMBEDDING, Base.SD1, "embeddings"),
        ("a1111", Kind.LYCORIS, Base.SDXL, "models/LyCORIS"),
        ("forge", Kind.LYCORIS, Base.SDXL, "models/Lora"),
        ("comfyui", Kind.LORA, Base.SDXL, "models/loras"),
        ("comfyui", Kind.UNET, Base.FLUX, "models/diffusion_models"),
        ("sdnext", Kind.CHECKPOINT, Base.FLUX, "models/UNET"),
        ("sdnext", Kind.EMBEDDING, Base.SD1, "models/embeddings"),
        ("stabilitymatrix", Kind.LYCORIS, Base.SD1, "Models/LyCORIS"),
        ("stabilitymatrix", Kind.CHECKPOINT, Base.FLUX, "Models/DiffusionModels"),
        ("a1111", Kind.HYPERNETWORK, Base.SD1, "models/hypernetworks"),
    ],
)
def test_folder_for(ui: str, kind: Kind, base: Base, folder: str) -> None:
    assert get_layout(ui).folder_for(kind, base) == folder


def test_name_keying_matches_the_front_ends() -> None:
    a1111 = get_layout("a1111")
    assert a1111.rule(Kind.LORA).keyed_by is KeyedBy.STEM  # type: ignore[union-attr]
    assert a1111.rule(Kind.CHECKPOINT).keyed_by is KeyedBy.RELPATH  # type: ignore[union-attr]
    assert get_layout("comfyui").rule(Kind.LORA).keyed_by is KeyedBy.RELPATH  # type: ignore[union-attr]


def test_overrides_from_config() -> None:
    layout = get_layout("a1111").with_overrides({"lora": "models/MyLoras"})
    assert layout.folder_for(Kind.LORA) == "models/MyLoras"
    with pytest.raises(UsageError):
        get_layout("a1111").with_overrides({"nonsense": "x"})


def _touch(root: Path, *paths: str) -> None:
    for p in paths:
        target = root / p
        if "." in Path(p).name:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
        else:
            target.mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (("webui.py", "modules/sd_models.py", "models/Stable-diffusion"), "a1111"),
        (("webui.py", "modules/sd_models.py", "modules_forge", "backend"), "forge"),
        (("webui.py", "modules/sd_models.py", "modules_forge", "ldm_patched"), "reforge"),
        (("launch.py", "installer.py", "modules/sd_models.py"), "sdnext"),
        (("comfy", "folder_paths.py", "main.py"), "comfyui"),
        (("Models/StableDiffusion",), "stabilitymatrix"),
    ],
)
def test_detect(tmp_path: Path, files: tuple[str, ...], expected: str) -> None:
    _touch(tmp_path, *files)
    layout = detect(tmp_path)
    assert layout is not None and layout.name == expected
    assert resolve_layout("auto", tmp_path).name == expected


def test_undetectable_root_is_a_usage_error(tmp_path: Path) -> None:
    assert detect(tmp_path) is None
    with pytest.raises(UsageError, match="--ui"):
        resolve_layout("auto", tmp_path)
    with pytest.raises(UsageError, match="unknown webUI"):
        get_layout("photoshop")


def test_every_layout_places_the_common_kinds() -> None:
    for layout in LAYOUTS.values():
        for kind in (Kind.CHECKPOINT, Kind.LORA, Kind.EMBEDDING, Kind.VAE, Kind.CONTROLNET):
            assert layout.folder_for(kind), (layout.name, kind)
