"""Synthetic model specs: ``{name: (dtype, shape)}`` with the real key names and shapes.

Each builder returns the tensor table of a well-known model file (see
``/work/shared/reference/classify.md`` for where the names and shapes come from). Pair
them with :func:`sdlib.demo.writers.write_safetensors` (``sparse=True`` makes a
"6.9 GB" checkpoint cost no disk) or :meth:`sdlib.files.tensors.TensorTable.from_specs`.

``SPECS`` maps a fixture name to its builder, ``METADATA`` holds the ``__metadata__`` a
real file of that kind carries (kohya ``ss_*`` keys for LoRAs, ModelSpec for some
checkpoints), ``CONTAINERS`` the container for the few fixtures that model a pickle
(their names are the dotted flattening the pickle reader produces) and ``EXPECTED``
what the classifier must answer for each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

from sdlib.taxonomy import Container

Shape = tuple[int, ...]
Spec = dict[str, tuple[str, Shape]]

__all__ = [
    "CONTAINERS",
    "EXPECTED",
    "METADATA",
    "SPECS",
    "Spec",
    "clip_l_hf",
    "clip_open",
    "clip_vision_hf",
    "controlnet_sd15",
    "diffusers_unet",
    "embedding_a1111",
    "embedding_sd2",
    "embedding_sd15",
    "embedding_sdxl",
    "esrgan_x4",
    "flux_checkpoint_fp8",
    "flux_transformer",
    "hypernetwork_sd15",
    "ip_adapter_sd15",
    "ldm_unet",
    "ldm_vae",
    "lora_flux_kohya",
    "lora_flux_peft",
    "lora_sd15_kohya",
    "lora_sdxl_diffusers",
    "lora_sdxl_kohya",
    "motion_module_v2",
    "sd3_checkpoint",
    "sd15_checkpoint",
    "sd21_checkpoint",
    "sdxl_checkpoint",
    "sdxl_refiner_checkpoint",
    "spec_with_metadata",
    "t2i_adapter_sd15",
    "t5_xxl",
]

#: The 1000-step DDPM schedule buffers LDM checkpoints carry (always fp32).
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)  # fmt: skip


# --- small building blocks ---------------------------------------------------------------------


def _wb(s: Spec, p: str, dt: str, weight: Shape, bias: bool = True) -> None:
    """A layer: ``p.weight`` and (usually) ``p.bias`` sized by the weight's first dim."""
    s[f"{p}.weight"] = (dt, weight)
    if bias:
        s[f"{p}.bias"] = (dt, (weight[0],))


def _norm(s: Spec, p: str, dt: str, c: int) -> None:
    s[f"{p}.weight"] = (dt, (c,))
    s[f"{p}.bias"] = (dt, (c,))


def _ldm_resblock(s: Spec, p: str, dt: str, cin: int, cout: int, temb: int) -> None:
    _norm(s, f"{p}.in_layers.0", dt, cin)
    _wb(s, f"{p}.in_layers.2", dt, (cout, cin, 3, 3))
    _wb(s, f"{p}.emb_layers.1", dt, (cout, temb))
    _norm(s, f"{p}.out_layers.0", dt, cout)
    _wb(s, f"{p}.out_layers.3", dt, (cout, cout, 3, 3))
    if cin != cout:
        _wb(s, f"{p}.skip_connection", dt, (cout, cin, 1, 1))


def _transformer(s: Spec, p: str, dt: str, c: int, depth: int, ctx: int, linear: bool) -> None:
    """A SpatialTransformer (LDM) / Transformer2DModel (diffusers): same inner names."""
    proj: Shape = (c, c) if linear else (c, c, 1, 1)
    _norm(s, f"{p}.norm", dt, c)
    _wb(s, f"{p}.proj_in", dt, proj)
    for k in range(depth):
        b = f"{p}.transformer_blocks.{k}"
        for attn, kv in (("attn1", c), ("attn2", ctx)):
            s[f"{b}.{attn}.to_q.weight"] = (dt, (c, c))
            s[f"{b}.{attn}.to_k.weight"] = (dt, (c, kv))
            s[f"{b}.{attn}.to_v.weight"] = (dt, (c, kv))
            _wb(s, f"{b}.{attn}.to_out.0", dt, (c, c))
        _wb(s, f"{b}.ff.net.0.proj", dt, (8 * c, c))
        _wb(s, f"{b}.ff.net.2", dt, (c, 4 * c))
        for n in ("norm1", "norm2", "norm3"):
            _norm(s, f"{b}.{n}", dt, c)
    _wb(s, f"{p}.proj_out", dt, proj)


# --- UNets -------------------------------------------------------------------------------------


def ldm_unet(
    prefix: str = "model.diffusion_model.",
    dtype: str = "F32",
    *,
    ch: int = 320,
    mult: tuple[int, ...] = (1, 2, 4, 4),
    depth: tuple[int, ...] = (1, 1, 1, 0),
    mid_depth: int = 1,
    ctx: int = 768,
    linear: bool = False,
    in_ch: int = 4,
    adm: int | None = None,
) -> Spec:
    """An LDM/SGM-named UNet (``input_blocks``/``middle_block``/``output_blocks``).

    Defaults are SD1.5; ``depth`` is the transformer depth per level (0 = no attention).
    """
    s: Spec = {}
    p, dt, temb = prefix, dtype, ch * 4
    _wb(s, f"{p}time_embed.0", dt, (temb, ch))
    _wb(s, f"{p}time_embed.2", dt, (temb, temb))
    if adm:
        _wb(s, f"{p}label_emb.0.0", dt, (temb, adm))
        _wb(s, f"{p}label_emb.0.2", dt, (temb, temb))
    _wb(s, f"{p}input_blocks.0.0", dt, (ch, in_ch, 3, 3))
    skips, cur, b = [ch], ch, 1
    for lvl, m in enumerate(mult):
        for _ in range(2):
            _ldm_resblock(s, f"{p}input_blocks.{b}.0", dt, cur, ch * m, temb)
            cur = ch * m
            if depth[lvl]:
                _transformer(s, f"{p}input_blocks.{b}.1", dt, cur, depth[lvl], ctx, linear)
            skips.append(cur)
            b += 1
        if lvl != len(mult) - 1:
            _wb(s, f"{p}input_blocks.{b}.0.op", dt, (cur, cur, 3, 3))
            skips.append(cur)
            b += 1
    _ldm_resblock(s, f"{p}middle_block.0", dt, cur, cur, temb)
    if mid_depth:
        _transformer(s, f"{p}middle_block.1", dt, cur, mid_depth, ctx, linear)
    _ldm_resblock(s, f"{p}middle_block.2", dt, cur, cur, temb)
    b = 0
    for lvl in reversed(range(len(mult))):
        out = ch * mult[lvl]
        for i in range(3):
            _ldm_resblock(s, f"{p}output_blocks.{b}.0", dt, cur + skips.pop(), out, temb)
            cur, j = out, 1
            if depth[lvl]:
                _transformer(s, f"{p}output_blocks.{b}.1", dt, cur, depth[lvl], ctx, linear)
                j = 2
            if lvl and i == 2:
                _wb(s, f"{p}output_blocks.{b}.{j}.conv", dt, (cur, cur, 3, 3))
            b += 1
    _norm(s, f"{p}out.0", dt, ch)
    _wb(s, f"{p}out.2", dt, (4, ch, 3, 3))
    return s


