"""What a model file is, from its tensor table alone: kind, base, variant, precision, weights.

Pure and fast: reads names, shapes, dtypes and metadata (never tensor data), indexes the
names once and then answers every rule with set lookups, so a 2,500-tensor checkpoint takes
a few milliseconds. Rules run in the order of ``/work/shared/reference/classify.md``
section 9 ("delta or full model" before "which family"); the first that matches wins. The
signatures themselves are data in :mod:`sdlib.files._signatures`; LoRA analysis lives in
:mod:`sdlib.files._lora`. Every decision appends a line to ``evidence`` so
``sdlib inspect --explain`` can say why.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sdlib.files import _lora
from sdlib.files import _signatures as sig
from sdlib.files._signatures import Keys, Verdict, fmt_shape
from sdlib.files.tensors import QUANT_BLOCKS, TensorTable
from sdlib.taxonomy import Base, Kind, Precision, Weights

__all__ = ["Classification", "LoraInfo", "classify"]


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA-family file patches and how."""

    #: lora, locon, loha, lokr, dora, ia3, oft, boft, glora, full-diff
    algo: str
    #: The most common rank over the patched modules (None where rank has no meaning).
    rank: int | None
    #: From ``ss_network_alpha``: alpha tensors keep their value in the data, never read.
    alpha: float | None
    #: Subset of unet, text-encoder, text-encoder-2, t5.
    targets: tuple[str, ...]
    #: kohya, lycoris, diffusers, peft, cloneofsimo, onetrainer, xlabs, ai-toolkit...
    producer: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "algo": self.algo,
            "rank": self.rank,
            "alpha": self.alpha,
            "targets": list(self.targets),
            "producer": self.producer,
        }


