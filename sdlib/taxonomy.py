"""Closed vocabularies shared by every part of sdlib, and maps to and from Civitai's names.

Values are the lower-case strings that appear in ``--json`` output; they are a contract.
Stdlib only: this module is imported by the fast, pure core.
"""

from __future__ import annotations

from enum import Enum


class _Vocab(str, Enum):
    """A str-valued enum whose str() is its value (``StrEnum`` is 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)


class Container(_Vocab):
    SAFETENSORS = "safetensors"
    PICKLE_ZIP = "pickle-zip"
    PICKLE_LEGACY = "pickle-legacy"
    PICKLE = "pickle"  # a plain pickle stream, not written by torch.save
    GGUF = "gguf"
    DIFFUSERS_DIR = "diffusers-dir"
    UNKNOWN = "unknown"


class Kind(_Vocab):
    CHECKPOINT = "checkpoint"
    UNET = "unet"
    LORA = "lora"
    LYCORIS = "lycoris"
    EMBEDDING = "embedding"
    HYPERNETWORK = "hypernetwork"
    VAE = "vae"
    CONTROLNET = "controlnet"
    UPSCALER = "upscaler"
    TEXT_ENCODER = "text-encoder"
    IP_ADAPTER = "ip-adapter"
    MOTION_MODULE = "motion-module"
    #: CLIP image encoders that IP-Adapter, unCLIP and Redux need (ComfyUI ``clip_vision``).
    CLIP_VISION = "clip-vision"
    UNKNOWN = "unknown"


class Base(_Vocab):
    SD1 = "sd1"
    SD2 = "sd2"
    SDXL = "sdxl"
    SDXL_REFINER = "sdxl-refiner"
    SD3 = "sd3"
    FLUX = "flux"
    FLUX2 = "flux2"
    PIXART = "pixart"
    CASCADE = "cascade"
    SVD = "svd"
    UNKNOWN = "unknown"


class Precision(_Vocab):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    MIXED = "mixed"


class Weights(_Vocab):
    FULL = "full"  # both EMA and non-EMA UNet weights
    EMA_ONLY_OR_PRUNED = "ema-only-or-pruned"
    NA = "n/a"


class Verdict(_Vocab):
    SAFE = "safe"
    SUSPICIOUS = "suspicious"
    UNSAFE = "unsafe"


# --- Civitai names ---------------------------------------------------------------------------

#: Civitai ``model.type`` -> our kind. LoCon is what the site shows as "LyCORIS".
CIVITAI_TYPE_TO_KIND: dict[str, Kind] = {
    "Checkpoint": Kind.CHECKPOINT,
    "TextualInversion": Kind.EMBEDDING,
    "Hypernetwork": Kind.HYPERNETWORK,
    "LORA": Kind.LORA,
    "LoCon": Kind.LYCORIS,
    "DoRA": Kind.LORA,
    "Controlnet": Kind.CONTROLNET,
    "Upscaler": Kind.UPSCALER,
    "MotionModule": Kind.MOTION_MODULE,
    "VAE": Kind.VAE,
    "TextEncoder": Kind.TEXT_ENCODER,
    "UNet": Kind.UNET,
    "CLIPVision": Kind.CLIP_VISION,
}

#: Every ModelType name Civitai accepts in ``types=`` (spelling matters: LORA, Controlnet).
CIVITAI_TYPES: tuple[str, ...] = (
    "Checkpoint", "TextualInversion", "Hypernetwork", "AestheticGradient", "LORA", "LoCon",
    "DoRA", "Controlnet", "Upscaler", "MotionModule", "VAE", "TextEncoder", "UNet",
    "CLIPVision", "Poses", "Wildcards", "Workflows", "ComfyWorkflows", "Detection",
    "VisionLanguage", "CLIP", "LLM", "Other",
)  # fmt: skip

#: The ``sort`` and ``period`` values Civitai's search accepts (spelling matters).
CIVITAI_SORTS: tuple[str, ...] = (
    "Highest Rated", "Most Downloaded", "Most Liked", "Most Discussed", "Most Collected",
    "Most Images", "Newest", "Oldest",
)  # fmt: skip
CIVITAI_PERIODS: tuple[str, ...] = ("AllTime", "Year", "Month", "Week", "Day")

#: Friendly aliases users type on the command line -> Civitai ModelType.
TYPE_ALIASES: dict[str, str] = {
    "checkpoint": "Checkpoint",
    "model": "Checkpoint",
    "embedding": "TextualInversion",
    "textualinversion": "TextualInversion",
    "ti": "TextualInversion",
    "hypernetwork": "Hypernetwork",
    "lora": "LORA",
    "locon": "LoCon",
    "lycoris": "LoCon",
    "dora": "DoRA",
    "controlnet": "Controlnet",
    "upscaler": "Upscaler",
    "motionmodule": "MotionModule",
    "vae": "VAE",
    "textencoder": "TextEncoder",
    "unet": "UNet",
}


def civitai_type(name: str) -> str | None:
    """Normalise a user-typed type name to Civitai's spelling, or None if unknown."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in TYPE_ALIASES:
        return TYPE_ALIASES[key]
    for t in CIVITAI_TYPES:
        if t.lower() == key:
            return t
    return None


