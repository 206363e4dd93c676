"""What a model file is, from its tensor table alone: kind, base, variant, precision, weights.

Pure and fast: reads names, shapes, dtypes and metadata (never tensor data), indexes the
names once and then answers every rule with set lookups, so a 2,500-tensor checkpoint takes
a few milliseconds. Rules run in the order of ``/work/shared/reference/classify.md``
section 9 ("delta or full model" before "which family"); the first that matches wins. The
signatures themselves are data in :mod:`sdlib.files._signatures`; LoRA analysis lives in
:mod:`sdlib.files._lora`, the diffusion family in :mod:`sdlib.files._architecture`, weights,
precision and metadata in :mod:`sdlib.files._traits`. Every decision appends a line to
``evidence`` so ``sdlib inspect --explain`` can say why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sdlib.files import _lora
from sdlib.files import _signatures as sig
from sdlib.files._kinds import (
    _bare_diffusion,
    _checkpoint,
    _clip_vision,
    _control_lora,
    _controlnet,
    _embedding,
    _fragment,
    _hypernetwork,
    _ip_adapter,
    _lora_rule,
    _motion_module,
    _parameter_list,
    _t2i_adapter,
    _text_encoder,
    _upscaler,
    _vae,
)  # fmt: skip
from sdlib.files._signatures import Keys, Verdict
from sdlib.files._traits import _precision, _summary, _weights
from sdlib.files.tensors import TensorTable
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
    everything = Keys.of(table.tensors)
    keys = _unwrap(everything, evidence)
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
        parameters=everything.elements,
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
    if not len(ctx.keys):
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


_RULES: tuple[_Rule, ...] = (
    _hypernetwork, _embedding, _ip_adapter, _control_lora, _lora_rule, _controlnet,
    _t2i_adapter, _motion_module, _checkpoint, _fragment, _bare_diffusion, _vae,
    _text_encoder, _clip_vision, _upscaler, _parameter_list,
)  # fmt: skip
