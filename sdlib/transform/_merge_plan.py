"""Decide what a merge does, tensor by tensor, before a byte of output is written.

Pure decisions over tensor tables (the bytes are read later, by ``merge``): which inputs
share an architecture, which tensors are merged, copied from A or taken from a baked-in VAE,
and what each output tensor's dtype is. Everything that can refuse a merge refuses here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sdlib._version import __version__
from sdlib.errors import FormatError, UsageError
from sdlib.files.classify import Classification, classify
from sdlib.files.pickles import PickleScan, open_pickle, unsafe_error
from sdlib.files.safetensors import read_table
from sdlib.files.tensors import TensorTable
from sdlib.taxonomy import Kind
from sdlib.transform._output import summarize
from sdlib.transform._plan import plan_from_pickle, plan_from_safetensors
from sdlib.transform._stwriter import read_header
from sdlib.transform._tensordata import Source, target_dtype

METHODS = ("weighted-sum", "add-difference")
COMPONENTS = ("unet", "text-encoder", "vae")
#: Where each selectable component lives in a single-file checkpoint (classify.md 1.1). The
#: EMA copy of the UNet (``model_ema.*``) follows the UNet.
COMPONENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "unet": ("model.diffusion_model.", "model_ema."),
    "text-encoder": ("cond_stage_model.", "conditioner.embedders.", "text_encoders."),
    "vae": ("first_stage_model.", "vae."),
}
#: Never averaged, always A's: EMA bookkeeping, and CLIP's position ids (A1111 skips them:
#: some checkpoints store them as floats, and averaging those corrupts the text encoder).
KEEP_FROM_A = frozenset({"model_ema.decay", "model_ema.num_updates"})
_POSITION_IDS = "embeddings.position_ids"
MERGEABLE = frozenset({"F16", "BF16", "F32", "F64"})
_FP8 = frozenset({"F8_E4M3", "F8_E5M2", "F8_E8M0"})
#: A1111 ``load_vae_dict``: training leftovers in VAE files that are not VAE weights.
_VAE_SKIP = ("loss.", "model_ema.")
_VAE_FILE_PREFIXES = ("first_stage_model.", "vae.")
#: Extra input channels of the first convolution, as A1111's merger knows them.
FIRST_CONV_VARIANTS = {9: "inpaint", 8: "instruct-pix2pix"}
_MODEL_KINDS = (Kind.CHECKPOINT, Kind.UNET)
#: Metadata of A that says how to run the model (not who made it): kept in the output.
_KEPT_METADATA = (
    "modelspec.architecture", "modelspec.implementation", "modelspec.prediction_type",
    "modelspec.predict_key",
)  # fmt: skip
_A1111_METHOD = {"weighted-sum": "Weighted sum", "add-difference": "Add difference"}


@dataclass(frozen=True)
class ModelInput:
    """One opened input: where its tensors' bytes are and what the classifier says it is."""

    role: str  # A, B, C or VAE
    path: Path
    container: str  # safetensors, pickle-zip, pickle-legacy
    sources: Mapping[str, Source]  # in file order
    table: TensorTable
    classification: Classification
    scan: PickleScan | None = None

    def describe(self) -> str:
        c = self.classification
        if c.kind is Kind.UNKNOWN:
            return "file sdlib does not recognise"
        what = f"{c.base} {c.kind}" if c.kind in _MODEL_KINDS else str(c.kind)
        return f"{what} ({c.variant})" if c.variant else what


def open_input(path: Path, role: str) -> ModelInput:
    """Read an input's tensor table; a pickle is scanned first and refused when unsafe."""
    if not path.is_file():
        raise UsageError("no such file", path=str(path))
    scan = None
    if _is_safetensors(path):
        table = read_table(path)
        with open(path, "rb") as fh:
            plan = plan_from_safetensors(read_header(fh), "keep", False)
        container = "safetensors"
    else:
        loaded = open_pickle(path)
        if loaded.scan.unsafe:
            raise unsafe_error(loaded.scan, str(path))
        plan = plan_from_pickle(loaded, "keep", False)
        table, scan, container = loaded.table, loaded.scan, str(loaded.scan.container)
    sources = {i.name: i.source for i in plan.items}
    judged = table
    if role == "VAE":  # VAE training files carry loss.* (discriminator) tensors too
        kept = {n: t for n, t in table.tensors.items() if not n.startswith(_VAE_SKIP)}
        judged = TensorTable(kept, table.container, table.metadata)
    return ModelInput(role, path, container, sources, table, classify(judged), scan)


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < (100 << 20) and head[8:] == b"{"


