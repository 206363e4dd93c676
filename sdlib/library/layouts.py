"""Where each webUI looks for each kind of model, as data.

Facts from the front ends' own code (see the README's "Layouts" section): folder per kind,
accepted extensions, whether subfolders are scanned, and how the front end keys a model
(by file stem, by file name, or by path relative to its folder), which decides whether two
files with the same name in different subfolders clash. ``detect`` recognises a root.

Pure data and pure functions: no file is read except by ``detect``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from sdlib.errors import UsageError
from sdlib.taxonomy import Base, Kind


class KeyedBy(str, Enum):
    STEM = "stem"  # file name without extension: the same stem anywhere clashes
    NAME = "name"  # file name with extension
    RELPATH = "relpath"  # path relative to the kind's folder: subfolders keep names apart


PT = (".ckpt", ".pt", ".safetensors")
COMFY_PT = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")


@dataclass(frozen=True)
class FolderRule:
    kind: Kind
    #: Folders relative to the root; sdlib places new files in the first.
    folders: tuple[str, ...]
    extensions: tuple[str, ...]
    keyed_by: KeyedBy = KeyedBy.STEM
    recursive: bool = True


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    rules: tuple[FolderRule, ...]
    #: Paths (relative to a candidate root) whose presence identifies this front end.
    markers: tuple[str, ...]
    #: Bases whose checkpoints this front end loads from the UNet/diffusion-model folder.
    dit_bases: frozenset[Base] = frozenset()
    overrides: Mapping[Kind, str] = field(default_factory=dict)

    def rule(self, kind: Kind) -> FolderRule | None:
        for rule in self.rules:
            if rule.kind is kind:
                return rule
        return None

    def folder_for(self, kind: Kind, base: Base = Base.UNKNOWN) -> str | None:
        """The folder (relative to the root) where a file of this kind and base goes."""
        if kind in self.overrides:
            return self.overrides[kind]
        if kind is Kind.CHECKPOINT and base in self.dit_bases and self.rule(Kind.UNET):
            kind = Kind.UNET
        rule = self.rule(kind)
        return rule.folders[0] if rule else None

    def with_overrides(self, folders: Mapping[str, str]) -> Layout:
        """The config's ``[library] folders`` table: {"lora": "models/MyLoras", ...}."""
        parsed: dict[Kind, str] = dict(self.overrides)
        for key, value in folders.items():
            try:
                parsed[Kind(key)] = value
            except ValueError:
                raise UsageError(f"library.folders: unknown kind {key!r}") from None
        return replace(self, overrides=parsed)

    def model_folders(self) -> list[tuple[Kind, str]]:
        """Every (kind, folder) pair this front end scans."""
        pairs = [(r.kind, f) for r in self.rules for f in r.folders]
        pairs += [(k, f) for k, f in self.overrides.items() if (k, f) not in pairs]
        return pairs


def _a1111_rules(embeddings: str = "embeddings", lycoris: bool = True) -> tuple[FolderRule, ...]:
    lora_folders = ("models/Lora", "models/LyCORIS") if lycoris else ("models/Lora",)
    return (
        FolderRule(Kind.CHECKPOINT, ("models/Stable-diffusion",), (".ckpt", ".safetensors"),
                   KeyedBy.RELPATH),
        FolderRule(Kind.LORA, lora_folders, PT),
        FolderRule(Kind.LYCORIS, lora_folders[::-1] if lycoris else lora_folders, PT),
        FolderRule(Kind.EMBEDDING, (embeddings,), (".pt", ".bin", ".safetensors")),
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), (".pt",)),
        FolderRule(Kind.VAE, ("models/VAE",), PT, KeyedBy.NAME),
        FolderRule(Kind.CONTROLNET, ("models/ControlNet",),
                   (".pt", ".pth", ".ckpt", ".safetensors", ".bin")),
        FolderRule(Kind.UPSCALER, ("models/ESRGAN",), (".pt", ".pth", ".safetensors")),
        FolderRule(Kind.IP_ADAPTER, ("models/ControlNet",),
                   (".pt", ".pth", ".ckpt", ".safetensors", ".bin")),
    )  # fmt: skip


_FORGE_EXTRA = (
    FolderRule(Kind.UNET, ("models/Stable-diffusion",), (".safetensors", ".gguf"),
               KeyedBy.RELPATH),
    FolderRule(Kind.TEXT_ENCODER, ("models/text_encoder",), (".safetensors", ".gguf")),
)  # fmt: skip

A1111 = Layout(
    "a1111",
    "AUTOMATIC1111 stable-diffusion-webui",
    _a1111_rules(),
    markers=("webui.py", "modules/sd_models.py"),
)

FORGE = Layout(
    "forge",
    "Stable Diffusion WebUI Forge",
    _a1111_rules(lycoris=False) + _FORGE_EXTRA,
    markers=("webui.py", "modules_forge", "backend"),
)

REFORGE = Layout(
    "reforge",
    "Stable Diffusion WebUI reForge",
    _a1111_rules() + (FolderRule(Kind.TEXT_ENCODER, ("models/text_encoders",), (".safetensors",)),),
    markers=("webui.py", "modules_forge", "ldm_patched"),
)

