"""SD.Next's ``config.json`` folder keys: where it reads each kind from when they are set.

SD.Next keeps its settings in one JSON object in ``<root>/config.json`` (reference
layouts.md 3). A folder key (``ckpt_dir``, ``lora_dir``, ``vae_dir``...) replaces the UI's
default folder for that kind; ``sdlib link --method config`` sets them to a shared store's
folders, and users set them by hand. A relative value is relative to the SD.Next folder (its
working directory); an empty or non-text value means the default. Unknown keys and the rest
of the file are ignored, and a file that is not a JSON object adds nothing: SD.Next then
falls back to its defaults too.

Pure parsing (``parse_sdnext_dirs``) apart from the 2-line wrapper that reads the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from sdlib.errors import ConfigError
from sdlib.library.layouts import Layout
from sdlib.taxonomy import Kind

__all__ = ["SDNEXT_KEY_KINDS", "extend_layout", "parse_sdnext_dirs", "read_sdnext_dirs"]

FILE_NAME = "config.json"

#: SD.Next folder keys -> the kinds sdlib files under them (LyCORIS load from the LoRA folder).
SDNEXT_KEY_KINDS: Mapping[str, tuple[Kind, ...]] = {
    "ckpt_dir": (Kind.CHECKPOINT,),
    "unet_dir": (Kind.UNET,),
    "lora_dir": (Kind.LORA, Kind.LYCORIS),
    "embeddings_dir": (Kind.EMBEDDING,),
    "hypernetwork_dir": (Kind.HYPERNETWORK,),
    "vae_dir": (Kind.VAE,),
    "esrgan_models_path": (Kind.UPSCALER,),
    "te_dir": (Kind.TEXT_ENCODER,),
}


def parse_sdnext_dirs(text: str, root: str | os.PathLike[str]) -> dict[Kind, str]:
    """{kind: absolute folder} for each folder key ``text`` (config.json) sets."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    base = os.path.abspath(root)
    out: dict[Kind, str] = {}
    for key, kinds in SDNEXT_KEY_KINDS.items():
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        folder = os.path.expandvars(os.path.expanduser(value.strip()))
        folder = os.path.normpath(os.path.join(base, folder))
        for kind in kinds:
            out[kind] = folder
    return out


def read_sdnext_dirs(root: str | os.PathLike[str]) -> dict[Kind, str]:
    """The folders ``<root>/config.json`` sets (none if there is no such file)."""
    path = Path(root) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read SD.Next's {FILE_NAME}: {exc}", path=str(path)) from None
    return parse_sdnext_dirs(text, root)


def extend_layout(
    layout: Layout, root: str | os.PathLike[str], folders: Mapping[Kind, str]
) -> Layout:
    """``layout`` (SD.Next's) reading each configured folder first for its kind: new files
    go there, and files in it are where SD.Next loads them. The default folder stays in the
    rule, so a model the user still keeps there is not lost from the library."""
    top = os.path.abspath(root)
    extra: dict[Kind, tuple[str, ...]] = {}
    for kind, folder in folders.items():
        rel = os.path.relpath(folder, top) if _inside(folder, top) else folder
        extra[kind] = (rel.replace(os.sep, "/") if rel != folder else folder,)
    return layout.with_extra_folders(extra, first=True) if extra else layout


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # another drive
        return False