@dataclass(frozen=True)
class Step:
    """One output tensor. ``action``: merge, first-conv (merge the leading ``channels`` input
    channels, keep A's others), copy (A's tensor) or vae (the baked-in VAE's tensor)."""

    name: str
    action: str
    dtype: str  # output dtype
    shape: tuple[int, ...]
    a: Source
    b: Source | None = None
    c: Source | None = None
    vae: Source | None = None
    channels: int = 0


@dataclass
class MergePlan:
    steps: list[Step]
    #: Reason -> names of tensors copied unchanged from A (besides --components choices).
    copied: dict[str, list[str]] = field(default_factory=dict)
    #: Tensors of B or C that A lacks: they are not in the output.
    not_in_a: list[str] = field(default_factory=list)
    #: inpaint or instruct-pix2pix when A's first convolution has extra input channels.
    first_conv: str | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)


def component_of(name: str, kind: Kind) -> str | None:
    """The selectable component a tensor belongs to, or None for what is not model weights:
    DDPM schedule buffers, v-prediction markers, EMA counters, CLIP position ids, and parts
    no SD fine-tune trains (SD2 depth's MiDaS, unCLIP's image encoder). Those are A's."""
    if name in KEEP_FROM_A or name.endswith(_POSITION_IDS):
        return None
    if kind is Kind.UNET:
        return "unet"
    return next((c for c, ps in COMPONENT_PREFIXES.items() if name.startswith(ps)), None)


def plan_merge(
    a: ModelInput,
    b: ModelInput,
    c: ModelInput | None,
    vae: ModelInput | None,
    *,
    dtype: str,
    components: Sequence[str],
) -> MergePlan:
    """Check that the inputs can be merged and decide every output tensor, or raise."""
    others = [m for m in (b, c) if m is not None]
    check_architecture(a, others)
    check_tables(a, others)
    baked = vae_map(a, vae) if vae is not None else {}
    plan = MergePlan([])
    kind = a.classification.kind
    for name, src in a.sources.items():
        step = _step(plan, name, src, b, c, baked, kind, target_dtype(src.dtype, dtype), components)
        plan.steps.append(step)
    names = set(a.sources)
    plan.not_in_a = sorted({n for m in others for n in m.sources if n not in names})
    plan.notes += _variant_notes(a, others)
    return plan


def _step(
    plan: MergePlan,
    name: str,
    src: Source,
    b: ModelInput,
    c: ModelInput | None,
    baked: Mapping[str, Source],
    kind: Kind,
    out_dtype: str,
    components: Sequence[str],
) -> Step:
    def copy(reason: str) -> Step:
        plan.copied.setdefault(reason, []).append(name)
        return Step(name, "copy", out_dtype, src.shape, src)

    if name in baked:
        return Step(name, "vae", out_dtype, src.shape, src, vae=baked[name])
    component = component_of(name, kind)
    if component is None:
        return copy("not model weights")
    if component not in components:
        return copy(f"{component} not selected")
    sb = b.sources.get(name)
    sc = c.sources.get(name) if c is not None else None
    if sb is None or (c is not None and sc is None):
        missing = "B" if sb is None else "C"
        return copy(f"only in A (missing from {missing})")
    dtypes = {s.dtype for s in (src, sb, sc) if s is not None}
    if dtypes & _FP8:
        raise FormatError(f"{name} is an fp8 tensor: fp8 checkpoints cannot be merged")
    if not dtypes <= MERGEABLE:
        return copy("not floating point")
    shapes = {s.shape for s in (sb, sc) if s is not None}
    if shapes != {src.shape}:
        # check_tables let only A1111's first-conv case through; B and C must agree on it.
        if len(shapes) != 1:
            raise UsageError(f"B and C differ in {name}: {' vs '.join(map(str, shapes))}")
        plan.first_conv = FIRST_CONV_VARIANTS[src.shape[1]]
        return Step(name, "first-conv", out_dtype, src.shape, src, sb, sc, channels=sb.shape[1])
    return Step(name, "merge", out_dtype, src.shape, src, sb, sc)


