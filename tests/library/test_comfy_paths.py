"""ComfyUI's extra_model_paths.yaml, read without a YAML library."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdlib.errors import ConfigError
from sdlib.library.comfy_paths import (
    extend_layout,
    parse_extra_paths,
    parse_yaml_sections,
    read_extra_paths,
)
from sdlib.library.layouts import COMFYUI
from sdlib.taxonomy import Base, Kind

# ComfyUI's shipped extra_model_paths.yaml.example, verbatim in structure.
EXAMPLE = """\
#Rename this to extra_model_paths.yaml and ComfyUI will load it


#config for a1111 ui
#all you have to do is change the base_path to where yours is installed
a111:
    base_path: path/to/stable-diffusion-webui/

    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    upscale_models: |
                  models/ESRGAN
                  models/RealESRGAN
                  models/SwinIR
    embeddings: embeddings
    hypernetworks: models/hypernetworks
    controlnet: models/ControlNet

#config for comfyui
#your base path should be either an existing comfy install or a central folder where you store all of your models, loras, etc.

#comfyui:
#     base_path: path/to/comfyui/
#     # You can use is_default to mark that these folders should be listed first, and used as the default dirs for eg downloads
#     #is_default: true
#     checkpoints: models/checkpoints/
#     clip: models/clip/
"""  # noqa: E501


def test_the_shipped_example(tmp_path: Path) -> None:
    folders = parse_extra_paths(EXAMPLE, tmp_path)
    base = tmp_path / "path" / "to" / "stable-diffusion-webui"
    got = [(f.section, f.key, f.path, f.is_default) for f in folders]
    assert got[:4] == [
        ("a111", "checkpoints", str(base / "models" / "Stable-diffusion"), False),
        ("a111", "configs", str(base / "models" / "Stable-diffusion"), False),
        ("a111", "vae", str(base / "models" / "VAE"), False),
        ("a111", "loras", str(base / "models" / "Lora"), False),
    ]
    assert [f.path for f in folders if f.key == "upscale_models"] == [
        str(base / "models" / n) for n in ("ESRGAN", "RealESRGAN", "SwinIR")
    ]
    assert len(folders) == 11  # the commented comfyui section adds nothing


def test_scalars_blocks_comments_and_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_HOME", "/srv/models")
    text = """
shared:   # a comment after the key
  base_path: "$MODELS_HOME/sd"
  is_default: true
  checkpoints: 'it''s # not a comment'
  unet: |-
    unet # inside a block, '#' is a character
    diffusion_models

  clip: "C:\\\\ComfyUI\\\\clip"
  loras: >
    folded
    line
nobase:
  vae: relative/vae
  text_encoders: /abs/te
"""
    sections = parse_yaml_sections(text)
    assert (
        sections["shared"]["unet"] == "unet # inside a block, '#' is a character\ndiffusion_models"
    )
    assert sections["shared"]["loras"] == "folded line"
    assert sections["shared"]["clip"] == "C:\\ComfyUI\\clip"
    folders = {(f.section, f.key, f.path, f.is_default) for f in parse_extra_paths(text, tmp_path)}
    assert ("shared", "checkpoints", "/srv/models/sd/it's # not a comment", True) in folders
    assert ("shared", "unet", "/srv/models/sd/diffusion_models", True) in folders
    assert ("nobase", "vae", str(tmp_path / "relative" / "vae"), False) in folders
    assert ("nobase", "text_encoders", "/abs/te", False) in folders


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:\n  loras:\n    - models/Lora\n", "lists"),
        ("a:\n  loras: [x, y]\n", "lists"),
        ("a:\n\tloras: x\n", "tabs"),
        ("  loras: x\n", "outside a section"),
        ("a:\n  loras: x\n    vae: y\n", "inconsistent"),
        ("a:\n  loras: 'open\n", "unterminated"),
        ("a: b\n", "must hold"),
    ],
)
def test_unsupported_yaml_is_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_yaml_sections(text, "extra_model_paths.yaml")
    assert "line " in str(err.value) and "extra_model_paths.yaml" in str(err.value)


def test_read_from_a_root_and_extend_the_layout(tmp_path: Path) -> None:
    assert read_extra_paths(tmp_path) == []
    ssd = tmp_path / "ssd"
    (tmp_path / "extra_model_paths.yaml").write_text(
        "a111:\n  base_path: ../webui\n  loras: |\n    models/Lora\n    models/LyCORIS\n"
        f"fast:\n  base_path: {ssd}\n  is_default: true\n  checkpoints: ckpt\n"
        "  clip_vision: cv\n  configs: conf\n",
        encoding="utf-8",
    )
    layout = extend_layout(COMFYUI, read_extra_paths(tmp_path))
    webui = os.path.normpath(tmp_path / ".." / "webui")
    lora = layout.rule(Kind.LORA)
    assert lora is not None
    assert lora.folders == ("models/loras", f"{webui}/models/Lora", f"{webui}/models/LyCORIS")
    # is_default puts its folders first: new checkpoints go there.
    assert layout.folder_for(Kind.CHECKPOINT, Base.SD1) == str(ssd / "ckpt")
    assert "models/checkpoints" in layout.accepted_folders(Kind.CHECKPOINT)
    assert layout.folder_for(Kind.CLIP_VISION) == str(ssd / "cv")
    assert str(ssd / "conf") not in layout.scan_folders()  # no kind for configs


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "extra_model_paths.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read"):
        read_extra_paths(tmp_path)
