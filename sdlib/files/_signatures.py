"""Data tables for :mod:`sdlib.files.classify` (the key index they are matched against is
:class:`sdlib.files._keys.Keys`, re-exported here).

Every table cites the section of ``/work/shared/reference/classify.md`` it comes from; the
rules read these tables rather than hard-coding one branch per model type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sdlib.files._keys import Keys as Keys
from sdlib.taxonomy import Base, Kind

# --- unwrapping (classify.md 2 "Nesting", 7.5) --------------------------------------------------

#: Containers whose subtree is the model: loaders take ``ckpt["state_dict"]`` and spandrel
#: ``params_ema`` before ``params``. Checked in order; the first present wins.
WRAPPERS = ("state_dict.", "params_ema.", "params-ema.", "params.", "model_state_dict.")
#: Prefixes stripped when *every* key carries them (DataParallel, BasicSR, T2I ``adapter``).
COMMON_PREFIXES = ("module.", "netG.", "adapter.")

# --- checkpoints (1.1, 1.7) --------------------------------------------------------------------

DIFFUSION_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
#: Top-level prefixes that only full checkpoints carry; their presence vetoes "LoRA".
FULL_MODEL_PREFIXES = (
    DIFFUSION_PREFIX, "first_stage_model.", "cond_stage_model.", "conditioner.", "text_encoders.",
)  # fmt: skip

#: Component name -> prefixes naming it inside a single-file checkpoint. The order of this
#: table is the order of ``Classification.components``. Text-encoder slots follow
#: diffusers: SD2's only encoder is ``text_encoder``, the refiner's bigG is ``text_encoder_2``.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unet", (DIFFUSION_PREFIX,)),
    ("vae", ("first_stage_model.", "vae.")),
    ("text-encoder", (
        "cond_stage_model.transformer.", "cond_stage_model.model.",
        "conditioner.embedders.0.transformer.", "text_encoders.clip_l.", "text_encoder.",
    )),
    ("text-encoder-2", ("conditioner.embedders.1.model.", "conditioner.embedders.0.model.",
                        "text_encoders.clip_g.")),
    ("t5", ("text_encoders.t5xxl.",)),
    ("image-encoder", ("conditioner.embedders.0.open_clip.", "embedder.model.", "clip_l_vision.")),
    ("depth-model", ("depth_model.",)),
    ("controlnet", ("control_model.",)),
)  # fmt: skip
VAE_PREFIXES = ("first_stage_model.", "vae.")

#: Text-encoder prefixes that name the base on their own (A1111 sd_models_config.py), for
#: checkpoints and checkpoint fragments without a UNet. First match wins.
TEXT_ENCODER_BASES: tuple[tuple[str, Base], ...] = (
    ("conditioner.embedders.1.", Base.SDXL),
    ("conditioner.embedders.0.model.", Base.SDXL_REFINER),
    ("cond_stage_model.model.", Base.SD2),
    ("cond_stage_model.transformer.", Base.SD1),
)

# --- UNet family (1.2, 1.3, 1.4) ---------------------------------------------------------------

#: (cross-attention width, model channels) -> base, for LDM and diffusers UNets.
UNET_BASES: dict[tuple[int, int], Base] = {
    (768, 320): Base.SD1,
    (1024, 320): Base.SD2,
    (2048, 320): Base.SDXL,
    (1280, 384): Base.SDXL_REFINER,
}
#: First-conv input channels -> variant.
IN_CHANNEL_VARIANTS: dict[int, str] = {
    9: "inpaint",
    8: "instruct-pix2pix",
    5: "depth",
    7: "x4-upscaler",
}
#: ADM (``label_emb`` / ``add_embedding``) widths that name a variant of a base.
ADM_VARIANTS: dict[tuple[Base, int], tuple[Base, str]] = {
    (Base.SD2, 1536): (Base.SD2, "unclip-l"),
    (Base.SD2, 2048): (Base.SD2, "unclip-h"),
    (Base.SDXL, 5632): (Base.UNKNOWN, "kolors"),
}

# --- v-prediction hints (1.5) ------------------------------------------------------------------

V_PRED_MARKERS = ("v_pred", "edm_vpred.sigma_max", "edm_vpred.sigma_min")
V_PRED_METADATA = ("modelspec.prediction_type", "modelspec.predict_key")

# --- other diffusion models (1.6), bare or under the diffusion prefix --------------------------

#: Key -> (base, variant) for DiT families we only name. Checked before Flux because
#: Hunyuan-Video also has ``double_blocks``.
OTHER_DIFFUSION: tuple[tuple[str, Base, str], ...] = (
    ("txt_in.individual_token_refiner.blocks.0.norm1.weight", Base.UNKNOWN, "hunyuan-video"),
    ("mlp_t5.0.weight", Base.UNKNOWN, "hunyuan-dit"),
    ("double_layers.0.attn.w1q.weight", Base.UNKNOWN, "auraflow"),
    ("t5_yproj.weight", Base.UNKNOWN, "mochi"),
    ("transformer_blocks.0.img_mod.1.weight", Base.UNKNOWN, "qwen-image"),
    ("cap_embedder.0.weight", Base.UNKNOWN, "z-image"),
    ("blocks.0.cross_attn.norm_k.weight", Base.UNKNOWN, "wan"),
)
#: Flux.1 ``img_in`` input width -> variant (after dev/schnell is known).
FLUX_IMG_IN_VARIANTS = {384: "fill", 128: "control", 196: "flex"}
#: Context (``txt_in``) widths of FLUX.2 models.
FLUX2_CONTEXT = {7680: "klein-4b", 12288: "klein-9b", 15360: "dev"}

# --- embeddings (5), hypernetworks (6) ---------------------------------------------------------

EMBEDDING_WIDTHS: dict[int, Base] = {768: Base.SD1, 1024: Base.SD2}
HYPERNETWORK_WIDTHS: dict[int, Base] = {768: Base.SD1, 1024: Base.SD2}

# --- adapters (7.2-7.4, 7.7) -------------------------------------------------------------------

#: Cross-attention width -> base for ControlNets, IP-Adapters and UNet LoRAs.
CONTEXT_BASES: dict[int, Base] = {
    768: Base.SD1,
    1024: Base.SD2,
    2048: Base.SDXL,
    1280: Base.SDXL_REFINER,
}
#: T2I-Adapter ``conv_in`` input width (pixel-unshuffled hint) -> base.
T2I_CONV_IN: dict[int, Base] = {64: Base.SD1, 192: Base.SD1, 256: Base.SDXL, 768: Base.SDXL}

#: IP-Adapter image-projection key -> variant (cubiq IPAdapterPlus.py); first match wins.
IP_ADAPTER_VARIANTS = (
    ("ip_adapter.0.to_q_lora.down.weight", "faceid"),
    ("image_proj.proj.3.weight", "full-face"),
    ("image_proj.latents", "plus"),
    ("image_proj.perceiver_resampler.proj_in.weight", "plus"),
    ("image_proj.proj.2.weight", "portrait"),
)

# --- text encoders and CLIP vision (7.6) --------------------------------------------------------

#: Token-embedding width -> CLIP text-tower name.
CLIP_TEXT_WIDTHS = {768: "clip-l", 1024: "clip-h", 1280: "clip-g"}
#: Vision tower last-layer index -> name (ViT-L 24 layers, H 32, bigG 48).
CLIP_VISION_LAYERS = ((47, "clip-vision-g"), (31, "clip-vision-h"), (23, "clip-vision-l"))

# --- VAEs (7.1) --------------------------------------------------------------------------------

#: Latent channels (``decoder.conv_in`` in-dim) -> base: 4 is SD1/SD2/SDXL and 16 is SD3 or
#: Flux.1, which headers cannot separate (classify.md 10), so only 32 names a base.
VAE_LATENT_BASES: dict[int, Base] = {32: Base.FLUX2}

# --- upscalers (7.5, spandrel) -----------------------------------------------------------------

#: Keys that must all be present -> architecture name.
UPSCALERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"), "esrgan"),
    (("model.0.weight", "model.1.sub.0.RDB1.conv1x1.weight"), "esrgan"),
    (("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"), "esrgan"),
    (("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"), "real-esrgan"),
    (("layers.0.residual_group.blocks.0.norm1.weight",), "swinir"),
    (("body.0.weight", "body.1.weight"), "compact"),
)

# --- precision (3) -----------------------------------------------------------------------------

#: Tensors left out of the precision vote: they are stored in their own dtype by design.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "logvar", "v_pred", "ztsnr", "edm_mean", "edm_std", "scaled_fp8",
    }
)  # fmt: skip
#: A dtype holding less than this share of float elements does not make a file "mixed":
#: fp8 Flux with bf16 norms stays fp8, an fp16 UNet with an fp32 VAE (~8%) is mixed.
MIXED_SHARE = 0.05


@dataclass
class Verdict:
    """What a rule concluded; ``classify`` turns it into a ``Classification``."""

    kind: Kind
    base: Base = Base.UNKNOWN
    variant: str | None = None
    components: tuple[str, ...] = ()
    vectors: int | None = None
    evidence: list[str] = field(default_factory=list)


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]" if shape is not None else "[?]"
