"""Which diffusion family a tensor table's model subtree is: SD1/2, SDXL, SD3, Flux, ... and
its variant (inpaint, v-prediction, refiner...). Part of :mod:`sdlib.files.classify`: pure,
reading names and shapes only; every decision appends a line to the evidence."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdlib.files import _signatures as sig
from sdlib.files._signatures import Keys, fmt_shape
from sdlib.taxonomy import Base

if TYPE_CHECKING:
    from sdlib.files.classify import _Ctx


# --- diffusion models (classify.md 1.2-1.6) ----------------------------------------------------


def _diffusion(k: Keys, ctx: _Ctx, ev: list[str]) -> tuple[Base, str | None] | None:
    """(base, variant) of a diffusion-model subtree, or None if it is not one we know."""
    for key, base, variant in sig.OTHER_DIFFUSION:
        if key in k:
            ev.append(f"{key}: {variant}")
            return base, variant
    if k.has_prefix("joint_blocks."):
        return _sd3(k, ev)
    if k.has_prefix("double_blocks."):
        return _flux(k, ev)
    if "t_block.1.weight" in k:
        variant = "alpha" if k.has_prefix("ar_embedder.") else "sigma"
        ev.append(f"t_block.1.weight: PixArt ({variant})")
        return Base.PIXART, variant
    if "clf.1.weight" in k:
        stage = "stage-c" if k.has_prefix("clip_txt_mapper.") else "stage-b"
        ev.append(f"clf.1.weight: Stable Cascade {stage}")
        return Base.CASCADE, stage
    if "input_blocks.0.0.weight" in k:
        return _unet(k, ctx, ev, _LDM)
    if "conv_in.weight" in k and "time_embedding.linear_1.weight" in k:
        return _unet(k, ctx, ev, _DIFFUSERS)
    if "x_embedder.weight" in k and k.has_prefix("single_transformer_blocks."):
        dev = k.has_prefix("time_text_embed.guidance_embedder.")
        ev.append(
            "diffusers Flux transformer; guidance embedder " + ("present" if dev else "absent")
        )
        return Base.FLUX, "dev" if dev else "schnell"
    if "transformer_blocks.0.attn.add_q_proj.weight" in k and "pos_embed.proj.weight" in k:
        ev.append("diffusers MMDiT (joint attention + patch embed): SD3")
        return Base.SD3, None
    if k.has_prefix("adaln_single.") and "pos_embed.proj.bias" in k:
        ev.append("diffusers PixArt transformer")
        return Base.PIXART, None
    return None


def _sd3(k: Keys, ev: list[str]) -> tuple[Base, str | None]:
    x = k.shape("x_embedder.proj.weight")
    if not k.contains(".attn.ln_q.") and not k.contains(".attn.ln_k."):
        variant = "medium"
    else:
        variant = "3.5-medium" if k.contains(".x_block.attn2.") else "3.5-large"
    ev.append(f"joint_blocks (MMDiT), x_embedder {fmt_shape(x)} -> sd3 {variant}")
    return Base.SD3, variant


def _flux(k: Keys, ev: list[str]) -> tuple[Base, str | None]:
    img_in, txt_in = k.dim("img_in.weight", 1), k.dim("txt_in.weight", 1)
    if (txt_in or 0) > 4096 or k.has_prefix("double_stream_modulation_img."):
        variant = sig.FLUX2_CONTEXT.get(txt_in or 0)
        if k.has_prefix("single_blocks.47."):
            variant = "dev"
        ev.append(f"double_blocks with context width {txt_in} -> flux2 {variant or ''}".rstrip())
        return Base.FLUX2, variant
    if k.has_prefix("distilled_guidance_layer."):
        ev.append("Flux blocks + distilled_guidance_layer: Chroma")
        return Base.FLUX, "chroma"
    guidance = k.has_prefix("guidance_in.")
    variant = "dev" if guidance else "schnell"
    said = "present -> dev" if guidance else "absent -> schnell"
    ev.append(f"double_blocks/single_blocks: Flux.1; guidance_in {said}")
    if k.contains(".quant_state.bitsandbytes__nf4"):
        ev.append("bitsandbytes NF4 keys: packed shapes, img_in width not meaningful")
    elif img_in in sig.FLUX_IMG_IN_VARIANTS:
        variant = sig.FLUX_IMG_IN_VARIANTS[img_in]
        ev.append(f"img_in input width {img_in} -> {variant}")
    return Base.FLUX, variant


@dataclass(frozen=True)
class _Layout:
    """Where the decisive UNet tensors live in one naming scheme."""

    conv_in: str
    adm: tuple[str, ...]
    mid_attn: str
    temporal: tuple[str, ...]


_LDM = _Layout(
    conv_in="input_blocks.0.0.weight",
    adm=("label_emb.0.0.weight",),
    mid_attn="middle_block.1.",
    temporal=(".time_stack.", ".time_mixer."),
)
_DIFFUSERS = _Layout(
    conv_in="conv_in.weight",
    adm=("add_embedding.linear_1.weight", "class_embedding.linear_1.weight"),
    mid_attn="mid_block.attentions.0.",
    temporal=(),
)


def _unet(k: Keys, ctx: _Ctx, ev: list[str], layout: _Layout) -> tuple[Base, str | None]:
    conv = k.shape(layout.conv_in) or (0, 0)
    channels, in_ch = conv[0], conv[1] if len(conv) > 1 else 0
    context = _context_widths(k)
    ctx_width = context.most_common(1)[0][0] if context else None
    adm = next((k.dim(a, 1) for a in layout.adm if a in k), None)
    ev.append(
        f"{layout.conv_in} {fmt_shape(conv)}: {channels} channels, {in_ch} input channels; "
        f"cross-attention width {ctx_width}" + (f"; ADM input {adm}" if adm else "")
    )
    if any(k.contains(t) for t in layout.temporal):
        variant = {768: "img2vid", 256: "sv3d-u", 1280: "sv3d-p"}.get(adm or 0)
        ev.append(f"temporal layers (time_stack/time_mixer) -> svd {variant or ''}".rstrip())
        return Base.SVD, variant
    base = sig.UNET_BASES.get((ctx_width or 0, channels))
    if base is None:
        base = sig.CONTEXT_BASES.get(ctx_width or 0, Base.UNKNOWN)
    variant = sig.IN_CHANNEL_VARIANTS.get(in_ch)
    if variant is not None:
        ev.append(f"{layout.conv_in} {fmt_shape(conv)}: {in_ch} input channels -> {variant}")
    if adm is not None and (base, adm) in sig.ADM_VARIANTS:
        base, adm_variant = sig.ADM_VARIANTS[(base, adm)]
        variant = variant or adm_variant
        ev.append(f"ADM input {adm} -> {adm_variant}")
    if base is Base.SDXL and not k.has_prefix(layout.mid_attn):
        variant = variant or "distilled"
        ev.append(f"no {layout.mid_attn}* (no middle attention): SSD-1B/Vega-style distilled SDXL")
    if base is Base.SDXL_REFINER:
        variant = variant or "refiner"
    if _v_prediction(ctx, ev):
        variant = variant or "v-prediction"
    return base, variant


def _context_widths(k: Keys) -> Counter[int]:
    return Counter(
        s[1] for n in k.ending(".attn2.to_k.weight")
        if len(s := k.shapes[k.rows[n]]) == 2
    )  # fmt: skip


def _v_prediction(ctx: _Ctx, ev: list[str]) -> bool:
    """Only markers or metadata evidence v-prediction; shapes never do (classify.md 1.5)."""
    marker = next((m for m in sig.V_PRED_MARKERS if m in ctx.keys), None)
    if marker is not None:
        ev.append(f"{marker} marker tensor -> v-prediction")
        return True
    md = ctx.metadata
    for key in sig.V_PRED_METADATA:
        if md.get(key, "").strip().lower().startswith("v"):
            ev.append(f"metadata {key}={md[key]} -> v-prediction")
            return True
    arch = md.get("modelspec.architecture", "")
    if arch.endswith("-v") or md.get("ss_base_model_version", "").endswith("_v"):
        ev.append("metadata architecture names a v-prediction model")
        return True
    return False
