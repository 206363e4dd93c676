"""Traits of a classified tensor table beyond its kind and base: full or pruned weights,
float precision or ggml quantisation by element share, and a short summary of training
metadata. Part of :mod:`sdlib.files.classify`: pure, reading the table only."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence

from sdlib.files import _signatures as sig
from sdlib.files._signatures import Keys
from sdlib.files.tensors import QUANT_BLOCKS
from sdlib.taxonomy import Kind, Precision, Weights

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
    by_dtype = _elements_by_dtype(k)
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


def _elements_by_dtype(k: Keys) -> dict[str, int]:
    """Elements per dtype, the dtypes in the order their first counted tensor comes.

    Scalars (alpha, markers, EMA decay), CLIP position ids and schedule buffers keep their
    own dtype by design; they must not make a file "mixed", and an empty tensor holds no
    weights to have a precision. Column-wise, in a few C-level passes: a checkpoint has
    thousands of tensors and a first scan meets millions. A file holds one dtype, or one
    and a few tensors of others: those few are found with ``list.index`` and visited one
    by one, and the main dtype's elements are what remains of the sum.
    """
    dtypes, numels = k.column(k.dtypes), k.column(k.numels)
    n = len(dtypes)
    if not n:
        return {}
    shapes = k.column(k.shapes)
    skipped = _skipped(k)
    # The elements of every tensor that is not a scalar (a scalar's shape is () and its
    # count 1), less the skipped ones'.
    total = sum(numels) - shapes.count(())
    named = [at for at in skipped if shapes[at]]
    total -= sum(map(numels.__getitem__, named))
    others = set(dtypes)
    if len(others) == 1:
        if total > 0:  # some tensor counted (elements are never negative in a real file)
            return {dtypes[0]: total}
        return _elements_slowly(dtypes, shapes, numels, skipped)
    first, middle, last = dtypes[0], dtypes[n // 2], dtypes[-1]
    main = middle if middle == last else first  # the majority of three, else the first
    others.discard(main)
    found: dict[str, list[int]] = {}  # dtype -> [first counted position, elements]
    for dtype in others:
        at = dtypes.index(dtype)
        while True:
            size = numels[at]
            if shapes[at] and at not in skipped:
                total -= size
                if size:
                    entry = found.get(dtype)
                    if entry is None:
                        found[dtype] = [at, size]
                    else:
                        entry[1] += size
            try:
                at = dtypes.index(dtype, at + 1)
            except ValueError:
                break
    at = dtypes.index(main)
    while not (numels[at] and shapes[at]) or at in skipped:
        try:
            at = dtypes.index(main, at + 1)
        except ValueError:
            break
    else:
        found[main] = [at, total]
    return _in_order(found)


def _in_order(found: dict[str, list[int]]) -> dict[str, int]:
    """``{dtype: [first position, elements]}`` as ``{dtype: elements}`` by first position."""
    return {dtype: n for _, dtype, n in sorted((at, dtype, n) for dtype, (at, n) in found.items())}


def _skipped(k: Keys) -> frozenset[int]:
    """Positions (in ``k``'s columns) of the schedule buffers and position ids: from the
    names alone, so kept with them (files with the same names share the answer)."""
    memo = k.names_info.memo
    known = memo.get("precision-skipped")
    if isinstance(known, frozenset):
        return known
    names = [name for name in sig.SCHEDULE_BUFFERS if name in k]
    names += k.ending("position_ids")
    order = k.names_info.names
    found = memo["precision-skipped"] = frozenset(map(order.index, names))
    return found


def _elements_slowly(
    dtypes: Sequence[str],
    shapes: Sequence[tuple[int, ...]],
    numels: Sequence[int],
    skipped: frozenset[int],
) -> dict[str, int]:
    """``_elements_by_dtype`` one tensor at a time: for tables whose counted elements do not
    add up to a positive number (none counted, or negative sizes a test may give)."""
    found: dict[str, list[int]] = {}
    for at, (dtype, shape, size) in enumerate(zip(dtypes, shapes, numels, strict=True)):
        if size and shape and at not in skipped:
            entry = found.setdefault(dtype, [at, 0])
            entry[1] += size
    return _in_order(found)


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
