"""What a file on the Hub likely is, from its name, folder and the repo's tags: a guess.

The Hub says what a *repo* is for (``pipeline_tag``, ``library_name``, tags such as
``lora`` or ``base_model:adapter:...``), never what each file is. A webUI wants to know
which files are single-file checkpoints, LoRAs, VAEs or ControlNets, and which belong to a
diffusers folder (``unet/``, ``vae/``, ``text_encoder/`` beside ``model_index.json``) that
a webUI cannot load file by file. Everything here is labelled a guess
(``FileGuess.reason`` says from what); reading the file's header (``sdlib inspect``) is
what knows. Pure: names and tags in, a guess out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sdlib.taxonomy import Base, Kind

__all__ = [
    "CANDIDATE_EXTENSIONS",
    "DIFFUSERS_COMPONENTS",
    "FileGuess",
    "base_of_tags",
    "guess_file",
    "is_candidate",
]

#: Files a webUI loads as one model (the single-file forms; ``.sft`` is safetensors).
CANDIDATE_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".gguf")
_WEIGHT_EXTENSIONS = (*CANDIDATE_EXTENSIONS, ".pt", ".pth", ".bin", ".onnx")
#: Sub-folders of a diffusers pipeline (model_index.json names them).
DIFFUSERS_COMPONENTS = frozenset({
    "unet", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer",
    "tokenizer_2", "tokenizer_3", "scheduler", "transformer", "prior", "decoder",
    "image_encoder", "feature_extractor", "safety_checker", "controlnet", "vqvae",
})  # fmt: skip
_COMPONENT_KINDS = {
    "unet": Kind.UNET, "transformer": Kind.UNET, "prior": Kind.UNET, "decoder": Kind.UNET,
    "vae": Kind.VAE, "vqvae": Kind.VAE, "controlnet": Kind.CONTROLNET,
    "image_encoder": Kind.CLIP_VISION,
}  # fmt: skip

#: Name patterns, most specific first: (regex on the lower-case file name, kind, why).
_NAME_RULES: tuple[tuple[re.Pattern[str], Kind, str], ...] = tuple(
    (re.compile(p), k, why)
    for p, k, why in (
        (r"ip[-_]?adapter", Kind.IP_ADAPTER, "'ip-adapter' in the name"),
        (
            r"control[-_]?(net|lora)|t2i[-_]?adapter|^control_",
            Kind.CONTROLNET,
            "'controlnet' in the name",
        ),
        (
            r"(^|[^a-z])(lora|lycoris|locon|loha|lokr|dora)([^a-z]|$)",
            Kind.LORA,
            "'lora' in the name",
        ),
        (r"(^|[^a-z])vae([^a-z]|$)|^ae\.|^vae", Kind.VAE, "'vae' in the name"),
        (
            r"learned_embeds|embedding|textual[-_]?inversion|negative",
            Kind.EMBEDDING,
            "an embedding's name",
        ),
        (
            r"esrgan|upscal|(^|[^a-z])x[248]([^a-z0-9]|$)|swinir|4x",
            Kind.UPSCALER,
            "an upscaler's name",
        ),
        (r"(^|[^a-z])(mm_sd|motion|animatediff)", Kind.MOTION_MODULE, "a motion module's name"),
        (
            r"(^|[^a-z])(clip_[lg]|t5xxl|t5-xxl|umt5|text_encoder)",
            Kind.TEXT_ENCODER,
            "a text encoder's name",
        ),
        (r"(^|[^a-z])(unet|transformer)([^a-z]|$)", Kind.UNET, "'unet' in the name"),
    )
)
#: Repo tags -> kind, for files whose name says nothing.
_TAG_KINDS: tuple[tuple[str, Kind], ...] = (
    ("lora", Kind.LORA),
    ("controlnet", Kind.CONTROLNET),
    ("textual_inversion", Kind.EMBEDDING),
    ("text-to-image", Kind.CHECKPOINT),
    ("image-to-image", Kind.CHECKPOINT),
)


@dataclass(frozen=True)
class FileGuess:
    """A guess at what one repo file is (never read from its bytes)."""

    kind: Kind
    #: "single-file" (loads on its own), "diffusers" (a part of a diffusers folder),
    #: "other" (configs, images, text, pickled training state).
    layout: str
    #: For diffusers parts: the folder (``unet``, ``vae``...).
    component: str | None
    #: Why: one short phrase, shown after "guess:".
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "layout": self.layout, "component": self.component,
                "reason": self.reason, "guessed": True}  # fmt: skip


#: Weights diffusers saves for one component (a diffusers VAE or ControlNet repo has its
#: ``diffusion_pytorch_model.safetensors`` at the top, beside ``config.json``).
_DIFFUSERS_NAMES = ("diffusion_pytorch_model.", "diffusion_pytorch_model-")


def is_candidate(path: str) -> bool:
    """A top-level single-file model (what ``hf:ORG/REPO`` without a path picks from):
    not a diffusers component's ``diffusion_pytorch_model`` weights."""
    lower = path.lower()
    return ("/" not in path and lower.endswith(CANDIDATE_EXTENSIONS)
            and not lower.startswith(_DIFFUSERS_NAMES))  # fmt: skip