SDNEXT = Layout(
    "sdnext",
    "SD.Next",
    (
        FolderRule(Kind.CHECKPOINT, ("models/Stable-diffusion",), (".safetensors",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.UNET, ("models/UNET",), (".safetensors", ".gguf", ".pth")),
        FolderRule(Kind.LORA, ("models/Lora",), PT),
        FolderRule(Kind.LYCORIS, ("models/Lora",), PT),
        FolderRule(Kind.EMBEDDING, ("models/embeddings",), (".pt", ".safetensors")),
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), (".pt",)),
        FolderRule(Kind.VAE, ("models/VAE",), PT, KeyedBy.NAME),
        FolderRule(Kind.CONTROLNET, ("models/control/controlnet", "models/control/adapter"),
                   (".safetensors", ".pth", ".bin")),
        FolderRule(Kind.UPSCALER, ("models/ESRGAN",), (".pt", ".pth", ".safetensors")),
        FolderRule(Kind.TEXT_ENCODER, ("models/Text-encoder",), (".safetensors", ".gguf")),
        FolderRule(Kind.MOTION_MODULE, ("models/motion",), (".safetensors", ".ckpt", ".pth")),
    ),
    markers=("launch.py", "installer.py", "modules/sd_models.py"),
    dit_bases=frozenset({Base.SD3, Base.FLUX, Base.FLUX2, Base.PIXART}),
)  # fmt: skip

COMFYUI = Layout(
    "comfyui",
    "ComfyUI",
    (
        FolderRule(Kind.CHECKPOINT, ("models/checkpoints",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.UNET, ("models/diffusion_models", "models/unet"), COMFY_PT + (".gguf",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.LORA, ("models/loras",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.LYCORIS, ("models/loras",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.EMBEDDING, ("models/embeddings",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.VAE, ("models/vae",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.CONTROLNET, ("models/controlnet", "models/t2i_adapter"), COMFY_PT,
                   KeyedBy.RELPATH),
        FolderRule(Kind.UPSCALER, ("models/upscale_models",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.TEXT_ENCODER, ("models/text_encoders", "models/clip"),
                   COMFY_PT + (".gguf",), KeyedBy.RELPATH),
        FolderRule(Kind.IP_ADAPTER, ("models/ipadapter",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.MOTION_MODULE, ("models/animatediff_models",), COMFY_PT,
                   KeyedBy.RELPATH),
    ),
    markers=("comfy", "folder_paths.py"),
)  # fmt: skip

STABILITYMATRIX = Layout(
    "stabilitymatrix",
    "Stability Matrix shared Models folder",
    (
        FolderRule(Kind.CHECKPOINT, ("Models/StableDiffusion",), PT + (".gguf",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.UNET, ("Models/DiffusionModels", "Models/Unet"), PT + (".gguf",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.LORA, ("Models/Lora",), PT),
        FolderRule(Kind.LYCORIS, ("Models/LyCORIS",), PT),
        FolderRule(Kind.EMBEDDING, ("Models/Embeddings", "Models/TextualInversion"),
                   (".pt", ".bin", ".safetensors")),
        FolderRule(Kind.HYPERNETWORK, ("Models/Hypernetwork",), (".pt",)),
        FolderRule(Kind.VAE, ("Models/VAE",), PT, KeyedBy.NAME),
        FolderRule(Kind.CONTROLNET, ("Models/ControlNet", "Models/T2IAdapter"),
                   PT + (".pth", ".bin")),
        FolderRule(Kind.UPSCALER, ("Models/ESRGAN",), (".pt", ".pth", ".safetensors")),
        FolderRule(Kind.TEXT_ENCODER, ("Models/TextEncoders", "Models/CLIP"),
                   (".safetensors", ".gguf")),
        FolderRule(Kind.IP_ADAPTER, ("Models/IpAdapter",), PT + (".bin",)),
    ),
    markers=("Models/StableDiffusion",),
    dit_bases=frozenset({Base.FLUX, Base.FLUX2}),
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (A1111, FORGE, REFORGE, SDNEXT, COMFYUI, STABILITYMATRIX)
}
#: Order matters: the most specific markers first (Forge has A1111's files too).
_DETECT_ORDER = ("comfyui", "forge", "reforge", "sdnext", "a1111", "stabilitymatrix")


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise UsageError(
            f"unknown webUI {name!r}; choose one of: {', '.join(LAYOUTS)} (or auto)"
        ) from None


def detect(root: str | os.PathLike[str]) -> Layout | None:
    """Which front end lives at ``root``, from marker files; None if none matches."""
    root = Path(root)
    for name in _DETECT_ORDER:
        layout = LAYOUTS[name]
        if all((root / m).exists() for m in layout.markers):
            return layout
    return None


def resolve_layout(ui: str, root: str | os.PathLike[str]) -> Layout:
    """``--ui auto|NAME`` for ``root``: auto detects, and says clearly when it cannot."""
    if ui.lower() != "auto":
        return get_layout(ui)
    layout = detect(root)
    if layout is None:
        raise UsageError(
            f"cannot tell which webUI lives in {root}; pass --ui ({', '.join(LAYOUTS)}) or --to DIR"
        )
    return layout