@dataclass(frozen=True)
class Classification:
    kind: Kind
    base: Base
    #: inpaint, instruct-pix2pix, depth, refiner, v-prediction, dev/schnell...; for the
    #: LoRA family the algorithm (also in ``lora.algo``).
    variant: str | None
    #: By element share of float tensors; None when there are none.
    precision: Precision | None
    weights: Weights
    #: Parts present, in a stable order: unet (any diffusion model), vae, text-encoder,
    #: text-encoder-2, t5, image-encoder, depth-model, controlnet.
    components: tuple[str, ...]
    #: Embeddings: vector (token) count.
    vectors: int | None
    lora: LoraInfo | None
    #: A short human summary of kohya ``ss_*`` / ModelSpec metadata.
    metadata: dict[str, str]
    tensors: int
    parameters: int
    evidence: tuple[str, ...] = field(default=())
    #: The ggml block quantisation most weights are stored in (GGUF files: ``Q8_0``,
    #: ``Q4_K``...); ``precision`` is then None when quantised weights are the majority.
    quantization: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: enums as their lower-case values, tuples as lists."""
        return {
            "kind": str(self.kind),
            "base": str(self.base),
            "variant": self.variant,
            "precision": str(self.precision) if self.precision is not None else None,
            "quantization": self.quantization,
            "weights": str(self.weights),
            "components": list(self.components),
            "vectors": self.vectors,
            "lora": self.lora.to_dict() if self.lora is not None else None,
            "metadata": dict(self.metadata),
            "tensors": self.tensors,
            "parameters": self.parameters,
            "evidence": list(self.evidence),
        }


#: The first evidence line of a classification the rules could not finish (a bug in sdlib,
#: never the file's fault): the file is reported ``unknown`` instead of crashing a batch.
INTERNAL_ERROR = "internal classifier error"


def classify(table: TensorTable) -> Classification:
    """Classify one file's tensor table (safetensors header or flattened pickle).

    Never raises: a table no rule can make sense of is ``unknown`` with evidence saying why.
    """
    try:
        return _classify(table)
    except Exception as exc:
        return Classification(
            kind=Kind.UNKNOWN, base=Base.UNKNOWN, variant=None, precision=None,
            weights=Weights.NA, components=(), vectors=None, lora=None, metadata={},
            tensors=len(table.tensors), parameters=0,
            evidence=(f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"[:300],),
        )  # fmt: skip


def _classify(table: TensorTable) -> Classification:
    evidence: list[str] = []
    keys = _unwrap(Keys(dict(table.tensors)), evidence)
    ctx = _Ctx(keys, table.metadata)
    verdict = _decide(ctx)
    evidence.extend(verdict.evidence)
    weights = _weights(keys, verdict.kind, evidence)
    precision, quantization = _precision(keys, evidence)
    lora = None
    if ctx.lora_verdict is not None:
        lv = ctx.lora_verdict
        lora = LoraInfo(lv.algo, lv.rank, lv.alpha, lv.targets, lv.producer)
    return Classification(
        kind=verdict.kind,
        base=verdict.base,
        variant=verdict.variant,
        precision=precision,
        weights=weights,
        components=verdict.components,
        vectors=verdict.vectors,
        lora=lora,
        metadata=_summary(table.metadata, ctx.scanned.tokens if ctx.scanned else []),
        tensors=len(table),
        parameters=sum(math.prod(t.shape) for t in table.tensors.values()),
        evidence=tuple(evidence),
        quantization=quantization,
    )


@dataclass
class _Ctx:
    keys: Keys
    metadata: Mapping[str, str]
    lora_verdict: _lora.LoraVerdict | None = None
    scanned: _lora.LoraScan | None = None

    @property
    def lora(self) -> _lora.LoraScan:
        """The delta-key scan, run on first use: full checkpoints never need it."""
        if self.scanned is None:
            self.scanned = _lora.scan(self.keys)
        return self.scanned


# --- unwrapping --------------------------------------------------------------------------------


def _unwrap(keys: Keys, evidence: list[str]) -> Keys:
    """Take the model subtree of a training/pickle wrapper and drop a common prefix."""
    for wrapper in sig.WRAPPERS:
        if keys.has_prefix(wrapper):
            keys = keys.sub(wrapper)
            evidence.append(f"took the {len(keys):,} tensors under {wrapper}*")
            break
    for prefix in sig.COMMON_PREFIXES:
        if keys.all_prefixed(prefix):
            keys = keys.sub(prefix)
            evidence.append(f"every key starts with {prefix}: stripped it")
    return keys


# --- the rules, in order -----------------------------------------------------------------------

_Rule = Callable[[_Ctx], Verdict | None]


def _decide(ctx: _Ctx) -> Verdict:
    if not ctx.keys.tensors:
        return Verdict(Kind.UNKNOWN, evidence=["no tensors"])
    for rule in _RULES:
        verdict = rule(ctx)
        if verdict is not None:
            return verdict
    heads = ", ".join(f"{h} ({n})" for h, n in ctx.keys.heads().most_common(6))
    return Verdict(
        Kind.UNKNOWN,
        evidence=[f"no signature matched {len(ctx.keys):,} tensors; top-level names: {heads}"],
    )


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
    if set(k.names()) == _REDUX:
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
        t.shape[1] for n, t in k.tensors.items()
        if n.endswith("attn2.to_k.weight") and len(t.shape) == 2
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
    pe = next((t.shape for n, t in k.tensors.items() if n.endswith("pos_encoder.pe")), None)
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


_RULES: tuple[_Rule, ...] = (
    _hypernetwork, _embedding, _ip_adapter, _control_lora, _lora_rule, _controlnet,
    _t2i_adapter, _motion_module, _checkpoint, _fragment, _bare_diffusion, _vae,
    _text_encoder, _clip_vision, _upscaler, _parameter_list,
)  # fmt: skip


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
        t.shape[1] for n, t in k.tensors.items()
        if n.endswith(".attn2.to_k.weight") and len(t.shape) == 2
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


# --- weights and precision ---------------------------------------------------------------------


def _weights(k: Keys, kind: Kind, evidence: list[str]) -> Weights:
    if kind not in (Kind.CHECKPOINT, Kind.UNET):
        return Weights.NA
    ema = k.count_prefix(sig.EMA_PREFIX)
    if ema:
        evidence.append(f"{ema:,} tensors under model_ema.*: EMA copy present -> full")
        return Weights.FULL
    evidence.append("no model_ema.* tensors: EMA-only or pruned (the header cannot tell which)")
    return Weights.EMA_ONLY_OR_PRUNED


_DTYPE_PRECISION: dict[str, Precision] = {
    "F64": Precision.FP32, "F32": Precision.FP32, "F16": Precision.FP16, "BF16": Precision.BF16,
    "F8_E4M3": Precision.FP8, "F8_E5M2": Precision.FP8, "F8_E4M3FNUZ": Precision.FP8,
    "F8_E5M2FNUZ": Precision.FP8,
}  # fmt: skip


def _precision(k: Keys, evidence: list[str]) -> tuple[Precision | None, str | None]:
    """(float precision, ggml quantisation) by element share."""
    if k.contains(".quant_state.bitsandbytes__nf4"):
        evidence.append("bitsandbytes NF4 quantised: no float precision applies")
        return None, None
    by_dtype: dict[str, int] = {}
    skip = sig.SCHEDULE_BUFFERS
    for name, t in k.tensors.items():
        # Scalars (alpha, markers, EMA decay), CLIP position ids and schedule buffers keep
        # their own dtype by design; they must not make a file "mixed".
        if not t.shape or name in skip or name.endswith("position_ids"):
            continue
        n = math.prod(t.shape)
        if n:  # an empty tensor holds no weights to have a precision
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + n
    totals: Counter[Precision] = Counter()
    quant: Counter[str] = Counter()
    for dtype, n in by_dtype.items():
        if dtype in _DTYPE_PRECISION:
            totals[_DTYPE_PRECISION[dtype]] += n
        elif dtype in QUANT_BLOCKS:
            quant[dtype] += n
    if quant:
        return _quantized(totals, quant, evidence)
    if not totals:
        return None, None
    total = sum(totals.values())
    ranked = totals.most_common()
    shares = ", ".join(f"{p} {n / total:.1%}" for p, n in ranked)
    if len(ranked) > 1 and ranked[1][1] / total >= sig.MIXED_SHARE:
        evidence.append(f"float elements: {shares} -> mixed")
        return Precision.MIXED, None
    evidence.append(f"float elements: {shares} -> {ranked[0][0]}")
    if "scaled_fp8" in k:
        evidence.append("scaled_fp8 marker: ComfyUI scaled fp8 weights")
    return ranked[0][0], None


def _quantized(
    floats: Counter[Precision], quant: Counter[str], evidence: list[str]
) -> tuple[Precision | None, str]:
    """GGUF block quantisation: named by its most common type; float precision only when
    the float tensors (norms, biases, embedders kept unquantised) outweigh it."""
    total = sum(floats.values()) + sum(quant.values())
    ranked = [*quant.most_common(), *((str(p), n) for p, n in floats.most_common())]
    shares = ", ".join(f"{name} {n / total:.1%}" for name, n in ranked)
    name = quant.most_common(1)[0][0]
    if sum(quant.values()) * 2 >= total or not floats:
        evidence.append(f"elements: {shares} -> quantised {name} (no float precision applies)")
        return None, name
    precision = floats.most_common(1)[0][0]
    evidence.append(f"elements: {shares} -> {precision}, partly quantised {name}")
    return precision, name


# --- metadata summary --------------------------------------------------------------------------

#: (metadata key, summary key); the first present key of each summary key wins.
_SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("modelspec.title", "title"), ("modelspec.architecture", "architecture"),
    ("general.name", "title"), ("general.architecture", "architecture"),
    ("modelspec.author", "author"), ("modelspec.trigger_phrase", "trigger"),
    ("modelspec.prediction_type", "prediction"), ("modelspec.predict_key", "prediction"),
    ("ss_sd_model_name", "trained_on"), ("ss_base_model_version", "base_model_version"),
    ("ss_network_module", "network"), ("ss_network_dim", "network_dim"),
    ("ss_network_alpha", "network_alpha"), ("ss_resolution", "resolution"),
    ("modelspec.resolution", "resolution"), ("ss_epoch", "epochs"),
    ("ss_num_epochs", "epochs"), ("ss_steps", "steps"), ("ss_max_train_steps", "steps"),
    ("ss_output_name", "output_name"), ("ss_training_comment", "comment"),
)  # fmt: skip
_MAX_VALUE = 160


def _summary(md: Mapping[str, str], tokens: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, label in _SUMMARY_KEYS:
        value = md.get(key, "").strip()
        if value and value != "None" and label not in out:
            out[label] = value[:_MAX_VALUE]
    algo = _json_field(md.get("ss_network_args"), "algo")
    if algo:
        out["algo"] = algo
    software = _json_field(md.get("software"), "name")
    if software:
        out["software"] = software
    tags = _top_tags(md.get("ss_tag_frequency"))
    if tags:
        out["tags"] = tags
    merged = md.get("sd_merge_models")
    if merged:
        out["merged"] = _merge_names(merged)
    if tokens:
        out["embedded_tokens"] = ", ".join(tokens[:8])[:_MAX_VALUE]
    return out


def _json(raw: str | None) -> object:
    if not raw or not raw.lstrip().startswith("{"):
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, over-long integers, nested too deep
        return None


def _json_field(raw: str | None, name: str) -> str | None:
    data = _json(raw)
    value = data.get(name) if isinstance(data, dict) else None
    return str(value) if value else None


def _top_tags(raw: str | None, n: int = 5) -> str | None:
    data = _json(raw)
    if not isinstance(data, dict):
        return None
    counts: Counter[str] = Counter()
    for folder in data.values():
        if isinstance(folder, dict):
            for tag, count in folder.items():
                if isinstance(count, int):
                    counts[tag.strip()] += count
    return ", ".join(t for t, _ in counts.most_common(n)) or None


def _merge_names(raw: str) -> str:
    data = _json(raw)
    if isinstance(data, dict):
        names = [str(v.get("name", h)) if isinstance(v, dict) else str(h) for h, v in data.items()]
        return ", ".join(names)[:_MAX_VALUE]
    return raw[:_MAX_VALUE]
