"""Messy webUI trees for the library tests: header-valid model files, real sidecars, the
problems users have (misplaced files, duplicates, clashes, broken links, odd names).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from sdlib.demo.catalogue import slim
from sdlib.demo.specs import SPECS
from sdlib.demo.writers import write_safetensors
from tests.support.pickles import call_pickle, shell_touch

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
JPEG = b"\xff\xd8\xff\xe0\0\x10JFIF" + b"\0" * 40


def st(
    path: Path, spec: str, meta: Mapping[str, str] | None = None, *, small: bool = False
) -> Path:
    """A header-valid safetensors file of fixture ``spec`` (sparse; ``small``: slimmed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = SPECS[spec]()
    if small:
        specs = slim(specs)
    return write_safetensors(path, specs, dict(meta) if meta else None, sparse=True)


def touch(path: Path, data: bytes | str = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def a1111(root: Path) -> Path:
    touch(root / "webui.py")
    touch(root / "modules" / "sd_models.py")
    return root


def forge(root: Path) -> Path:
    a1111(root)
    (root / "modules_forge").mkdir(exist_ok=True)
    (root / "backend").mkdir(exist_ok=True)
    return root


def comfyui(root: Path) -> Path:
    (root / "comfy").mkdir(parents=True, exist_ok=True)
    touch(root / "folder_paths.py")
    touch(root / "main.py")
    return root


def sdnext(root: Path) -> Path:
    touch(root / "launch.py")
    touch(root / "installer.py")
    touch(root / "modules" / "sd_models.py")
    return root


def stabilitymatrix(root: Path) -> Path:
    (root / "Models" / "StableDiffusion").mkdir(parents=True, exist_ok=True)
    return root


def unsafe_pickle(path: Path, sentinel: Path) -> Path:
    return touch(path, call_pickle("posix", "system", shell_touch(sentinel)))


def messy_a1111(root: Path, outside: Path) -> dict[str, set[str]]:
    """A1111 with one of each problem. Returns {relative path: expected statuses}."""
    a1111(root)
    sd, lora = root / "models" / "Stable-diffusion", root / "models" / "Lora"
    st(sd / "dreamshaper 8 [final].safetensors", "sd15_pruned_fp16", small=True)
    st(sd / "sdxl_base.safetensors", "sdxl_base", small=True)
    st(sd / "sdxl_base.vae.safetensors", "vae_flux", small=True)
    st(sd / "add_detail.safetensors", "lora_sd15_kohya", {"ss_output_name": "add_detail"})
    touch(sd / "add_detail.civitai.info", json.dumps({"id": 62833, "modelId": 58390}))
    touch(sd / "add_detail.json", json.dumps({"description": "my notes"}))
    touch(sd / "add_detail.preview.png", JPEG)
    touch(sd / "Put Stable Diffusion checkpoints here.txt")
    st(lora / "style.safetensors", "lora_sd15_kohya", {"ss_output_name": "style"})
    st(lora / "characters" / "style.safetensors", "locon_sd15")
    shutil.copy2(lora / "style.safetensors", lora / "copy of style.safetensors")
    touch(lora / "ghost.civitai.info", "{}")
    touch(lora / "lost.preview.png", PNG)
    st(lora / "画风 ñ (v2).safetensors", "lokr_sdxl")
    long_name = "a" * 238 + ".safetensors"
    st(lora / long_name, "loha_sd15", {"n": "long"})
    os.symlink(root / "no-such-file.safetensors", lora / "dead.safetensors")
    st(outside / "outside.safetensors", "dora_sdxl")
    os.symlink(outside, lora / "linked", target_is_directory=True)
    os.symlink(lora, lora / "characters" / "loop", target_is_directory=True)
    ro = st(lora / "readonly.safetensors", "embedding_sd15")
    ro.chmod(0o444)
    st(root / "models" / "LyCORIS" / "lost.safetensors", "loha_sd15")
    st(root / "models" / "VAE" / "vae-ft-mse.safetensors", "vae_sd", small=True)
    st(root / "models" / "VAE" / "Upper.SAFETENSORS", "vae_sd", {"x": "1"}, small=True)
    st(root / "models" / "ESRGAN" / "4x.safetensors", "esrgan_x4")
    st(root / "embeddings" / "easynegative.safetensors", "embedding_sd15", {"name": "en"})
    unsafe_pickle(root / "embeddings" / "evil.pt", outside / "PWNED")
    touch(root / "embeddings" / "broken.safetensors", b'\x40\0\0\0\0\0\0\0{"a":')
    return {
        "models/Stable-diffusion/dreamshaper 8 [final].safetensors": {"ok"},
        "models/Stable-diffusion/sdxl_base.safetensors": {"ok"},
        "models/Stable-diffusion/sdxl_base.vae.safetensors": {"ok"},
        "models/Stable-diffusion/add_detail.safetensors": {"misplaced"},
        "models/Stable-diffusion/add_detail.civitai.info": {"ok"},
        "models/Stable-diffusion/add_detail.json": {"ok"},
        "models/Stable-diffusion/add_detail.preview.png": {"wrong-preview-extension"},
        "models/Lora/style.safetensors": {"name-clash", "duplicate"},
        "models/Lora/characters/style.safetensors": {"name-clash"},
        "models/Lora/copy of style.safetensors": {"duplicate"},
        "models/Lora/ghost.civitai.info": {"orphan-sidecar"},
        "models/Lora/lost.preview.png": {"orphan-sidecar"},
        "models/Lora/画风 ñ (v2).safetensors": {"ok"},
        f"models/Lora/{long_name}": {"illegal-or-too-long-name"},
        "models/Lora/dead.safetensors": {"broken-link"},
        "models/Lora/linked": {"link-outside-root"},
        "models/Lora/linked/outside.safetensors": {"ok"},
        "models/Lora/readonly.safetensors": {"misplaced"},
        "models/LyCORIS/lost.safetensors": {"ok"},
        "models/VAE/vae-ft-mse.safetensors": {"ok"},
        "models/VAE/Upper.SAFETENSORS": {"unsupported-extension"},
        "models/ESRGAN/4x.safetensors": {"unsupported-extension"},
        "embeddings/easynegative.safetensors": {"ok"},
        "embeddings/evil.pt": {"unsafe-pickle", "unknown"},
        "embeddings/broken.safetensors": {"corrupt"},
    }


def messy_comfyui(root: Path, webui: Path) -> dict[str, set[str]]:
    """ComfyUI plus an A1111 folder shared through extra_model_paths.yaml."""
    comfyui(root)
    m = root / "models"
    st(m / "checkpoints" / "sd15.safetensors", "sd15_pruned_fp16", small=True)
    st(m / "checkpoints" / "flux1-dev.safetensors", "flux_dev", small=True)
    st(m / "loras" / "detail.safetensors", "lora_sd15_kohya")
    st(m / "loras" / "SDXL" / "detail.safetensors", "lora_sdxl_kohya")
    st(m / "vae" / "ae.sft", "vae_flux", small=True)
    st(m / "unet" / "same.safetensors", "sdxl_unet", small=True)
    st(m / "diffusion_models" / "same.safetensors", "sdxl_unet", {"other": "1"}, small=True)
    st(m / "embeddings" / "not_an_embedding.safetensors", "lora_sdxl_kohya", {"x": "y"})
    st(m / "text_encoders" / "clip_l.safetensors", "clip_l")
    a1111(webui)
    st(webui / "models" / "Stable-diffusion" / "a1111_model.safetensors", "sd21_768v", small=True)
    st(webui / "models" / "LyCORIS" / "loha.safetensors", "loha_sd15")
    rel = os.path.relpath(webui, root)
    touch(
        root / "extra_model_paths.yaml",
        f"""
# shared with my A1111 install
a111:
    base_path: {rel}
    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS
""",
    )
    shared = str(webui)  # outside the root: shown as absolute paths
    return {
        "models/checkpoints/sd15.safetensors": {"ok"},
        "models/checkpoints/flux1-dev.safetensors": {"misplaced"},
        "models/loras/detail.safetensors": {"ok"},
        "models/loras/SDXL/detail.safetensors": {"ok"},
        "models/vae/ae.sft": {"ok"},
        "models/unet/same.safetensors": {"name-clash"},
        "models/diffusion_models/same.safetensors": {"name-clash"},
        "models/embeddings/not_an_embedding.safetensors": {"misplaced"},
        "models/text_encoders/clip_l.safetensors": {"ok"},
        f"{shared}/models/Stable-diffusion/a1111_model.safetensors": {"ok"},
        f"{shared}/models/LyCORIS/loha.safetensors": {"ok"},
    }


def small_tree(root: Path) -> Path:
    """A small A1111 tree with every fixable problem, quick to hash (kill tests)."""
    a1111(root)
    sd, lora = root / "models" / "Stable-diffusion", root / "models" / "Lora"
    st(sd / "model [v1].safetensors", "sd15_pruned_fp16", small=True)
    st(sd / "model [v1].vae.safetensors", "vae_sd", small=True)
    touch(sd / "model [v1].civitai.info", json.dumps({"id": 1}))
    for i in range(3):
        p = st(sd / f"lora {i}.safetensors", "lokr_sdxl", {"i": str(i)})
        touch(p.with_name(f"lora {i}.civitai.info"), json.dumps({"id": i}))
        touch(p.with_name(f"lora {i}.preview.png"), JPEG if i else PNG)
        touch(p.with_name(f"lora {i}.json"), json.dumps({"description": f"n{i}"}))
    st(lora / "clash.safetensors", "lokr_sdxl", {"c": "1"})
    st(lora / "sub" / "clash.safetensors", "lokr_sdxl", {"c": "2"})
    touch(lora / "sub" / "clash.preview.png", PNG)
    st(lora / "dup.safetensors", "lokr_sdxl", {"d": "1"})
    shutil.copy2(lora / "dup.safetensors", lora / "dup copy.safetensors")
    touch(lora / "dup copy.json", json.dumps({"description": "copy"}))
    ro = st(sd / "emb ro.safetensors", "embedding_sd15")
    ro.chmod(0o444)
    st(lora / ("é" * 110 + ".safetensors"), "lokr_sdxl", {"long": "1"})
    st(root / "embeddings" / "ok.safetensors", "embedding_sd15", {"ok": "1"})
    return root


def tree_state(root: Path) -> tuple[dict[str, str], set[str]]:
    """({relative file path: SHA256 or 'link:<target>'}, {relative folders}) under ``root``."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                files[os.path.join(rel_dir, d)] = "link:" + os.readlink(full)
                dirnames.remove(d)
            else:
                dirs.add(os.path.normpath(os.path.join(rel_dir, d)))
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                files[rel] = "link:" + os.readlink(full)
            else:
                files[rel] = sha256(full)
    return files, dirs


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