def _diffusers_resnet(s: Spec, p: str, dt: str, cin: int, cout: int, temb: int) -> None:
    _norm(s, f"{p}.norm1", dt, cin)
    _wb(s, f"{p}.conv1", dt, (cout, cin, 3, 3))
    _wb(s, f"{p}.time_emb_proj", dt, (cout, temb))
    _norm(s, f"{p}.norm2", dt, cout)
    _wb(s, f"{p}.conv2", dt, (cout, cout, 3, 3))
    if cin != cout:
        _wb(s, f"{p}.conv_shortcut", dt, (cout, cin, 1, 1))


def diffusers_unet(
    prefix: str = "",
    dtype: str = "F16",
    *,
    ch: int = 320,
    mult: tuple[int, ...] = (1, 2, 4),
    depth: tuple[int, ...] = (0, 2, 10),
    mid_depth: int = 10,
    ctx: int = 2048,
    linear: bool = True,
    in_ch: int = 4,
    adm: int | None = 2816,
) -> Spec:
    """A diffusers-named UNet (``down_blocks``/``mid_block``/``up_blocks``); defaults: SDXL."""
    s: Spec = {}
    p, dt, temb = prefix, dtype, ch * 4
    _wb(s, f"{p}conv_in", dt, (ch, in_ch, 3, 3))
    _wb(s, f"{p}time_embedding.linear_1", dt, (temb, ch))
    _wb(s, f"{p}time_embedding.linear_2", dt, (temb, temb))
    if adm:
        _wb(s, f"{p}add_embedding.linear_1", dt, (temb, adm))
        _wb(s, f"{p}add_embedding.linear_2", dt, (temb, temb))
    skips, cur = [ch], ch
    for lvl, m in enumerate(mult):
        out = ch * m
        for i in range(2):
            _diffusers_resnet(s, f"{p}down_blocks.{lvl}.resnets.{i}", dt, cur, out, temb)
            cur = out
            if depth[lvl]:
                blk = f"{p}down_blocks.{lvl}.attentions.{i}"
                _transformer(s, blk, dt, cur, depth[lvl], ctx, linear)
            skips.append(cur)
        if lvl != len(mult) - 1:
            _wb(s, f"{p}down_blocks.{lvl}.downsamplers.0.conv", dt, (cur, cur, 3, 3))
            skips.append(cur)
    _diffusers_resnet(s, f"{p}mid_block.resnets.0", dt, cur, cur, temb)
    _transformer(s, f"{p}mid_block.attentions.0", dt, cur, mid_depth, ctx, linear)
    _diffusers_resnet(s, f"{p}mid_block.resnets.1", dt, cur, cur, temb)
    for up, lvl in enumerate(reversed(range(len(mult)))):
        out = ch * mult[lvl]
        for i in range(3):
            blk = f"{p}up_blocks.{up}"
            _diffusers_resnet(s, f"{blk}.resnets.{i}", dt, cur + skips.pop(), out, temb)
            cur = out
            if depth[lvl]:
                _transformer(s, f"{blk}.attentions.{i}", dt, cur, depth[lvl], ctx, linear)
        if lvl:
            _wb(s, f"{p}up_blocks.{up}.upsamplers.0.conv", dt, (cur, cur, 3, 3))
    _norm(s, f"{p}conv_norm_out", dt, ch)
    _wb(s, f"{p}conv_out", dt, (4, ch, 3, 3))
    return s


def _ema_copy(unet: Spec) -> Spec:
    """LitEma shadow buffers: ``model_ema.`` + the dotless path (classify.md section 2)."""
    s: Spec = {}
    for name, (dt, shape) in unet.items():
        rest = name.removeprefix("model.")
        s["model_ema." + rest.replace(".", "")] = (dt, shape)
    s["model_ema.decay"] = ("F32", ())
    s["model_ema.num_updates"] = ("I32", ())
    return s


# --- VAEs and text encoders --------------------------------------------------------------------


def _vae_resnet(s: Spec, p: str, dt: str, cin: int, cout: int) -> None:
    _norm(s, f"{p}.norm1", dt, cin)
    _wb(s, f"{p}.conv1", dt, (cout, cin, 3, 3))
    _norm(s, f"{p}.norm2", dt, cout)
    _wb(s, f"{p}.conv2", dt, (cout, cout, 3, 3))
    if cin != cout:
        _wb(s, f"{p}.nin_shortcut", dt, (cout, cin, 1, 1))


def _vae_mid(s: Spec, p: str, dt: str, c: int) -> None:
    _vae_resnet(s, f"{p}.block_1", dt, c, c)
    _norm(s, f"{p}.attn_1.norm", dt, c)
    for n in ("q", "k", "v", "proj_out"):
        _wb(s, f"{p}.attn_1.{n}", dt, (c, c, 1, 1))
    _vae_resnet(s, f"{p}.block_2", dt, c, c)


def ldm_vae(prefix: str = "", dtype: str = "F32", *, z: int = 4, quant: bool = True) -> Spec:
    """An LDM-named KL VAE; ``z=4`` SD1/SD2/SDXL (248 keys), ``z=16, quant=False`` SD3/Flux."""
    s: Spec = {}
    p, dt, mult = prefix, dtype, (1, 2, 4, 4)
    _wb(s, f"{p}encoder.conv_in", dt, (128, 3, 3, 3))
    cur = 128
    for i, m in enumerate(mult):
        for j in range(2):
            _vae_resnet(s, f"{p}encoder.down.{i}.block.{j}", dt, cur, 128 * m)
            cur = 128 * m
        if i != len(mult) - 1:
            _wb(s, f"{p}encoder.down.{i}.downsample.conv", dt, (cur, cur, 3, 3))
    _vae_mid(s, f"{p}encoder.mid", dt, cur)
    _norm(s, f"{p}encoder.norm_out", dt, cur)
    _wb(s, f"{p}encoder.conv_out", dt, (2 * z, cur, 3, 3))
    _wb(s, f"{p}decoder.conv_in", dt, (cur, z, 3, 3))
    _vae_mid(s, f"{p}decoder.mid", dt, cur)
    for i in reversed(range(len(mult))):
        for j in range(3):
            _vae_resnet(s, f"{p}decoder.up.{i}.block.{j}", dt, cur, 128 * mult[i])
            cur = 128 * mult[i]
        if i:
            _wb(s, f"{p}decoder.up.{i}.upsample.conv", dt, (cur, cur, 3, 3))
    _norm(s, f"{p}decoder.norm_out", dt, cur)
    _wb(s, f"{p}decoder.conv_out", dt, (3, cur, 3, 3))
    if quant:
        _wb(s, f"{p}quant_conv", dt, (2 * z, 2 * z, 1, 1))
        _wb(s, f"{p}post_quant_conv", dt, (z, z, 1, 1))
    return s