def guess_file(
    path: str, tags: Sequence[str] = (), diffusers: bool = False, repo: str = ""
) -> FileGuess:
    """What ``path`` likely is, given the repo's ``tags``, whether the repo is a diffusers
    pipeline (``diffusers``: it has ``model_index.json`` at the top) and its id."""
    lower = path.lower()
    folder, _, name = lower.rpartition("/")
    top = folder.split("/", 1)[0] if folder else ""
    weights = name.endswith(_WEIGHT_EXTENSIONS)
    if not folder and weights and name.startswith(_DIFFUSERS_NAMES):
        # One diffusers component as the whole repo: its kind is the repo's.
        own = repo.rsplit("/", 1)[-1].lower()
        kind = next((k for p, k, _ in _NAME_RULES if p.search(own)), Kind.UNKNOWN)
        return FileGuess(kind, "diffusers", None, "diffusers weights of the repo's model"
                         + (f" ({kind.value}, from the repo's name)" if kind is not Kind.UNKNOWN
                            else ""))  # fmt: skip
    if top in DIFFUSERS_COMPONENTS and (diffusers or top in ("unet", "transformer", "vae")):
        kind = _COMPONENT_KINDS.get(top, Kind.TEXT_ENCODER if "text_encoder" in top
                                    else Kind.UNKNOWN)  # fmt: skip
        return FileGuess(
            kind if weights else Kind.UNKNOWN, "diffusers", top,
            f"in the diffusers folder {top}/" if weights else "diffusers configuration",
        )  # fmt: skip
    if not weights:
        return FileGuess(Kind.UNKNOWN, "other", None, "not a weights file")
    layout = "single-file" if name.endswith(CANDIDATE_EXTENSIONS) else "other"
    for pattern, kind, why in _NAME_RULES:
        if pattern.search(name):
            return FileGuess(kind, layout, None, why)
    tagset = {t.lower() for t in tags}
    for tag, kind in _TAG_KINDS:
        if tag in tagset:
            return FileGuess(kind, layout, None, f"the repo is tagged {tag!r}")
    return FileGuess(Kind.UNKNOWN, layout, None, "nothing in its name or the repo's tags")


#: ``base_model:`` tag values (lower case) -> base, first match wins.
_BASE_PATTERNS: tuple[tuple[str, Base], ...] = (
    ("xl-refiner", Base.SDXL_REFINER),
    ("stable-diffusion-xl", Base.SDXL), ("sdxl", Base.SDXL),
    ("stable-diffusion-3", Base.SD3), ("sd3", Base.SD3),
    ("stable-diffusion-2", Base.SD2),
    ("stable-diffusion-v1", Base.SD1), ("stable-diffusion-1", Base.SD1),
    ("flux.2", Base.FLUX2), ("flux.1", Base.FLUX), ("flux", Base.FLUX),
    ("pixart", Base.PIXART), ("stable-cascade", Base.CASCADE),
    ("stable-video-diffusion", Base.SVD),
)  # fmt: skip


def base_of_tags(tags: Iterable[str], repo: str = "") -> Base:
    """The base model a repo's ``base_model:...`` tags name (or its own id, for base
    models themselves); ``Base.UNKNOWN`` when neither says."""
    names = [t.split(":")[-1].lower() for t in tags if t.lower().startswith("base_model:")]
    for name in [*names, repo.lower()]:
        for needle, base in _BASE_PATTERNS:
            if needle in name:
                return base
    return Base.UNKNOWN
