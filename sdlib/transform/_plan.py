"""Decide what a converted file holds: layout detection, EMA pruning and dtype casts.

Pure decisions over tensor tables; the bytes are read later (``_tensordata``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sdlib.errors import FormatError
from sdlib.files.pickles import PickleFile, StorageData
from sdlib.files.tensors import TensorInfo
from sdlib.transform._stwriter import Header
from sdlib.transform._tensordata import Source, Storage, target_dtype

#: LDM ``DDPM.register_schedule`` buffers (plus the learned ``logvar``): recomputed from the
#: model config at load time, so ``--prune`` drops them.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "logvar",
    }
)  # fmt: skip
#: Training-only state inside a state dict that ``--prune`` drops (EMA after it is copied).
TRAINING_PREFIXES = ("model_ema.", "loss.")
_TI_METADATA = ("name", "step", "sd_checkpoint", "sd_checkpoint_name", "string_to_token")
_CKPT_METADATA = ("global_step", "epoch")
HYPERNETWORK_MESSAGE = (
    "this is an A1111 hypernetwork: A1111 only loads hypernetworks from .pt files (their int "
    "keys and nested layer lists have no safetensors form), so converting it would produce a "
    "file nothing can use. Keep the .pt"
)


@dataclass(frozen=True)
class PlanItem:
    name: str
    source: Source
    dtype: str  # output dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape


@dataclass
class Plan:
    items: list[PlanItem]
    layout: str
    metadata: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def plan_from_pickle(loaded: PickleFile, cast: str, prune: bool) -> Plan:
    root = loaded.root
    if is_hypernetwork(root):
        raise FormatError(HYPERNETWORK_MESSAGE, path=str(loaded.path))
    for note in loaded.notes:
        # Shared or cyclic containers, name collisions and runaway nesting: legitimate state
        # dicts have none, and silently picking one reading would hide what the file holds.
        if "non-string key" not in note:
            raise FormatError(f"cannot convert: {note}", path=str(loaded.path))
    sources = _pickle_sources(loaded)
    meta = dict(loaded.table.metadata)
    if isinstance(root, dict) and "string_to_param" in root:
        params = [n for n in sources if n.startswith("string_to_param.")]
        if len(params) != 1:
            raise FormatError(f"embedding has {len(params)} vectors in string_to_param, not 1")
        plan = Plan([], "embedding", {k: meta[k] for k in _TI_METADATA if k in meta})
        plan.items.append(PlanItem("emb_params", sources[params[0]], ""))
        plan.dropped += [n for n in sources if n != params[0]]
    else:
        layout = "state-dict"
        if isinstance(root, dict) and "state_dict" in root:
            layout = "checkpoint"
            kept = [str(k) for k in root if k != "state_dict"]
            plan = Plan([], layout, {k: meta[k] for k in _CKPT_METADATA if k in meta}, kept)
        else:
            plan = Plan([], "embedding" if _is_sdxl_embedding(sources) else layout)
        plan.items = [PlanItem(n, s, "") for n, s in sources.items()]
    return _finish(plan, cast, prune)


def plan_from_safetensors(header: Header, cast: str, prune: bool) -> Plan:
    items = []
    for t in header.tensors:
        storage = Storage(t.start, t.end - t.start)
        stride = _c_strides(t.shape)
        items.append(PlanItem(t.name, Source(t.dtype, t.shape, stride, 0, storage), ""))
    return _finish(Plan(items, "safetensors", dict(header.metadata)), cast, prune)


def _finish(plan: Plan, cast: str, prune: bool) -> Plan:
    if any(item.name == "__metadata__" for item in plan.items):
        raise FormatError("a tensor is named __metadata__, which safetensors reserves")
    if prune:
        _prune(plan)
    plan.items = [
        PlanItem(i.name, i.source, target_dtype(i.source.dtype, cast)) for i in plan.items
    ]
    return plan


def _pickle_sources(loaded: PickleFile) -> dict[str, Source]:
    out: dict[str, Source] = {}
    for name, info in loaded.table.tensors.items():
        ref = loaded.refs[name]
        if ref.has_metadata:
            raise FormatError(f"tensor {name!r} carries conj/neg bits or attributes; not converted")
        if ref.storage.view is not None:
            raise FormatError(f"tensor {name!r} uses a pre-0.4 storage view; not supported")
        storage = loaded.storages.get(info.storage_key or "")
        if storage is None:
            raise FormatError(f"tensor {name!r} has no readable storage")
        out[name] = _source(info, storage)
    return out


def _source(info: TensorInfo, s: StorageData) -> Source:
    storage = Storage(s.offset, s.nbytes, s.compressed_size, s.method, s.crc, s.big_endian)
    stride = info.stride if info.stride is not None else _c_strides(info.shape)
    return Source(info.dtype, info.shape, stride, info.storage_offset, storage)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _prune(plan: Plan) -> None:
    """Keep one UNet (the EMA copy when present) and drop training state and schedules."""
    by_name = {i.name: i for i in plan.items}
    ema = [
        n
        for n in by_name
        if n.startswith("model_ema.")
        and n.count(".") == 1
        and n not in ("model_ema.decay", "model_ema.num_updates")
    ]
    replaced = 0
    if ema:
        for i, item in enumerate(plan.items):
            if not item.name.startswith("model.diffusion_model."):
                continue
            twin = by_name.get("model_ema." + item.name[len("model.") :].replace(".", ""))
            if twin is not None and twin.shape == item.shape:
                plan.items[i] = PlanItem(item.name, twin.source, item.dtype)
                replaced += 1
        plan.metadata["sdlib.ema"] = f"{replaced} UNet tensors taken from model_ema"
    kept = []
    for item in plan.items:
        if item.name.startswith(TRAINING_PREFIXES) or item.name in SCHEDULE_BUFFERS:
            plan.dropped.append(item.name)
        else:
            kept.append(item)
    plan.items = kept


def _is_sdxl_embedding(sources: Mapping[str, Source]) -> bool:
    return set(sources) == {"clip_g", "clip_l"}


def is_hypernetwork(root: object) -> bool:
    """A1111 hypernetworks: int keys (attention widths) holding lists/tuples of state dicts."""
    if not isinstance(root, dict):
        return False
    layers = [v for k, v in root.items() if type(k) is int]
    return bool(layers) and all(
        isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v) for v in layers
    )
