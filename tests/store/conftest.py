"""A store with two models, webUI trees holding the user's own files, and a Context whose
data dir (where link records live) is private to the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.config import Settings, StoreSettings
from sdlib.services import Context
from sdlib.store.tree import init_tree
from tests.support import trees
from tests.support.trees import st, touch

COMFY_YAML = (
    "# my own paths: sdlib must keep this comment\n"
    "a111:\n"
    "    base_path: ../stable-diffusion-webui   # relative to this file\n"
    "    checkpoints: models/Stable-diffusion\n"
    "    loras: |\n"
    "        models/Lora\n"
    "        models/LyCORIS\n"
    "\n"
    "# a second section, commented\n"
    "other:\n"
    "    vae: /srv/vae\n"
)

SDNEXT_JSON = '{\n  "sd_model_checkpoint": "own.safetensors",\n  "lora_dir": "/custom/loras"\n}'


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path, _ = init_tree(tmp_path / "store", adopt=False)
    st(path / "StableDiffusion" / "shared one.safetensors", "sd15_pruned_fp16", small=True)
    st(path / "Lora" / "sub" / "shared lora.safetensors", "lora_sd15_kohya", small=True)
    return path


@pytest.fixture
def ctx(tmp_path: Path, store: Path) -> Iterator[Context]:
    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
        config_path=tmp_path / "config.toml", store=StoreSettings(str(store)),
    )  # fmt: skip
    with Context(settings) as context:
        yield context


def make_root(base: Path, ui: str, *, own_models: bool = True) -> Path:
    """A webUI root of ``ui`` with the user's files in it (a model, a config, a note)."""
    root = base / f"{ui} root"
    if ui == "reforge":  # reForge: A1111's files plus ldm_patched and modules_forge
        trees.a1111(root)
        for name in ("modules_forge", "ldm_patched"):
            (root / name).mkdir()
    else:
        getattr(trees, ui)(root)
    if ui == "comfyui":
        touch(root / "extra_model_paths.yaml", COMFY_YAML)
        folder = root / "models" / "checkpoints"
    else:
        folder = root / "models" / "Stable-diffusion"
        touch(folder / "Put Stable Diffusion checkpoints here.txt", "tracked by git")
    if ui == "sdnext":
        touch(root / "config.json", SDNEXT_JSON)
    if own_models:
        st(folder / "own.safetensors", "sd15_pruned_fp16", {"own": "1"}, small=True)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    (root / "models" / "Lora").mkdir(parents=True, exist_ok=True)
    return root