def clip_l_hf(
    prefix: str = "text_model.", dtype: str = "F32", *, width: int = 768, layers: int = 12
) -> Spec:
    """A Hugging Face ``CLIPTextModel`` (``prefix`` ends in ``text_model.``): 197 keys for L."""
    s: Spec = {}
    p, dt = prefix, dtype
    s[f"{p}embeddings.position_ids"] = ("I64", (1, 77))
    s[f"{p}embeddings.token_embedding.weight"] = (dt, (49408, width))
    s[f"{p}embeddings.position_embedding.weight"] = (dt, (77, width))
    for i in range(layers):
        b = f"{p}encoder.layers.{i}"
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _wb(s, f"{b}.self_attn.{n}", dt, (width, width))
        _norm(s, f"{b}.layer_norm1", dt, width)
        _wb(s, f"{b}.mlp.fc1", dt, (4 * width, width))
        _wb(s, f"{b}.mlp.fc2", dt, (width, 4 * width))
        _norm(s, f"{b}.layer_norm2", dt, width)
    _norm(s, f"{p}final_layer_norm", dt, width)
    return s


def clip_open(prefix: str, dtype: str = "F32", *, width: int = 1024, layers: int = 24) -> Spec:
    """An OpenCLIP text tower in native names: SD2 ViT-H (1024, 24) or SDXL bigG (1280, 32)."""
    s: Spec = {}
    p, dt = prefix, dtype
    s[f"{p}positional_embedding"] = (dt, (77, width))
    s[f"{p}token_embedding.weight"] = (dt, (49408, width))
    for i in range(layers):
        b = f"{p}transformer.resblocks.{i}"
        _norm(s, f"{b}.ln_1", dt, width)
        s[f"{b}.attn.in_proj_weight"] = (dt, (3 * width, width))
        s[f"{b}.attn.in_proj_bias"] = (dt, (3 * width,))
        _wb(s, f"{b}.attn.out_proj", dt, (width, width))
        _norm(s, f"{b}.ln_2", dt, width)
        _wb(s, f"{b}.mlp.c_fc", dt, (4 * width, width))
        _wb(s, f"{b}.mlp.c_proj", dt, (width, 4 * width))
    _norm(s, f"{p}ln_final", dt, width)
    s[f"{p}text_projection"] = (dt, (width, width))
    s[f"{p}logit_scale"] = (dt, ())
    return s


def clip_vision_hf(
    dtype: str = "F16", *, width: int = 1280, layers: int = 32, mlp: int = 5120, proj: int = 1024
) -> Spec:
    """A Hugging Face ``CLIPVisionModelWithProjection`` (defaults: ViT-H/14 at 224 px)."""
    s: Spec = {}
    p, dt = "vision_model.", dtype
    s[f"{p}embeddings.class_embedding"] = (dt, (width,))
    s[f"{p}embeddings.patch_embedding.weight"] = (dt, (width, 3, 14, 14))
    s[f"{p}embeddings.position_embedding.weight"] = (dt, (257, width))
    s[f"{p}embeddings.position_ids"] = ("I64", (1, 257))
    _norm(s, f"{p}pre_layrnorm", dt, width)
    for i in range(layers):
        b = f"{p}encoder.layers.{i}"
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _wb(s, f"{b}.self_attn.{n}", dt, (width, width))
        _norm(s, f"{b}.layer_norm1", dt, width)
        _wb(s, f"{b}.mlp.fc1", dt, (mlp, width))
        _wb(s, f"{b}.mlp.fc2", dt, (width, mlp))
        _norm(s, f"{b}.layer_norm2", dt, width)
    _norm(s, f"{p}post_layernorm", dt, width)
    s["visual_projection.weight"] = (dt, (proj, width))
    return s


def t5_xxl(prefix: str = "", dtype: str = "F16", *, blocks: int = 24) -> Spec:
    """A T5-XXL v1.1 encoder (``encoder.block.N…``, gated ``wi_0``/``wi_1`` of 10240)."""
    s: Spec = {}
    p, dt = prefix, dtype
    s[f"{p}shared.weight"] = (dt, (32128, 4096))
    for i in range(blocks):
        b = f"{p}encoder.block.{i}.layer"
        for n in "qkvo":
            s[f"{b}.0.SelfAttention.{n}.weight"] = (dt, (4096, 4096))
        if i == 0:
            s[f"{b}.0.SelfAttention.relative_attention_bias.weight"] = (dt, (32, 64))
        s[f"{b}.0.layer_norm.weight"] = (dt, (4096,))
        s[f"{b}.1.DenseReluDense.wi_0.weight"] = (dt, (10240, 4096))
        s[f"{b}.1.DenseReluDense.wi_1.weight"] = (dt, (10240, 4096))
        s[f"{b}.1.DenseReluDense.wo.weight"] = (dt, (4096, 10240))
        s[f"{b}.1.layer_norm.weight"] = (dt, (4096,))
    s[f"{p}encoder.final_layer_norm.weight"] = (dt, (4096,))
    return s


# --- full checkpoints --------------------------------------------------------------------------


def sd15_checkpoint(
    dtype: str = "F32", *, ema: bool = False, in_ch: int = 4, schedule: bool = True
) -> Spec:
    """SD1.5 LDM checkpoint: UNet + VAE + CLIP-L; ``ema`` adds the ``model_ema.*`` copy."""
    unet = ldm_unet("model.diffusion_model.", dtype, in_ch=in_ch)
    s: Spec = {}
    if schedule:
        s.update({n: ("F32", (1000,)) for n in SCHEDULE_BUFFERS})
    s.update(unet)
    if ema:
        s.update(_ema_copy(unet))
    s.update(ldm_vae("first_stage_model.", dtype))
    s.update(clip_l_hf("cond_stage_model.transformer.text_model.", dtype))
    return s


def sd21_checkpoint(dtype: str = "F16", *, in_ch: int = 4) -> Spec:
    """SD2.x LDM checkpoint: linear proj, context 1024, OpenCLIP ViT-H text tower."""
    s: Spec = {}
    s.update(ldm_unet("model.diffusion_model.", dtype, ctx=1024, linear=True, in_ch=in_ch))
    s.update(ldm_vae("first_stage_model.", dtype))
    s.update(clip_open("cond_stage_model.model.", dtype, width=1024, layers=24))
    return s


def sdxl_checkpoint(dtype: str = "F16", *, in_ch: int = 4) -> Spec:
    """SDXL 1.0 base SGM checkpoint: UNet (2816 ADM, ctx 2048) + VAE + CLIP-L + bigG."""
    s: Spec = {}
    s.update(
        ldm_unet(
            "model.diffusion_model.", dtype, mult=(1, 2, 4), depth=(0, 2, 10), mid_depth=10,
            ctx=2048, linear=True, in_ch=in_ch, adm=2816,
        )
    )  # fmt: skip
    s.update(ldm_vae("first_stage_model.", dtype))
    s.update(clip_l_hf("conditioner.embedders.0.transformer.text_model.", dtype))
    s.update(clip_open("conditioner.embedders.1.model.", dtype, width=1280, layers=32))
    return s