def check_architecture(a: ModelInput, others: Sequence[ModelInput]) -> None:
    """Same kind (checkpoint or UNet) and the same base as the classifier sees them."""
    for m in (a, *others):
        if m.classification.kind not in _MODEL_KINDS:
            raise UsageError(
                f"{m.role} is a {m.classification.kind}, not a checkpoint or UNet: only those "
                "can be merged",
                path=str(m.path),
            )
    ca = a.classification
    for m in others:
        cm = m.classification
        if cm.kind is not ca.kind or cm.base is not ca.base:
            raise UsageError(
                f"cannot merge A ({a.describe()}) with {m.role} ({m.describe()}): merging needs "
                "the same architecture"
            )


def check_tables(a: ModelInput, others: Sequence[ModelInput]) -> None:
    """Shared tensors must match in shape, bar A1111's first-conv case."""
    for m in others:
        shared = [n for n in a.sources if n in m.sources]
        if len(shared) < len(a.sources) / 2:
            raise UsageError(
                f"A and {m.role} share only {len(shared)} of A's {len(a.sources)} tensor names: "
                "not the same model layout"
            )
        bad = []
        for name in shared:
            sa, sm = a.sources[name].shape, m.sources[name].shape
            if sa == sm or _first_conv_shapes(sa, sm):
                continue
            if _first_conv_shapes(sm, sa):
                variant = FIRST_CONV_VARIANTS[sm[1]]
                raise UsageError(
                    f"{m.role} is an {variant} model and A is not ({name} {m.role}{list(sm)} "
                    f"A{list(sa)}): when merging an {variant} model with a normal one, A must "
                    f"be the {variant} model"
                )
            bad.append(f"{name} A{list(sa)} {m.role}{list(sm)}")
        if bad:
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            raise UsageError(
                f"A and {m.role} differ in {len(bad)} tensor shape(s): {'; '.join(bad[:3])}{more}"
            )


def _first_conv_shapes(sa: tuple[int, ...], sb: tuple[int, ...]) -> bool:
    """A1111's rule: 4-D, same but for input channels, A has 9 (inpaint) or 8 (ip2p), B 4."""
    return (
        len(sa) == 4
        and len(sb) == 4
        and sa[0] == sb[0]
        and sa[2:] == sb[2:]
        and sa[1] in FIRST_CONV_VARIANTS
        and sb[1] == 4
    )


def vae_map(a: ModelInput, vae: ModelInput) -> dict[str, Source]:
    """A's VAE tensor name -> the VAE file's tensor that replaces it (all must be covered)."""
    prefix = next(
        (p for p in COMPONENT_PREFIXES["vae"] if any(n.startswith(p) for n in a.sources)), None
    )
    if prefix is None:
        raise UsageError("A has no VAE (no first_stage_model.* tensors) to replace")
    if vae.classification.kind is not Kind.VAE:
        raise UsageError(
            f"--bake-vae needs a VAE file; this is a {vae.describe()}", path=str(vae.path)
        )
    names = [n for n in vae.sources if not n.startswith(_VAE_SKIP)]
    strip = next((p for p in _VAE_FILE_PREFIXES if all(n.startswith(p) for n in names)), "")
    mapped: dict[str, Source] = {}
    bad: list[str] = []
    for name in names:
        target = prefix + name[len(strip) :]
        src, ours = vae.sources[name], a.sources.get(target)
        if ours is None or ours.shape != src.shape:
            got = "missing" if ours is None else str(list(ours.shape))
            bad.append(f"{name}{list(src.shape)} -> A {got}")
        elif src.dtype not in MERGEABLE and src.dtype != ours.dtype:
            bad.append(f"{name} is {src.dtype}, A's is {ours.dtype}")
        else:
            mapped[target] = src
    missing = [n for n in a.sources if n.startswith(prefix) and n not in mapped]
    if bad or missing:
        detail = "; ".join(bad[:3]) if bad else f"it lacks {len(missing)}, e.g. {missing[0]}"
        raise UsageError(
            f"the VAE does not fit A's VAE ({len(bad)} mismatched, {len(missing)} of A's "
            f"{prefix}* tensors not covered): {detail}",
            path=str(vae.path),
        )
    return mapped


