"""The rules of :mod:`sdlib.files.classify`, one per kind of file (classify.md section 9's
order is kept by ``classify._RULES``): each reads the indexed tensor names of a ``_Ctx`` and
returns a ``Verdict`` with its evidence, or None when the file is not that kind."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from sdlib.files import _lora
from sdlib.files import _signatures as sig
from sdlib.files._architecture import _diffusion
from sdlib.files._signatures import Keys, Verdict, fmt_shape
from sdlib.taxonomy import Base, Kind

if TYPE_CHECKING:
    from sdlib.files.classify import _Ctx


def _hypernetwork(ctx: _Ctx) -> Verdict | None:
    # Pickle only: int keys (attention widths) -> (K, V) module pair -> linear layers.
    first = next(iter(ctx.keys.names()))
    if not _HYPER.match(first) or not all(_HYPER.match(n) for n in ctx.keys.names()):
        return None
    widths = sorted({int(n.split(".", 1)[0]) for n in ctx.keys.names()})
    base = next((sig.HYPERNETWORK_WIDTHS[w] for w in widths if w in sig.HYPERNETWORK_WIDTHS), None)
    ev = f"hypernetwork modules for widths {widths}"
    if base is None:
        ev += ": no cross-attention width (768/1024), base undetermined"
    else:
        ev += f": cross-attention width present -> {base}"
    return Verdict(Kind.HYPERNETWORK, base or Base.UNKNOWN, evidence=[ev])


_HYPER = re.compile(r"^\d+\.\d+\.linear\d?\.")


def _embedding(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if k.has_prefix("string_to_param."):
        name = next(n for n in k.names() if n.startswith("string_to_param."))
        return _embedding_verdict(k, name, "A1111 embedding (string_to_param)")
    if "clip_l" in k and "clip_g" in k and len(k) <= 4:
        g = k.shape("clip_g") or ()
        ev = f"clip_l {fmt_shape(k.shape('clip_l'))} + clip_g {fmt_shape(g)}: SDXL embedding"
        return Verdict(Kind.EMBEDDING, Base.SDXL, vectors=g[0] if g else None, evidence=[ev])
    if "emb_params" in k:
        return _embedding_verdict(k, "emb_params", "emb_params (kohya / EasyNegative layout)")
    if len(k) > 8:
        return None
    # ``{"<token>": vector}`` (sd-concepts, diffusers); an unbracketed name only for one 2-D
    # tensor: a lone 1-D vector is as likely an aesthetic-gradient embedding (not a TI).
    tokens = [n for n in k.names() if n.startswith("<") or _lone_matrix(k, n)]
    if tokens and len(tokens) == len(k):
        shapes = [k.shape(n) or () for n in tokens]
        widths = {s[-1] for s in shapes if 1 <= len(s) <= 2}
        if len(widths) == 1 and len(shapes) == len(tokens) and widths <= set(sig.EMBEDDING_WIDTHS):
            vectors = sum(s[0] if len(s) == 2 else 1 for s in shapes)
            width = widths.pop()
            base = sig.EMBEDDING_WIDTHS[width]
            ev = f"token tensors {', '.join(tokens)} of width {width} (diffusers concept) -> {base}"
            return Verdict(Kind.EMBEDDING, base, vectors=vectors, evidence=[ev])
    return None


def _lone_matrix(k: Keys, name: str) -> bool:
    return len(k) == 1 and "." not in name and len(k.shape(name) or ()) == 2


def _embedding_verdict(k: Keys, name: str, what: str) -> Verdict:
    shape = k.shape(name) or ()
    width = shape[-1] if shape else 0
    vectors = shape[0] if len(shape) == 2 else 1
    base = sig.EMBEDDING_WIDTHS.get(width, Base.UNKNOWN)
    ev = f"{name} {fmt_shape(shape)}: {what}, {vectors} vectors of width {width} -> {base}"
    return Verdict(Kind.EMBEDDING, base, vectors=vectors, evidence=[ev])


def _ip_adapter(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if k.has_prefix("image_proj.") and k.has_prefix("ip_adapter."):
        key = "ip_adapter.1.to_k_ip.weight"
        if key not in k:  # layouts that number their attention layers differently
            key = next((n for n in k.names() if n.endswith("to_k_ip.weight")), key)
        width = k.dim(key, -1)
        base = sig.CONTEXT_BASES.get(width or 0, Base.UNKNOWN)
        variant = next((v for key, v in sig.IP_ADAPTER_VARIANTS if key in k), None)
        ev = f"image_proj.* + ip_adapter.*, to_k_ip input width {width} -> {base}"
        return Verdict(Kind.IP_ADAPTER, base, variant, evidence=[ev])
    if k.has_prefix("ip_adapter_proj_model.") and k.contains("ip_adapter_double_stream_k_proj"):
        ev = "ip_adapter_proj_model.* + double-stream IP projections: XLabs Flux IP-Adapter"
        return Verdict(Kind.IP_ADAPTER, Base.FLUX, "xlabs", evidence=[ev])
    if len(k) == len(_REDUX) and set(k.names()) == _REDUX:
        return Verdict(Kind.IP_ADAPTER, Base.FLUX, "redux", evidence=["redux_down/up: Flux Redux"])
    return None


_REDUX = frozenset(f"redux_{a}.{b}" for a in ("down", "up") for b in ("weight", "bias"))


def _control_lora(ctx: _Ctx) -> Verdict | None:
    if "lora_controlnet" not in ctx.keys:
        return None
    base = _context_base(ctx.keys) or Base.SDXL
    ev = "lora_controlnet marker: Stability Control-LoRA (a ControlNet stored as LoRA deltas)"
    return Verdict(Kind.CONTROLNET, base, "control-lora", evidence=[ev])


def _lora_rule(ctx: _Ctx) -> Verdict | None:
    if any(map(ctx.keys.has_prefix, sig.FULL_MODEL_PREFIXES)):
        return None  # a full model with a baked-in LoRA is a model (classify.md 10)
    if not ctx.lora:
        return None
    lv = _lora.analyze(ctx.lora, ctx.metadata)
    ctx.lora_verdict = lv
    kind = Kind.LORA if lv.algo in _lora.LORA_ALGOS else Kind.LYCORIS
    ev = [*lv.evidence, f"targets {', '.join(lv.targets) or 'none'}; producer {lv.producer}"]
    if ctx.lora.tokens:
        ev.append(f"also carries {len(ctx.lora.tokens)} embedded token tensors")
    return Verdict(kind, lv.base, lv.algo, evidence=ev)


def _controlnet(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if k.has_prefix(sig.DIFFUSION_PREFIX):
        return None  # a ControlNet merged into a checkpoint is a checkpoint component
    if k.has_prefix("lllite_unet_") or k.has_prefix("lllite_conditioning1."):
        return Verdict(Kind.CONTROLNET, Base.SDXL, "lllite", evidence=["lllite_* keys: LLLite"])
    if "controlnet_blocks.0.weight" in k:
        xlabs = "input_hint_block.0.weight" in k and "pos_embed_input.weight" in k
        variant = "xlabs" if xlabs else "instantx" if "controlnet_x_embedder.weight" in k else None
        ev = f"controlnet_blocks.*: Flux ControlNet ({variant or 'unknown layout'})"
        return Verdict(Kind.CONTROLNET, Base.FLUX, variant, evidence=[ev])
    marker = next((m for m in _CONTROLNET_MARKERS if m in k), None)
    if marker is None:
        return None
    base = _context_base(k) or Base.UNKNOWN
    hint = next((k.shape(n) for n in _CONTROLNET_HINTS if n in k), None)
    lines = [f"{marker}: ControlNet; attention context -> {base}"]
    if hint is not None and len(hint) > 1:
        lines.append(f"hint input channels {hint[1]}")
    variant = "difference" if "difference" in k else None
    return Verdict(Kind.CONTROLNET, base, variant, evidence=lines)


_CONTROLNET_MARKERS = (
    "control_model.zero_convs.0.0.weight",
    "zero_convs.0.0.weight",
    "controlnet_cond_embedding.conv_in.weight",
)
_CONTROLNET_HINTS = (
    "control_model.input_hint_block.0.weight",
    "input_hint_block.0.weight",
    "controlnet_cond_embedding.conv_in.weight",
)


def _context_base(k: Keys) -> Base | None:
    """Base from the most common ``attn2.to_k`` input width anywhere in ``k``."""
    widths = Counter(
        s[1] for n in k.ending("attn2.to_k.weight")
        if len(s := k.shapes[k.rows[n]]) == 2
    )  # fmt: skip
    return sig.CONTEXT_BASES.get(widths.most_common(1)[0][0]) if widths else None


def _t2i_adapter(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if "body.0.in_conv.weight" in k and "conv_in.weight" not in k:
        ev = "body.0.in_conv.weight: light T2I-Adapter (SD1)"
        return Verdict(Kind.CONTROLNET, Base.SD1, "t2i-adapter", evidence=[ev])
    if "conv_in.weight" not in k or not (
        "body.0.block2.weight" in k or "body.0.resnets.0.block1.weight" in k
    ):
        return None
    cin = k.dim("conv_in.weight", 1) or 0
    base = sig.T2I_CONV_IN.get(cin, Base.UNKNOWN)
    ev = f"conv_in {fmt_shape(k.shape('conv_in.weight'))} + body.*: T2I-Adapter, hint in {cin}"
    return Verdict(Kind.CONTROLNET, base, "t2i-adapter", evidence=[f"{ev} -> {base}"])


def _motion_module(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    hotshot = k.contains(".temporal_attentions.")
    if not (hotshot or (k.contains(".motion_modules.") and k.contains("temporal_transformer"))):
        return None
    levels = {int(m.group(1)) for n in k.names() if (m := _DOWN_LEVEL.match(n))}
    top = max(levels, default=-1)
    base = {3: Base.SD1, 2: Base.SDXL}.get(top, Base.UNKNOWN)
    pe = next((s for n, s in k.shaped() if n.endswith("pos_encoder.pe")), None)
    if hotshot:
        variant = "hotshot-xl"
        base = Base.SDXL
    elif pe is None:
        variant = "animatelcm"
    elif k.has_prefix("mid_block.motion_modules."):
        variant = "v2"
    else:
        variant = "v3" if len(pe) > 1 and pe[1] == 32 else "v1"
    ev = f"motion modules on down_blocks 0..{top} -> {base}; positional table {fmt_shape(pe)}"
    return Verdict(Kind.MOTION_MODULE, base, variant, evidence=[ev])


_DOWN_LEVEL = re.compile(r"^down_blocks\.(\d+)\.")


def _checkpoint(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    # ComfyUI needs more than 5 keys under the prefix before it trusts it.
    if k.count_prefix(sig.DIFFUSION_PREFIX) <= 5:
        return None
    ev: list[str] = [
        f"{k.count_prefix(sig.DIFFUSION_PREFIX):,} tensors under model.diffusion_model."
    ]
    found = _diffusion(k.sub(sig.DIFFUSION_PREFIX), ctx, ev)
    base, variant = found if found is not None else (Base.UNKNOWN, None)
    te_base = _te_base(k)
    if base is Base.UNKNOWN and te_base is not None:
        base = te_base
        ev.append(f"base from the text-encoder key names -> {te_base}")
    elif te_base is not None and te_base is not base and found is not None:
        ev.append(f"text-encoder key names suggest {te_base}, the UNet says {base}")
    return Verdict(Kind.CHECKPOINT, base, variant, _components(k), evidence=ev)


def _components(k: Keys) -> tuple[str, ...]:
    return tuple(name for name, prefixes in sig.COMPONENTS if any(map(k.has_prefix, prefixes)))


def _te_base(k: Keys) -> Base | None:
    return next((b for p, b in sig.TEXT_ENCODER_BASES if k.has_prefix(p)), None)


def _fragment(ctx: _Ctx) -> Verdict | None:
    """Checkpoint-named components without a diffusion model: a VAE or text encoder."""
    k = ctx.keys
    te_prefixes = ("cond_stage_model.", "conditioner.", "text_encoders.")
    n_te = sum(k.count_prefix(p) for p in te_prefixes)
    n_vae = k.count_prefix("first_stage_model.")
    if n_vae == len(k):
        vae = _vae_verdict(k.sub("first_stage_model."))
        if vae is not None:
            vae.evidence.insert(0, "every key is under first_stage_model.: a VAE")
        return vae
    if n_te == len(k):
        base = _te_base(k) or Base.UNKNOWN
        ev = f"only checkpoint text-encoder keys ({len(k)}), no diffusion model -> {base}"
        return Verdict(Kind.TEXT_ENCODER, base, None, _components(k), evidence=[ev])
    if n_te + n_vae == len(k):
        ev = "checkpoint VAE and text-encoder keys but no diffusion model"
        base = _te_base(k) or Base.UNKNOWN
        return Verdict(Kind.CHECKPOINT, base, None, _components(k), evidence=[ev])
    return None


def _bare_diffusion(ctx: _Ctx) -> Verdict | None:
    for prefix in ("", "diffusion_model.", "unet.", "transformer.", "model."):
        k = ctx.keys.sub(prefix) if prefix else ctx.keys
        if prefix and len(k) < len(ctx.keys) // 2:
            continue
        ev: list[str] = [f"diffusion model under {prefix}*"] if prefix else []
        found = _diffusion(k, ctx, ev)
        if found is not None:
            return Verdict(Kind.UNET, found[0], found[1], ("unet",), evidence=ev)
    return None


def _vae(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if k.all_prefixed("vae."):
        k = k.sub("vae.")
    return _vae_verdict(k)


def _vae_verdict(k: Keys) -> Verdict | None:
    if "vquantizer.codebook.weight" in k:
        ev = "vquantizer.codebook.weight: Stable Cascade stage A"
        return Verdict(Kind.VAE, Base.CASCADE, "stage-a", ("vae",), evidence=[ev])
    if "taesd_decoder.1.weight" in k or (
        "decoder.layers.1.weight" in k and k.has_prefix("encoder.layers.")
    ):
        return Verdict(Kind.VAE, Base.UNKNOWN, "taesd", ("vae",), evidence=["TAESD layout"])
    shape = k.shape("decoder.conv_in.weight") or k.shape("decoder.conv_in.conv.weight")
    if shape is None or not (k.has_prefix("encoder.") or k.has_prefix("decoder.up")):
        return None
    if len(shape) not in (4, 5):
        ev = f"decoder.conv_in {fmt_shape(shape)} is not a convolution: not a VAE we know"
        return Verdict(Kind.UNKNOWN, evidence=[ev])
    if len(shape) == 5:
        ev = f"decoder.conv_in {fmt_shape(shape)}: 3-D (video) VAE, {shape[1]} latent channels"
        return Verdict(Kind.VAE, Base.UNKNOWN, "video", ("vae",), evidence=[ev])
    z = shape[1]
    base = sig.VAE_LATENT_BASES.get(z, Base.UNKNOWN)
    if "decoder.mid.block_1.mix_factor" in k:
        base, variant = Base.SVD, "temporal-decoder"
    else:
        variant = f"{z}-channel"
    why = {4: "SD1/SD2/SDXL share these shapes", 16: "SD3 and Flux.1 share these shapes"}
    ev = f"decoder.conv_in {fmt_shape(shape)}: {z} latent channels"
    ev += f" ({why[z]}; base not decidable from the header)" if z in why else f" -> {base}"
    return Verdict(Kind.VAE, base, variant, ("vae",), evidence=[ev])


def _text_encoder(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    clip = k.shape("text_model.embeddings.token_embedding.weight") or (
        k.shape("token_embedding.weight") if k.has_prefix("transformer.resblocks.") else None
    )
    if clip is not None and len(clip) == 2:
        name = sig.CLIP_TEXT_WIDTHS.get(clip[1], "clip")
        comp = "text-encoder-2" if name == "clip-g" else "text-encoder"
        ev = f"CLIP text tower, token embedding {fmt_shape(clip)} -> {name}"
        return Verdict(Kind.TEXT_ENCODER, Base.UNKNOWN, name, (comp,), evidence=[ev])
    if not k.has_prefix("encoder.block.0.layer."):
        return None
    gated = k.shape("encoder.block.0.layer.1.DenseReluDense.wi_1.weight")
    plain = k.shape("encoder.block.0.layer.1.DenseReluDense.wi.weight")
    width = (gated or plain or (0, 0))[-1]
    size = {4096: "t5-xxl", 2048: "t5-xl", 1024: "t5-large", 768: "t5-base"}.get(width, "t5")
    variant = size if gated or size == "t5" else f"{size}-v1.0"
    ev = f"T5 encoder blocks, model width {width} -> {variant}"
    return Verdict(Kind.TEXT_ENCODER, Base.UNKNOWN, variant, ("t5",), evidence=[ev])


def _clip_vision(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    if not (k.has_prefix("vision_model.encoder.layers.") or k.has_prefix("visual.transformer.")):
        return None
    name = next(
        (n for last, n in sig.CLIP_VISION_LAYERS
         if k.has_prefix(f"vision_model.encoder.layers.{last}.")
         or k.has_prefix(f"visual.transformer.resblocks.{last}.")),
        "clip-vision",
    )  # fmt: skip
    ev = f"CLIP vision tower -> {name}"
    return Verdict(Kind.CLIP_VISION, Base.UNKNOWN, name, ("image-encoder",), evidence=[ev])


def _upscaler(ctx: _Ctx) -> Verdict | None:
    k = ctx.keys
    for required, arch in sig.UPSCALERS:
        if all(r in k for r in required):
            first = k.shape(required[0])
            ev = f"{' + '.join(required)}: {arch} (spandrel), first conv {fmt_shape(first)}"
            return Verdict(Kind.UPSCALER, Base.UNKNOWN, arch, evidence=[ev])
    return None


def _parameter_list(ctx: _Ctx) -> Verdict | None:
    """cloneofsimo's legacy LoRA: a pickled *list* of (up, down) parameters, no names."""
    names = list(ctx.keys.names())
    if not names or not all(n.strip("[]").isdigit() for n in names) or len(names) % 2:
        return None
    shapes = [ctx.keys.shape(n) or () for n in names]
    pairs = [_rank_and_width(a, b) for a, b in zip(shapes[::2], shapes[1::2], strict=True)]
    if not all(pairs):
        return None
    rank = Counter(p[0] for p in pairs if p).most_common(1)[0][0]
    widths = {p[1] for p in pairs if p}
    base = next((sig.CONTEXT_BASES[w] for w in (2048, 1024, 768) if w in widths), Base.UNKNOWN)
    ctx.lora_verdict = _lora.LoraVerdict("lora", rank, None, (), "cloneofsimo", base, [])
    ev = f"{len(pairs)} unnamed (up, down) pairs of rank {rank}: cloneofsimo list LoRA -> {base}"
    return Verdict(Kind.LORA, base, "lora", evidence=[ev])


def _rank_and_width(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int] | None:
    """(rank, input width) if ``a, b`` are a LoRA pair in either order, else None."""
    if len(a) != 2 or len(b) != 2:
        return None
    if a[1] == b[0] and a[1] < min(a[0], b[1]):  # up [out, r], down [r, in]
        return a[1], b[1]
    if a[0] == b[1] and a[0] < min(a[1], b[0]):  # down [r, in], up [out, r]
        return a[0], a[1]
    return None