def sdxl_refiner_checkpoint(dtype: str = "F16") -> Spec:
    """SDXL refiner: 384 channels, ctx 1280, ADM 2560, bigG only as ``embedders.0``."""
    s: Spec = {}
    s.update(
        ldm_unet(
            "model.diffusion_model.", dtype, ch=384, mult=(1, 2, 4, 4), depth=(0, 4, 4, 0),
            mid_depth=4, ctx=1280, linear=True, adm=2560,
        )
    )  # fmt: skip
    s.update(ldm_vae("first_stage_model.", dtype))
    s.update(clip_open("conditioner.embedders.0.model.", dtype, width=1280, layers=32))
    return s


def _mmdit(p: str, dt: str, *, hidden: int = 1536, depth: int = 24) -> Spec:
    """SD3 MMDiT (medium: hidden 1536, 24 joint blocks, no qk-norm)."""
    s: Spec = {}
    h = hidden
    _wb(s, f"{p}x_embedder.proj", dt, (h, 16, 2, 2))
    s[f"{p}pos_embed"] = (dt, (1, 36864, h))
    _wb(s, f"{p}t_embedder.mlp.0", dt, (h, 256))
    _wb(s, f"{p}t_embedder.mlp.2", dt, (h, h))
    _wb(s, f"{p}y_embedder.mlp.0", dt, (h, 2048))
    _wb(s, f"{p}y_embedder.mlp.2", dt, (h, h))
    _wb(s, f"{p}context_embedder", dt, (h, 4096))
    for i in range(depth):
        for part in ("context_block", "x_block"):
            b = f"{p}joint_blocks.{i}.{part}"
            pre_only = part == "context_block" and i == depth - 1
            _wb(s, f"{b}.adaLN_modulation.1", dt, ((2 if pre_only else 6) * h, h))
            _wb(s, f"{b}.attn.qkv", dt, (3 * h, h))
            if not pre_only:
                _wb(s, f"{b}.attn.proj", dt, (h, h))
                _wb(s, f"{b}.mlp.fc1", dt, (4 * h, h))
                _wb(s, f"{b}.mlp.fc2", dt, (h, 4 * h))
    _wb(s, f"{p}final_layer.linear", dt, (64, h))
    _wb(s, f"{p}final_layer.adaLN_modulation.1", dt, (2 * h, h))
    return s


def sd3_checkpoint(dtype: str = "F16") -> Spec:
    """``sd3_medium_incl_clips``: MMDiT + 16-channel VAE + CLIP-L + CLIP-G (no T5)."""
    s: Spec = {}
    s.update(_mmdit("model.diffusion_model.", dtype))
    s.update(ldm_vae("first_stage_model.", dtype, z=16, quant=False))
    s.update(clip_l_hf("text_encoders.clip_l.transformer.text_model.", dtype))
    s.update(
        clip_l_hf("text_encoders.clip_g.transformer.text_model.", dtype, width=1280, layers=32)
    )
    s["text_encoders.clip_g.transformer.text_projection.weight"] = (dtype, (1280, 1280))
    return s


def flux_transformer(
    prefix: str = "", dtype: str = "BF16", *, guidance: bool = True, img_in: int = 64
) -> Spec:
    """A BFL-named Flux.1 transformer (19 double, 38 single blocks). ``guidance``: dev."""
    s: Spec = {}
    p, dt, h = prefix, dtype, 3072
    _wb(s, f"{p}img_in", dt, (h, img_in))
    _wb(s, f"{p}txt_in", dt, (h, 4096))
    _wb(s, f"{p}time_in.in_layer", dt, (h, 256))
    _wb(s, f"{p}time_in.out_layer", dt, (h, h))
    _wb(s, f"{p}vector_in.in_layer", dt, (h, 768))
    _wb(s, f"{p}vector_in.out_layer", dt, (h, h))
    if guidance:
        _wb(s, f"{p}guidance_in.in_layer", dt, (h, 256))
        _wb(s, f"{p}guidance_in.out_layer", dt, (h, h))
    for i in range(19):
        for stream in ("img", "txt"):
            b = f"{p}double_blocks.{i}.{stream}"
            _wb(s, f"{b}_mod.lin", dt, (6 * h, h))
            _wb(s, f"{b}_attn.qkv", dt, (3 * h, h))
            s[f"{b}_attn.norm.query_norm.scale"] = (dt, (128,))
            s[f"{b}_attn.norm.key_norm.scale"] = (dt, (128,))
            _wb(s, f"{b}_attn.proj", dt, (h, h))
            _wb(s, f"{b}_mlp.0", dt, (4 * h, h))
            _wb(s, f"{b}_mlp.2", dt, (h, 4 * h))
    for i in range(38):
        b = f"{p}single_blocks.{i}"
        _wb(s, f"{b}.linear1", dt, (3 * h + 4 * h, h))
        _wb(s, f"{b}.linear2", dt, (h, h + 4 * h))
        s[f"{b}.norm.query_norm.scale"] = (dt, (128,))
        s[f"{b}.norm.key_norm.scale"] = (dt, (128,))
        _wb(s, f"{b}.modulation.lin", dt, (3 * h, h))
    _wb(s, f"{p}final_layer.linear", dt, (64, h))
    _wb(s, f"{p}final_layer.adaLN_modulation.1", dt, (2 * h, h))
    return s


def flux_checkpoint_fp8() -> Spec:
    """ComfyUI's all-in-one ``flux1-dev-fp8``: fp8 transformer + T5, bf16 VAE, fp16 CLIP-L."""
    s: Spec = {}
    s.update(flux_transformer("model.diffusion_model.", "F8_E4M3"))
    s.update(ldm_vae("vae.", "BF16", z=16, quant=False))
    s.update(clip_l_hf("text_encoders.clip_l.transformer.text_model.", "F16"))
    s.update(t5_xxl("text_encoders.t5xxl.transformer.", "F8_E4M3"))
    return s


# --- adapters and the like ---------------------------------------------------------------------


def controlnet_sd15(dtype: str = "F16") -> Spec:
    """lllyasviel ControlNet 1.x (``control_model.`` prefix): hint block + UNet encoder copy."""
    s: Spec = {}
    p = "control_model."
    hint = ((16, 3), (16, 16), (32, 16), (32, 32), (96, 32), (96, 96), (256, 96), (320, 256))
    for i, (o, c) in enumerate(hint):
        _wb(s, f"{p}input_hint_block.{2 * i}", dtype, (o, c, 3, 3))
    unet = ldm_unet(p, dtype)
    # A ControlNet is the encoder half only: no output blocks and no final conv.
    s.update({k: v for k, v in unet.items() if ".output_blocks." not in k and ".out." not in k})
    widths = (320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280)
    for i, c in enumerate(widths):
        _wb(s, f"{p}zero_convs.{i}.0", dtype, (c, c, 1, 1))
    _wb(s, f"{p}middle_block_out.0", dtype, (1280, 1280, 1, 1))
    return s


def t2i_adapter_sd15(dtype: str = "F32") -> Spec:
    """TencentARC T2I-Adapter (full, 1-channel hint: ``conv_in`` in 64 = 1·8·8)."""
    s: Spec = {}
    _wb(s, "conv_in", dtype, (320, 64, 3, 3))
    chans = (320, 320, 640, 640, 1280, 1280, 1280, 1280)
    prev = 320
    for i, c in enumerate(chans):
        if c != prev:
            _wb(s, f"body.{i}.in_conv", dtype, (c, prev, 1, 1))
        _wb(s, f"body.{i}.block1", dtype, (c, c, 3, 3))
        _wb(s, f"body.{i}.block2", dtype, (c, c, 1, 1))
        prev = c
    return s