def base_from_civitai(base_model: str | None) -> Base:
    """Map Civitai's ``baseModel`` name (99 of them) to the weights family we can detect."""
    if not base_model:
        return Base.UNKNOWN
    name = base_model.strip().lower()
    if name.startswith("sd 1."):
        return Base.SD1
    if name.startswith("sd 2."):
        return Base.SD2
    if name.startswith("sd 3"):
        return Base.SD3
    if name == "pony v7":
        return Base.UNKNOWN  # AuraFlow-based, not SDXL weights
    if name.startswith("sdxl") or name in {"pony", "illustrious", "noobai"}:
        return Base.SDXL
    if name.startswith("flux.1"):
        return Base.FLUX
    if name.startswith("flux.2"):
        return Base.FLUX2
    if name.startswith("pixart"):
        return Base.PIXART
    if name == "stable cascade":
        return Base.CASCADE
    if name.startswith("svd"):
        return Base.SVD
    return Base.UNKNOWN


#: Our base -> the Civitai ``baseModels`` names that cover it (used for search filters).
CIVITAI_BASE_MODELS: dict[Base, tuple[str, ...]] = {
    Base.SD1: ("SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper"),
    Base.SD2: ("SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768", "SD 2.1 Unclip"),
    Base.SDXL: (
        "SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
        "Pony", "Illustrious", "NoobAI",
    ),
    Base.SD3: ("SD 3", "SD 3.5", "SD 3.5 Large", "SD 3.5 Large Turbo", "SD 3.5 Medium"),
    Base.FLUX: ("Flux.1 S", "Flux.1 D", "Flux.1 Krea", "Flux.1 Kontext"),
    Base.FLUX2: (
        "Flux.2 D", "Flux.2 Klein 9B", "Flux.2 Klein 9B-base", "Flux.2 Klein 4B",
        "Flux.2 Klein 4B-base",
    ),
    Base.PIXART: ("PixArt a", "PixArt E"),
    Base.CASCADE: ("Stable Cascade",),
    Base.SVD: ("SVD", "SVD XT"),
}  # fmt: skip


def civitai_base_models(name: str) -> tuple[str, ...]:
    """Expand a user's ``--base`` value: one of our bases (``sdxl``) or a Civitai name."""
    try:
        return CIVITAI_BASE_MODELS[Base(name.strip().lower())]
    except (ValueError, KeyError):
        return (name.strip(),)


#: The label A1111's user-metadata JSON uses for "sd version".
A1111_SD_VERSION: dict[Base, str] = {
    Base.SD1: "SD1",
    Base.SD2: "SD2",
    Base.SDXL: "SDXL",
    Base.SDXL_REFINER: "SDXL",
}
