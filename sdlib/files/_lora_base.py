"""The base model a LoRA's modules were trained on, from their names and shapes, else the
one its metadata claims (classify.md 4.3, 4.4, 10); each step says why in ``evidence``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sdlib.files._signatures import CONTEXT_BASES, fmt_shape
from sdlib.taxonomy import Base

if TYPE_CHECKING:
    from sdlib.files._lora import Module

__all__ = ["METADATA_BASES", "base_from_metadata", "found_base", "pick_base"]

#: (metadata key, value prefix, base): what trainers write (classify.md 4.4). Lower-cased.
METADATA_BASES: tuple[tuple[str, str, Base], ...] = (
    ("ss_base_model_version", "sdxl", Base.SDXL),
    ("ss_base_model_version", "sd_v1", Base.SD1),
    ("ss_base_model_version", "sd_v2", Base.SD2),
    ("ss_base_model_version", "flux", Base.FLUX),
    ("ss_base_model_version", "chroma", Base.FLUX),
    ("ss_base_model_version", "medium", Base.SD3),
    ("ss_base_model_version", "5-", Base.SD3),
    ("modelspec.architecture", "stable-diffusion-xl-v1-refiner", Base.SDXL_REFINER),
    ("modelspec.architecture", "stable-diffusion-xl", Base.SDXL),
    ("modelspec.architecture", "stable-diffusion-v1", Base.SD1),
    ("modelspec.architecture", "stable-diffusion-v2", Base.SD2),
    ("modelspec.architecture", "stable-diffusion-3", Base.SD3),
    ("modelspec.architecture", "stable-diffusion-v3", Base.SD3),
    ("modelspec.architecture", "stable-video-diffusion", Base.SVD),
    ("modelspec.architecture", "flux-1", Base.FLUX),
    ("modelspec.architecture", "flux.1", Base.FLUX),
    ("modelspec.architecture", "flux-2", Base.FLUX2),
    ("modelspec.architecture", "flux.2", Base.FLUX2),
    ("modelspec.architecture", "chroma", Base.FLUX),
    ("modelspec.architecture", "pixart", Base.PIXART),
    ("modelspec.architecture", "stable-cascade", Base.CASCADE),
    ("ss_v2", "true", Base.SD2),
)
_FLUX_FAMILY = ("double_blocks", "single_blocks", "single_transformer_blocks")
_LEVEL0_ATTN = ("down_blocks_0_attentions", "up_blocks_3_attentions", "input_blocks_1_1_",
                "input_blocks_2_1_", "output_blocks_9_1_", "output_blocks_10_1_",
                "output_blocks_11_1_")  # fmt: skip
_BLOCK_INDEX = re.compile(r"transformer_blocks_(\d+)_")


def found_base(mods: list[Module], evidence: list[str]) -> Base | None:
    """The base the modules' names and shapes give, or None."""
    blob = " ".join(m.flat for m in mods)
    found = None
    if any(f in blob for f in _FLUX_FAMILY):
        found = _flux_base(mods, evidence)
    elif "joint_blocks" in blob:
        evidence.append("joint_blocks modules (MMDiT) -> sd3")
        found = Base.SD3
    elif "transformer_transformer_blocks" in blob:
        found = _dit_base(mods, evidence)
    else:
        found = _unet_base(mods, evidence)
    return found


def pick_base(found: Base | None, metadata: Mapping[str, str], evidence: list[str]) -> Base:
    """The tensors' base, else the one the metadata claims (said in ``evidence``)."""
    claimed = base_from_metadata(metadata)
    if found is None or found is Base.UNKNOWN:
        if claimed is not None:
            evidence.append(f"tensors are silent; metadata claims {claimed}")
            return claimed
        return Base.UNKNOWN
    if claimed is not None and claimed is not found:
        evidence.append(f"metadata claims {claimed} but the tensors say {found}")
    return found


def base_from_metadata(metadata: Mapping[str, str]) -> Base | None:
    values: dict[str, str] = {}  # each key's value, stripped and lower-cased once
    for key, prefix, base in METADATA_BASES:
        value = values.get(key)
        if value is None:
            value = values[key] = metadata.get(key, "").strip().lower()
        if value.startswith(prefix):
            return base
    return None