def ip_adapter_sd15(dtype: str = "F16") -> Spec:
    """h94 ``ip-adapter_sd15``: image projection + ``to_k_ip``/``to_v_ip`` per attention."""
    s: Spec = {}
    _wb(s, "image_proj.proj", dtype, (4 * 768, 1024))
    _norm(s, "image_proj.norm", dtype, 768)
    widths = (320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 1280)
    for i, c in enumerate(widths):
        s[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = (dtype, (c, 768))
        s[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = (dtype, (c, 768))
    return s


def _temporal(s: Spec, p: str, dt: str, c: int, pe: int) -> None:
    t = f"{p}.temporal_transformer"
    _norm(s, f"{t}.norm", dt, c)
    _wb(s, f"{t}.proj_in", dt, (c, c))
    blk = f"{t}.transformer_blocks.0"
    for a in (0, 1):
        ab = f"{blk}.attention_blocks.{a}"
        for n in ("to_q", "to_k", "to_v"):
            s[f"{ab}.{n}.weight"] = (dt, (c, c))
        _wb(s, f"{ab}.to_out.0", dt, (c, c))
        s[f"{ab}.pos_encoder.pe"] = (dt, (1, pe, c))
        _norm(s, f"{blk}.norms.{a}", dt, c)
    _wb(s, f"{blk}.ff.net.0.proj", dt, (8 * c, c))
    _wb(s, f"{blk}.ff.net.2", dt, (c, 4 * c))
    _norm(s, f"{blk}.ff_norm", dt, c)
    _wb(s, f"{t}.proj_out", dt, (c, c))


def motion_module_v2(dtype: str = "F16") -> Spec:
    """AnimateDiff ``mm_sd_v15_v2``: 4 down levels, a mid block, ``pe`` length 32."""
    s: Spec = {}
    widths = (320, 640, 1280, 1280)
    for lvl, c in enumerate(widths):
        for m in range(2):
            _temporal(s, f"down_blocks.{lvl}.motion_modules.{m}", dtype, c, 32)
    _temporal(s, "mid_block.motion_modules.0", dtype, 1280, 32)
    for lvl, c in enumerate(reversed(widths)):
        for m in range(3):
            _temporal(s, f"up_blocks.{lvl}.motion_modules.{m}", dtype, c, 32)
    return s


def esrgan_x4(dtype: str = "F32", *, blocks: int = 23, nf: int = 64, gc: int = 32) -> Spec:
    """Old-arch ESRGAN RRDBNet x4 (``model.0`` … ``model.10``; e.g. 4x-UltraSharp)."""
    s: Spec = {}
    _wb(s, "model.0", dtype, (nf, 3, 3, 3))
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(5):
                out = nf if c == 4 else gc
                _wb(s, f"model.1.sub.{b}.RDB{r}.conv{c + 1}.0", dtype, (out, nf + c * gc, 3, 3))
    _wb(s, f"model.1.sub.{blocks}", dtype, (nf, nf, 3, 3))
    for i in (3, 6, 8):
        _wb(s, f"model.{i}", dtype, (nf, nf, 3, 3))
    _wb(s, "model.10", dtype, (3, nf, 3, 3))
    return s


def realesrgan_compact_pickle() -> Spec:
    """Real-ESRGAN SRVGGNetCompact as the pickle reader flattens it (``params.body.N``)."""
    s: Spec = {}
    _wb(s, "params.body.0", "F32", (64, 3, 3, 3))
    for i in range(1, 34, 2):
        s[f"params.body.{i}.weight"] = ("F32", (64,))  # PReLU
        if i < 33:
            _wb(s, f"params.body.{i + 1}", "F32", (64, 64, 3, 3))
    _wb(s, "params.body.34", "F32", (48, 64, 3, 3))
    return s


def hypernetwork_sd15() -> Spec:
    """An A1111 hypernetwork (layer structure 1,2,1) as the pickle reader flattens it."""
    s: Spec = {}
    for dim in (768, 320, 640, 1280):
        for kv in (0, 1):
            _wb(s, f"{dim}.{kv}.linear.0", "F32", (2 * dim, dim))
            _wb(s, f"{dim}.{kv}.linear.1", "F32", (dim, 2 * dim))
    return s


# --- embeddings --------------------------------------------------------------------------------


def embedding_sd15(vectors: int = 8) -> Spec:
    """kohya / EasyNegative layout: one ``emb_params [n, 768]`` tensor."""
    return {"emb_params": ("F32", (vectors, 768))}


def embedding_sd2(vectors: int = 15) -> Spec:
    return {"emb_params": ("F32", (vectors, 1024))}


def embedding_sdxl(vectors: int = 8) -> Spec:
    """SDXL embedding: the ``clip_g [n,1280]`` + ``clip_l [n,768]`` pair."""
    return {"clip_g": ("F32", (vectors, 1280)), "clip_l": ("F32", (vectors, 768))}


def embedding_a1111(vectors: int = 2) -> Spec:
    """An A1111 ``.pt`` embedding as the pickle reader flattens it."""
    return {
        "string_to_token.*": ("I64", ()),
        "string_to_param.*": ("F32", (vectors, 768)),
    }


# --- LoRA family -------------------------------------------------------------------------------

#: Module-name endings kohya's LoRA wraps inside attention blocks (diffusers names).
_ATTN_TARGETS = (
    "proj_in", "proj_out", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2",
)  # fmt: skip
_TE_TARGETS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
    "mlp.fc1", "mlp.fc2",
)  # fmt: skip
_CONV_TARGETS = ("conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv")


def _modules(weights: Spec, endings: Iterable[str]) -> dict[str, Shape]:
    """``{module path: weight shape}`` for each ``<path>.weight`` ending in one of ``endings``."""
    ends = tuple("." + e for e in endings)
    out: dict[str, Shape] = {}
    for name, (_dt, shape) in weights.items():
        if name.endswith(".weight"):
            mod = name[: -len(".weight")]
            if mod.endswith(ends):
                out[mod] = shape
    return out


def _kohya_name(prefix: str, module: str) -> str:
    return prefix + module.replace(".", "_")


def _lora_pair(s: Spec, key: str, dt: str, shape: Shape, rank: int) -> None:
    """``lora_down``/``lora_up``/``alpha`` for one wrapped Linear or Conv."""
    out, cin = shape[0], shape[1]
    if len(shape) == 4:
        s[f"{key}.lora_down.weight"] = (dt, (rank, cin, shape[2], shape[3]))
        s[f"{key}.lora_up.weight"] = (dt, (out, rank, 1, 1))
    else:
        s[f"{key}.lora_down.weight"] = (dt, (rank, cin))
        s[f"{key}.lora_up.weight"] = (dt, (out, rank))
    s[f"{key}.alpha"] = (dt, ())


def _factor(dim: int) -> tuple[int, int]:
    """LyCORIS-style factorisation: the divisor pair closest to sqrt(dim), small one first."""
    m = max(d for d in range(1, math.isqrt(dim) + 1) if dim % d == 0)
    return m, dim // m


def _lokr(s: Spec, key: str, dt: str, shape: Shape, rank: int) -> None:
    (o1, o2), (i1, i2) = _factor(shape[0]), _factor(shape[1])
    s[f"{key}.lokr_w1"] = (dt, (o1, i1))
    s[f"{key}.lokr_w2_a"] = (dt, (o2, rank))
    s[f"{key}.lokr_w2_b"] = (dt, (rank, i2))
    s[f"{key}.alpha"] = (dt, ())


def _loha(s: Spec, key: str, dt: str, shape: Shape, rank: int) -> None:
    out, cin = shape[0], math.prod(shape[1:])
    for w in ("w1", "w2"):
        s[f"{key}.hada_{w}_a"] = (dt, (out, rank))
        s[f"{key}.hada_{w}_b"] = (dt, (rank, cin))
    s[f"{key}.alpha"] = (dt, ())


_Writer = Callable[[Spec, str, str, Shape, int], None]


def _kohya(
    modules: dict[str, Shape], prefix: str, dt: str, rank: int, write: _Writer = _lora_pair
) -> Spec:
    s: Spec = {}
    for mod, shape in modules.items():
        write(s, _kohya_name(prefix, mod), dt, shape, rank)
    return s


def _sd15_diffusers_unet() -> Spec:
    return diffusers_unet(
        ch=320, mult=(1, 2, 4, 4), depth=(1, 1, 1, 0), mid_depth=1, ctx=768, linear=False,
        adm=None,
    )  # fmt: skip


def _sdxl_ldm_unet() -> Spec:
    return ldm_unet(
        "", "F16", mult=(1, 2, 4), depth=(0, 2, 10), mid_depth=10, ctx=2048, linear=True,
        adm=2816,
    )  # fmt: skip


def _sd15_te_modules() -> dict[str, Shape]:
    return _modules(clip_l_hf(), _TE_TARGETS)


def lora_sd15_kohya(rank: int = 32, dtype: str = "F16") -> Spec:
    """kohya ``networks.lora`` for SD1.5: attention Linear/1×1 conv + CLIP-L."""
    s = _kohya(_modules(_sd15_diffusers_unet(), _ATTN_TARGETS), "lora_unet_", dtype, rank)
    s.update(_kohya(_sd15_te_modules(), "lora_te_", dtype, rank))
    return s


def locon_sd15(rank: int = 16, dtype: str = "F16") -> Spec:
    """LyCORIS LoCon: the LoRA above plus 3×3 convs in the ResNets and samplers."""
    unet = _sd15_diffusers_unet()
    s = lora_sd15_kohya(rank, dtype)
    s.update(_kohya(_modules(unet, _CONV_TARGETS), "lora_unet_", dtype, rank))
    return s


def loha_sd15(rank: int = 8, dtype: str = "F16") -> Spec:
    """LyCORIS LoHa (Hadamard product) on SD1.5 attention + CLIP-L."""
    unet = _modules(_sd15_diffusers_unet(), _ATTN_TARGETS)
    s = _kohya(unet, "lora_unet_", dtype, rank, _loha)
    s.update(_kohya(_sd15_te_modules(), "lora_te_", dtype, rank, _loha))
    return s


def lora_sdxl_kohya(rank: int = 16, dtype: str = "F16") -> Spec:
    """kohya SDXL LoRA: SGM UNet names + ``lora_te1_`` (CLIP-L) + ``lora_te2_`` (bigG)."""
    s = _kohya(_modules(_sdxl_ldm_unet(), _ATTN_TARGETS), "lora_unet_", dtype, rank)
    s.update(_kohya(_modules(clip_l_hf(), _TE_TARGETS), "lora_te1_", dtype, rank))
    big_g = clip_l_hf(width=1280, layers=32)
    s.update(_kohya(_modules(big_g, _TE_TARGETS), "lora_te2_", dtype, rank))
    return s


def lokr_sdxl(rank: int = 8, dtype: str = "BF16") -> Spec:
    """LyCORIS LoKr on the SDXL UNet only (full ``lokr_w1`` and a low-rank ``lokr_w2``)."""
    return _kohya(_modules(_sdxl_ldm_unet(), _ATTN_TARGETS), "lora_unet_", dtype, rank, _lokr)


def dora_sdxl(rank: int = 16, dtype: str = "F16") -> Spec:
    """LyCORIS LoRA with weight decomposition (DoRA): adds ``dora_scale [out, 1]``."""
    modules = _modules(_sdxl_ldm_unet(), _ATTN_TARGETS)
    s = _kohya(modules, "lora_unet_", dtype, rank)
    for mod, shape in modules.items():
        s[f"{_kohya_name('lora_unet_', mod)}.dora_scale"] = (dtype, (shape[0], 1))
    return s


def lora_sdxl_diffusers(rank: int = 4, dtype: str = "F32") -> Spec:
    """diffusers ``train_dreambooth_lora_sdxl`` output: ``unet.….lora.down.weight`` and
    ``text_encoder(_2).….lora_linear_layer.down.weight``."""
    s: Spec = {}
    attn_targets = tuple(
        f"{a}.{n}" for a in ("attn1", "attn2") for n in ("to_q", "to_k", "to_v", "to_out.0")
    )
    unet = _modules(diffusers_unet(), attn_targets)
    for mod, (out, cin) in unet.items():
        s[f"unet.{mod}.lora.down.weight"] = (dtype, (rank, cin))
        s[f"unet.{mod}.lora.up.weight"] = (dtype, (out, rank))
    attn = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
    for te, width, layers in (("text_encoder", 768, 12), ("text_encoder_2", 1280, 32)):
        for mod, (out, cin) in _modules(clip_l_hf(width=width, layers=layers), attn).items():
            s[f"{te}.{mod}.lora_linear_layer.down.weight"] = (dtype, (rank, cin))
            s[f"{te}.{mod}.lora_linear_layer.up.weight"] = (dtype, (out, rank))
    return s


def lora_flux_kohya(rank: int = 16, dtype: str = "BF16") -> Spec:
    """kohya ``networks.lora_flux``: ``lora_unet_double_blocks_N_…`` / ``single_blocks``."""
    targets = ("img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2", "img_mod.lin",
               "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2", "txt_mod.lin",
               "linear1", "linear2", "modulation.lin")  # fmt: skip
    modules = _modules(flux_transformer(), targets)
    return _kohya(modules, "lora_unet_", dtype, rank)


def lora_flux_peft(rank: int = 16, dtype: str = "BF16") -> Spec:
    """diffusers/PEFT Flux LoRA (``transformer.…lora_A.weight``), as ai-toolkit saves it."""
    s: Spec = {}
    h = 3072
    mods: dict[str, Shape] = {}
    for i in range(19):
        b = f"transformer.transformer_blocks.{i}"
        for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0",
                  "to_add_out"):  # fmt: skip
            mods[f"{b}.attn.{n}"] = (h, h)
        mods[f"{b}.ff.net.0.proj"] = (4 * h, h)
        mods[f"{b}.ff.net.2"] = (h, 4 * h)
        mods[f"{b}.ff_context.net.0.proj"] = (4 * h, h)
        mods[f"{b}.ff_context.net.2"] = (h, 4 * h)
    for i in range(38):
        b = f"transformer.single_transformer_blocks.{i}"
        for n in ("attn.to_q", "attn.to_k", "attn.to_v"):
            mods[f"{b}.{n}"] = (h, h)
        mods[f"{b}.proj_mlp"] = (4 * h, h)
        mods[f"{b}.proj_out"] = (h, 5 * h)
    for mod, (out, cin) in mods.items():
        s[f"{mod}.lora_A.weight"] = (dtype, (rank, cin))
        s[f"{mod}.lora_B.weight"] = (dtype, (out, rank))
    return s