def _variant_notes(a: ModelInput, others: Sequence[ModelInput]) -> list[str]:
    notes = []
    va = a.classification.variant
    for m in others:
        vm = m.classification.variant
        if vm != va and "v-prediction" in (va, vm):
            notes.append(
                f"A is {va or 'epsilon-prediction'}, {m.role} is {vm or 'epsilon-prediction'}: "
                "the result predicts like A, which may not suit the merged weights"
            )
    return notes


# --- the recipe in __metadata__ ----------------------------------------------------------------


def recipe_metadata(
    opened: dict[str, ModelInput],
    plan: MergePlan,
    method: str,
    alpha: float,
    dtype: str,
    components: Sequence[str],
    sha: dict[Path, str],
) -> dict[str, str]:
    """The recipe: ours in ``sdlib.*``, and A1111's ``sd_merge_recipe``/``sd_merge_models``
    (which A1111 shows and sdlib inspect summarises)."""
    a = opened["A"]
    vae = opened.get("VAE")
    models = [opened[r] for r in ("A", "B", "C") if r in opened]
    md = {"format": "pt"}
    md.update({k: a.table.metadata[k] for k in _KEPT_METADATA if k in a.table.metadata})
    recipe = {
        "method": method,
        "alpha": alpha,
        "dtype": dtype,
        "components": list(components),
        "bake_vae": vae.path.name if vae else None,
        "first_conv": plan.first_conv,
        "sdlib": __version__,
    }
    md["sdlib.merge"] = _json(recipe)
    md["sdlib.merge_inputs"] = _json(
        [{"role": m.role, "file": m.path.name, "sha256": sha[m.path]} for m in opened.values()]
    )
    shas = [sha[m.path] for m in models] + [None]
    md["sd_merge_recipe"] = _json(
        {
            "type": "sdlib",
            "primary_model_hash": shas[0],
            "secondary_model_hash": shas[1],
            "tertiary_model_hash": shas[2],
            "interp_method": _A1111_METHOD[method],
            "multiplier": alpha,
            "save_as_half": dtype == "fp16",
            "bake_in_vae": vae.path.name if vae else "None",
            "is_inpainting": plan.first_conv == "inpaint",
            "is_instruct_pix2pix": plan.first_conv == "instruct-pix2pix",
        }
    )
    history: dict[str, object] = {}
    for m in models:
        history[sha[m.path]] = {
            "name": m.path.name,
            "legacy_hash": _legacy_hash(m.path),
            "sd_merge_recipe": _loads(m.table.metadata.get("sd_merge_recipe")),
        }
        earlier = _loads(m.table.metadata.get("sd_merge_models"))
        if isinstance(earlier, dict):
            history.update(earlier)
    md["sd_merge_models"] = _json(history)
    only_in_a = [n for r, names in plan.copied.items() if r.startswith("only in A") for n in names]
    if only_in_a:
        md["sdlib.only_in_a"] = summarize(only_in_a)
    if plan.not_in_a:
        md["sdlib.not_in_a"] = summarize(plan.not_in_a)
    return md


def _json(value: object) -> str:
    return str(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _loads(raw: str | None) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def final_metadata(md: dict[str, str], placeholders: dict[Path, str], sha: dict[Path, str]) -> None:
    keys = ("sdlib.merge_inputs", "sd_merge_recipe", "sd_merge_models")
    for key in keys:
        text = md[key]
        for path, stand_in in placeholders.items():
            text = text.replace(stand_in, sha[path])
        md[key] = text
    # Two inputs that are the same file collapse into one sd_merge_models entry.
    md["sd_merge_models"] = _json(json.loads(md["sd_merge_models"]))


def _legacy_hash(path: Path) -> str:
    """A1111's old short model hash: SHA-256 of 64 KiB at 1 MiB, first 8 hex digits."""
    with open(path, "rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8].lower()