def _unet_base(mods: list[Module], evidence: list[str]) -> Base | None:
    """SD1/SD2/SDXL from widths, then structure (classify.md 4.3, 10), strongest first."""
    unet = [m for m in mods if m.target == "unet"]
    cross = Counter(
        d for m in unet if "attn2_" in m.flat and ("to_k_" in m.flat or "to_v_" in m.flat)
        if (d := m.in_dim()) in CONTEXT_BASES
    )  # fmt: skip
    if cross:
        width = cross.most_common(1)[0][0]
        base = CONTEXT_BASES[width]
        evidence.append(f"cross-attention (attn2 to_k/to_v) input width {width} -> {base}")
        return base
    dims = {m.in_dim() for m in unet}
    for width in (2048, 1024, 768):  # context widths no SD UNet uses as a channel count
        if width in dims:
            base = CONTEXT_BASES[width]
            evidence.append(f"a UNet module takes input width {width} (the context) -> {base}")
            return base
    # A third transformer block is decisive for SDXL; a 768-wide text encoder is not
    # (SDXL's first encoder is 768 wide too), so structure goes before TE widths.
    for m in unet:
        hit = _BLOCK_INDEX.search(m.flat)
        if hit and int(hit.group(1)) >= 2:
            evidence.append(f"{m.name}: transformer block index >= 2 exists only in SDXL")
            return Base.SDXL
    return _text_encoder_base(mods, evidence) or _level0_base(unet, evidence)


def _text_encoder_base(mods: list[Module], evidence: list[str]) -> Base | None:
    widths: dict[str, Counter[int]] = {}
    for m in mods:
        if m.target.startswith("text-encoder") and (d := m.in_dim()) is not None:
            widths.setdefault(m.target, Counter())[d] += 1
    if "text-encoder-2" in widths and widths["text-encoder-2"].most_common(1)[0][0] == 1280:
        evidence.append("second text encoder of width 1280 (OpenCLIP bigG) -> sdxl")
        return Base.SDXL
    if "text-encoder" in widths:
        width = widths["text-encoder"].most_common(1)[0][0]
        base = {768: Base.SD1, 1024: Base.SD2}.get(width)
        if base is not None:
            evidence.append(f"text-encoder modules of width {width} -> {base}")
            return base
    return None


def _level0_base(unet: list[Module], evidence: list[str]) -> Base | None:
    """Attention at the 320-channel level exists in SD1/SD2 only; ``proj_in`` tells which."""
    level0 = [m for m in unet if any(f in m.flat for f in _LEVEL0_ATTN)]
    if not level0:
        return None
    proj = next((m for m in level0 if "proj_in" in m.flat and "down" in m.parts), None)
    if proj is None:
        evidence.append("attention at the 320-channel level: SD1 or SD2, not SDXL")
        return None
    four_d = len(proj.parts["down"]) == 4
    evidence.append(
        f"{proj.name}: proj_in down {fmt_shape(proj.parts['down'])} at the 320-channel "
        f"level -> {'sd1 (1x1 conv)' if four_d else 'sd2 (linear)'}"
    )
    return Base.SD1 if four_d else Base.SD2


def _flux_base(mods: list[Module], evidence: list[str]) -> Base:
    hidden = Counter(
        d for m in mods if ("attn_qkv" in m.flat or "attn_to_q" in m.flat)
        if (d := m.in_dim()) is not None
    )  # fmt: skip
    width = hidden.most_common(1)[0][0] if hidden else None
    mlp = next((m for m in mods if "img_mlp_0_" in m.flat and m.out_dim()), None)
    if width in (4096, 6144):
        evidence.append(f"Flux-style blocks with hidden width {width} -> flux2")
        return Base.FLUX2
    if width == 3072 and mlp is not None and mlp.out_dim() == 6 * 3072:
        evidence.append("Flux-style blocks with MLP ratio 6 (Klein 4B) -> flux2")
        return Base.FLUX2
    evidence.append(
        "double_blocks/single_blocks modules"
        + (f", hidden width {width}" if width else "")
        + " -> flux"
    )
    return Base.FLUX


def _dit_base(mods: list[Module], evidence: list[str]) -> Base | None:
    """diffusers ``transformer.transformer_blocks`` without single blocks: SD3 or Flux."""
    widths = Counter(d for m in mods if "attn_to_q_" in m.flat if (d := m.in_dim()) is not None)
    if not widths:
        return None
    width = widths.most_common(1)[0][0]
    base = {1536: Base.SD3, 2432: Base.SD3, 3072: Base.FLUX}.get(width)
    if base is not None:
        evidence.append(f"diffusers transformer blocks of width {width} -> {base}")
    return base
