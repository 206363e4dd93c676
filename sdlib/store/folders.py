"""The store's kind folders and where each webUI is shown them, as data.

Store folder names are Stability Matrix's ``SharedFolderType`` names (reference layouts.md
6.1), so its ``Models`` folder is a store already. Per UI, each store folder is shown as a
sub-folder link inside the UI's own folder for that kind (layouts.md 9; Stability Matrix links
A1111 checkpoints into ``models/Stable-diffusion/sd`` the same way), as a ComfyUI
``extra_model_paths.yaml`` key (layouts.md 4.1), or as an SD.Next ``config.json`` key
(layouts.md 3). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sdlib.taxonomy import Kind

__all__ = [
    "COMFY_KEYS",
    "FLAG_ONLY",
    "LINK_NAME",
    "SDNEXT_KEYS",
    "STORE_FOLDERS",
    "UI_NAMES",
    "LinkSpot",
    "link_spots",
]

#: Store folder -> the kind of model it holds (Stability Matrix's names).
STORE_FOLDERS: Mapping[str, Kind] = {
    "StableDiffusion": Kind.CHECKPOINT,
    "DiffusionModels": Kind.UNET,
    "Lora": Kind.LORA,
    "LyCORIS": Kind.LYCORIS,
    "Embeddings": Kind.EMBEDDING,
    "Hypernetwork": Kind.HYPERNETWORK,
    "VAE": Kind.VAE,
    "ControlNet": Kind.CONTROLNET,
    "ESRGAN": Kind.UPSCALER,
    "TextEncoders": Kind.TEXT_ENCODER,
    "ClipVision": Kind.CLIP_VISION,
    "IpAdapter": Kind.IP_ADAPTER,
}

#: The name of the sub-folder link in a UI folder; a second store folder shown in the same
#: UI folder (LyCORIS in Forge's ``models/Lora``) gets ``sdlib-store-<StoreFolder>``. No
#: leading dot: webUIs (and sdlib's scan) skip hidden folders.
LINK_NAME = "sdlib-store"

_A1111: Mapping[str, str] = {
    "StableDiffusion": "models/Stable-diffusion",
    "Lora": "models/Lora",
    "LyCORIS": "models/LyCORIS",
    "Embeddings": "embeddings",
    "Hypernetwork": "models/hypernetworks",
    "VAE": "models/VAE",
    "ControlNet": "models/ControlNet",
    "IpAdapter": "models/ControlNet",
    "ESRGAN": "models/ESRGAN",
}

#: Forge 2 reads LyCORIS from models/Lora and diffusion models from the checkpoint folder.
#: Its VAE / text-encoder list walks without following folder links (layouts.md 2, 8.11), so
#: those two are shown through ``--vae-dir`` / ``--text-encoder-dir`` (FLAG_ONLY), not links.
_FORGE: Mapping[str, str] = {
    **{k: v for k, v in _A1111.items() if k not in ("LyCORIS", "VAE")},
    "LyCORIS": "models/Lora",
    "DiffusionModels": "models/Stable-diffusion",
}

_REFORGE: Mapping[str, str] = {**_A1111, "TextEncoders": "models/text_encoders"}

_SDNEXT: Mapping[str, str] = {
    "StableDiffusion": "models/Stable-diffusion",
    "DiffusionModels": "models/UNET",
    "Lora": "models/Lora",
    "LyCORIS": "models/Lora",
    "Embeddings": "models/embeddings",
    "VAE": "models/VAE",
    "ControlNet": "models/control/controlnet",
    "ESRGAN": "models/ESRGAN",
    "TextEncoders": "models/Text-encoder",
}

#: ComfyUI folder key per store folder (Stability Matrix's ComfyUI map, layouts.md 6.2).
COMFY_KEYS: Mapping[str, str] = {
    "StableDiffusion": "checkpoints",
    "DiffusionModels": "diffusion_models",
    "Lora": "loras",
    "LyCORIS": "loras",
    "Embeddings": "embeddings",
    "Hypernetwork": "hypernetworks",
    "VAE": "vae",
    "ControlNet": "controlnet",
    "ESRGAN": "upscale_models",
    "TextEncoders": "text_encoders",
    "ClipVision": "clip_vision",
    "IpAdapter": "ipadapter",
}

_COMFY_LINKS: Mapping[str, str] = {k: f"models/{v}" for k, v in COMFY_KEYS.items()}

#: SD.Next ``config.json`` key per store folder (layouts.md 3 and 6.2). SD.Next reads one
#: folder per key, so a key set to the store hides the UI's own folder for that kind.
SDNEXT_KEYS: Mapping[str, str] = {
    "StableDiffusion": "ckpt_dir",
    "DiffusionModels": "unet_dir",
    "Lora": "lora_dir",
    "Embeddings": "embeddings_dir",
    "Hypernetwork": "hypernetwork_dir",
    "VAE": "vae_dir",
    "ESRGAN": "esrgan_models_path",
    "TextEncoders": "te_dir",
}

#: Store folders a UI can only be pointed at with a launch flag: (folder, flag).
FLAG_ONLY: Mapping[str, tuple[tuple[str, str], ...]] = {
    "forge": (("VAE", "--vae-dir"), ("TextEncoders", "--text-encoder-dir")),
}

_LINKS: Mapping[str, Mapping[str, str]] = {
    "a1111": _A1111,
    "forge": _FORGE,
    "reforge": _REFORGE,
    "sdnext": _SDNEXT,
    "comfyui": _COMFY_LINKS,
}

#: The webUIs a store can be linked into.
UI_NAMES: tuple[str, ...] = tuple(_LINKS)


@dataclass(frozen=True)
class LinkSpot:
    """One store folder shown inside one UI folder."""

    store_folder: str
    #: The UI's folder, relative to its root (``models/Lora``).
    ui_folder: str
    #: The link's name inside ``ui_folder``.
    name: str

    @property
    def rel(self) -> str:
        return f"{self.ui_folder}/{self.name}"


def link_spots(ui: str, present: tuple[str, ...]) -> tuple[LinkSpot, ...]:
    """Where each of the store's ``present`` folders is linked into ``ui``, in store order."""
    table = _LINKS[ui]
    spots: list[LinkSpot] = []
    used: set[str] = set()
    for folder in STORE_FOLDERS:
        if folder not in present or folder not in table:
            continue
        ui_folder = table[folder]
        name = LINK_NAME if ui_folder not in used else f"{LINK_NAME}-{folder}"
        used.add(ui_folder)
        spots.append(LinkSpot(folder, ui_folder, name))
    return tuple(spots)
