"""A folder with a webUI's model folders but none of its code (one that ``sdlib download
--root DIR --ui a1111`` made) is recognised, so the next command needs no ``--ui``
(issue 16 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdlib.errors import UsageError
from sdlib.library.layouts import detect, resolve_layout


def _dirs(root: Path, *folders: str) -> Path:
    for folder in folders:
        (root / folder).mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        (("models/Stable-diffusion",), "a1111"),
        (("models/Lora", "embeddings"), "a1111"),
        (("models/checkpoints",), "comfyui"),
        (("models/loras", "models/vae"), "comfyui"),
    ],
)
def test_model_folders_tell_the_layout(
    tmp_path: Path, folders: tuple[str, ...], expected: str
) -> None:
    _dirs(tmp_path, *folders)
    assert resolve_layout("auto", tmp_path).name == expected


@pytest.mark.parametrize(
    "folders",
    [
        ("embeddings",),  # a lone embeddings folder says too little
        ("models/VAE", "models/hypernetworks"),  # both layouts have these
        ("models/Stable-diffusion", "models/checkpoints"),  # both layouts at once
        ("Models",),
    ],
)
def test_ambiguous_or_bare_folders_still_ask_for_ui(
    tmp_path: Path, folders: tuple[str, ...]
) -> None:
    _dirs(tmp_path, *folders)
    assert detect(tmp_path) is None
    with pytest.raises(UsageError, match="--ui"):
        resolve_layout("auto", tmp_path)


def test_a_file_named_models_is_no_sign(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "Stable-diffusion").write_text("not a folder")
    assert detect(tmp_path) is None


def test_marker_files_still_win(tmp_path: Path) -> None:
    _dirs(tmp_path, "models/Stable-diffusion", "comfy")
    (tmp_path / "folder_paths.py").write_text("")
    assert resolve_layout("auto", tmp_path).name == "comfyui"