# --- metadata ----------------------------------------------------------------------------------


def _kohya_metadata(
    module: str, dim: int, alpha: float, base: str, model: str, **args: str
) -> dict[str, str]:
    """The ``ss_*`` keys kohya's sd-scripts writes; ``args`` become ``ss_network_args``."""
    tags = {"10_subject": {"subject": 40, "1girl": 38, "solo": 35, "smile": 12}}
    md = {
        "ss_network_module": module,
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": base,
        "ss_v2": str(base.startswith("sd_v2")),
        "ss_sd_model_name": model,
        "ss_resolution": "(1024, 1024)" if "xl" in base or "flux" in base else "(512, 512)",
        "ss_num_epochs": "10",
        "ss_epoch": "10",
        "ss_steps": "1500",
        "ss_output_name": "subject",
        "ss_tag_frequency": json.dumps(tags),
        "ss_training_comment": "trigger word is subject",
    }
    if args:
        md["ss_network_args"] = json.dumps(args)
    return md


METADATA: dict[str, dict[str, str]] = {
    "sd21_768v": {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v2-768-v",
        "modelspec.prediction_type": "v",
        "modelspec.title": "SD 2.1 768-v",
    },
    "lora_sd15_kohya": _kohya_metadata(
        "networks.lora", 32, 16.0, "sd_v1", "v1-5-pruned-emaonly.safetensors"
    ),
    "locon_sd15": _kohya_metadata(
        "lycoris.kohya",
        16,
        8.0,
        "sd_v1",
        "v1-5-pruned-emaonly.safetensors",
        **{"algo": "locon", "conv_dim": "16", "conv_alpha": "8"},
    ),
    "loha_sd15": _kohya_metadata(
        "lycoris.kohya",
        8,
        4.0,
        "sd_v1",
        "animefull-final-pruned.ckpt",
        **{"algo": "loha"},
    ),
    "lora_sdxl_kohya": _kohya_metadata(
        "networks.lora", 16, 8.0, "sdxl_base_v1-0", "sd_xl_base_1.0.safetensors"
    ),
    "lokr_sdxl": _kohya_metadata(
        "lycoris.kohya",
        8,
        1.0,
        "sdxl_base_v1-0",
        "ponyDiffusionV6XL.safetensors",
        **{"algo": "lokr", "factor": "-1"},
    ),
    "dora_sdxl": _kohya_metadata(
        "lycoris.kohya",
        16,
        16.0,
        "sdxl_base_v1-0",
        "sd_xl_base_1.0.safetensors",
        **{"algo": "lora", "dora_wd": "True"},
    ),
    "lora_flux_kohya": {
        **_kohya_metadata("networks.lora_flux", 16, 16.0, "flux1", "flux1-dev.safetensors"),
        "modelspec.architecture": "flux-1-dev/lora",
    },
    "lora_flux_peft": {
        "software": json.dumps(
            {"name": "ai-toolkit", "repo": "https://github.com/ostris/ai-toolkit"}
        ),
        "name": "my_flux_lora",
        "format": "pt",
    },
    "lora_sdxl_diffusers": {"format": "pt"},
}

#: Fixtures that model a pickle (names are the pickle reader's dotted flattening).
CONTAINERS: dict[str, Container] = {
    "embedding_a1111": Container.PICKLE_ZIP,
    "hypernetwork_sd15": Container.PICKLE_ZIP,
    "realesrgan_compact": Container.PICKLE_ZIP,
    "sd15_full_ema_pickle": Container.PICKLE_ZIP,
}


def _pickled_sd15() -> Spec:
    """A Lightning ``.ckpt`` flattened by the pickle reader: everything under ``state_dict.``."""
    return {f"state_dict.{k}": v for k, v in sd15_checkpoint("F32", ema=True).items()}


SPECS: dict[str, Callable[[], Spec]] = {
    "sd15_full_ema": lambda: sd15_checkpoint("F32", ema=True),
    "sd15_full_ema_pickle": _pickled_sd15,
    "sd15_pruned_fp16": lambda: sd15_checkpoint("F16", schedule=False),
    "sd15_inpaint": lambda: sd15_checkpoint("F16", in_ch=9),
    "sd15_ip2p": lambda: sd15_checkpoint("F16", in_ch=8),
    "sd21_768v": lambda: sd21_checkpoint("F16"),
    "sdxl_base": lambda: sdxl_checkpoint("F16"),
    "sdxl_inpaint": lambda: sdxl_checkpoint("F16", in_ch=9),
    "sdxl_refiner": lambda: sdxl_refiner_checkpoint("F16"),
    "sd3_medium": lambda: sd3_checkpoint("F16"),
    "flux_dev": lambda: flux_transformer("", "BF16", guidance=True),
    "flux_schnell": lambda: flux_transformer("", "BF16", guidance=False),
    "flux_dev_fp8_checkpoint": flux_checkpoint_fp8,
    "sdxl_unet": _sdxl_ldm_unet,
    "sdxl_unet_diffusers": lambda: diffusers_unet(),
    "vae_sd": lambda: ldm_vae("", "F32"),
    "vae_flux": lambda: ldm_vae("", "BF16", z=16, quant=False),
    "controlnet_sd15": controlnet_sd15,
    "t2i_adapter_sd15": t2i_adapter_sd15,
    "ip_adapter_sd15": ip_adapter_sd15,
    "motion_module_v2": motion_module_v2,
    "clip_l": lambda: clip_l_hf("text_model.", "F16"),
    "clip_vision_h": lambda: clip_vision_hf("F16"),
    "clip_vision_l": lambda: clip_vision_hf("F32", width=1024, layers=24, mlp=4096, proj=768),
    "t5_xxl": lambda: t5_xxl("", "F16"),
    "lora_sd15_kohya": lora_sd15_kohya,
    "locon_sd15": locon_sd15,
    "loha_sd15": loha_sd15,
    "lora_sdxl_kohya": lora_sdxl_kohya,
    "lokr_sdxl": lokr_sdxl,
    "dora_sdxl": dora_sdxl,
    "lora_sdxl_diffusers": lora_sdxl_diffusers,
    "lora_flux_kohya": lora_flux_kohya,
    "lora_flux_peft": lora_flux_peft,
    "embedding_sd15": embedding_sd15,
    "embedding_sd2": embedding_sd2,
    "embedding_sdxl": embedding_sdxl,
    "embedding_a1111": embedding_a1111,
    "esrgan_x4": esrgan_x4,
    "realesrgan_compact": realesrgan_compact_pickle,
    "hypernetwork_sd15": hypernetwork_sd15,
}

_CKPT = ("unet", "vae", "text-encoder")
_XL = ("unet", "vae", "text-encoder", "text-encoder-2")

#: What the classifier must say about each fixture (keys of ``Classification.to_dict()``;
#: ``lora`` lists only the fields worth pinning).
EXPECTED: dict[str, dict[str, object]] = {
    "sd15_full_ema": dict(kind="checkpoint", base="sd1", variant=None, weights="full",
                          precision="fp32", components=_CKPT),
    "sd15_full_ema_pickle": dict(kind="checkpoint", base="sd1", variant=None, weights="full",
                                 precision="fp32", components=_CKPT),
    "sd15_pruned_fp16": dict(kind="checkpoint", base="sd1", variant=None,
                             weights="ema-only-or-pruned", precision="fp16", components=_CKPT),
    "sd15_inpaint": dict(kind="checkpoint", base="sd1", variant="inpaint",
                         weights="ema-only-or-pruned", precision="fp16", components=_CKPT),
    "sd15_ip2p": dict(kind="checkpoint", base="sd1", variant="instruct-pix2pix",
                      weights="ema-only-or-pruned", precision="fp16", components=_CKPT),
    "sd21_768v": dict(kind="checkpoint", base="sd2", variant="v-prediction",
                      weights="ema-only-or-pruned", precision="fp16", components=_CKPT),
    "sdxl_base": dict(kind="checkpoint", base="sdxl", variant=None, weights="ema-only-or-pruned",
                      precision="fp16", components=_XL),
    "sdxl_inpaint": dict(kind="checkpoint", base="sdxl", variant="inpaint", precision="fp16",
                         components=_XL),
    "sdxl_refiner": dict(kind="checkpoint", base="sdxl-refiner", variant="refiner",
                         weights="ema-only-or-pruned", precision="fp16",
                         components=("unet", "vae", "text-encoder-2")),
    "sd3_medium": dict(kind="checkpoint", base="sd3", variant="medium", precision="fp16",
                       weights="ema-only-or-pruned", components=_XL),
    "flux_dev": dict(kind="unet", base="flux", variant="dev", precision="bf16",
                     weights="ema-only-or-pruned", components=("unet",)),
    "flux_schnell": dict(kind="unet", base="flux", variant="schnell", precision="bf16",
                         weights="ema-only-or-pruned", components=("unet",)),
    "flux_dev_fp8_checkpoint": dict(kind="checkpoint", base="flux", variant="dev",
                                    precision="fp8",
                                    components=("unet", "vae", "text-encoder", "t5")),
    "sdxl_unet": dict(kind="unet", base="sdxl", variant=None, precision="fp16",
                      weights="ema-only-or-pruned", components=("unet",)),
    "sdxl_unet_diffusers": dict(kind="unet", base="sdxl", variant=None, precision="fp16",
                                weights="ema-only-or-pruned", components=("unet",)),
    "vae_sd": dict(kind="vae", base="unknown", precision="fp32", weights="n/a",
                   components=("vae",)),
    "vae_flux": dict(kind="vae", base="unknown", precision="bf16", weights="n/a",
                     components=("vae",)),
    "controlnet_sd15": dict(kind="controlnet", base="sd1", precision="fp16", weights="n/a"),
    "t2i_adapter_sd15": dict(kind="controlnet", base="sd1", variant="t2i-adapter"),
    "ip_adapter_sd15": dict(kind="ip-adapter", base="sd1", precision="fp16"),
    "motion_module_v2": dict(kind="motion-module", base="sd1", variant="v2"),
    "clip_l": dict(kind="text-encoder", base="unknown", variant="clip-l",
                   components=("text-encoder",)),
    "t5_xxl": dict(kind="text-encoder", base="unknown", variant="t5-xxl", components=("t5",)),
    "clip_vision_h": dict(kind="clip-vision", base="unknown", variant="clip-vision-h",
                          precision="fp16", components=("image-encoder",)),
    "clip_vision_l": dict(kind="clip-vision", base="unknown", variant="clip-vision-l",
                          precision="fp32", components=("image-encoder",)),
    "lora_sd15_kohya": dict(kind="lora", base="sd1", variant="lora", precision="fp16",
                            weights="n/a",
                            lora=dict(algo="lora", rank=32, alpha=16.0,
                                      targets=("unet", "text-encoder"), producer="kohya")),
    "locon_sd15": dict(kind="lycoris", base="sd1", variant="locon",
                       lora=dict(algo="locon", rank=16, alpha=8.0,
                                 targets=("unet", "text-encoder"), producer="lycoris")),
    "loha_sd15": dict(kind="lycoris", base="sd1", variant="loha",
                      lora=dict(algo="loha", rank=8, targets=("unet", "text-encoder"),
                                producer="lycoris")),
    "lora_sdxl_kohya": dict(kind="lora", base="sdxl", variant="lora",
                            lora=dict(algo="lora", rank=16, alpha=8.0,
                                      targets=("unet", "text-encoder", "text-encoder-2"),
                                      producer="kohya")),
    "lokr_sdxl": dict(kind="lycoris", base="sdxl", variant="lokr", precision="bf16",
                      lora=dict(algo="lokr", rank=8, targets=("unet",), producer="lycoris")),
    "dora_sdxl": dict(kind="lora", base="sdxl", variant="dora",
                      lora=dict(algo="dora", rank=16, targets=("unet",))),
    "lora_sdxl_diffusers": dict(kind="lora", base="sdxl", variant="lora", precision="fp32",
                                lora=dict(algo="lora", rank=4, alpha=None,
                                          targets=("unet", "text-encoder", "text-encoder-2"),
                                          producer="diffusers")),
    "lora_flux_kohya": dict(kind="lora", base="flux", variant="lora", precision="bf16",
                            lora=dict(algo="lora", rank=16, alpha=16.0, targets=("unet",),
                                      producer="kohya")),
    "lora_flux_peft": dict(kind="lora", base="flux", variant="lora",
                           lora=dict(algo="lora", rank=16, targets=("unet",),
                                     producer="ai-toolkit")),
    "embedding_sd15": dict(kind="embedding", base="sd1", vectors=8, precision="fp32",
                           weights="n/a", components=()),
    "embedding_sd2": dict(kind="embedding", base="sd2", vectors=15),
    "embedding_sdxl": dict(kind="embedding", base="sdxl", vectors=8),
    "embedding_a1111": dict(kind="embedding", base="sd1", vectors=2),
    "esrgan_x4": dict(kind="upscaler", base="unknown", variant="esrgan", precision="fp32"),
    "realesrgan_compact": dict(kind="upscaler", base="unknown", variant="compact"),
    "hypernetwork_sd15": dict(kind="hypernetwork", base="sd1"),
}  # fmt: skip


def spec_with_metadata(name: str) -> tuple[Spec, dict[str, str]]:
    """The spec and ``__metadata__`` of fixture ``name`` (metadata may be empty)."""
    return SPECS[name](), dict(METADATA.get(name, {}))
