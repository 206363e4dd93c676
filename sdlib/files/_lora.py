"""The LoRA family: which keys are deltas, which algorithm, rank, targets, producer and base.

One pass over the names groups delta tensors by the module they patch (classify.md 4.1,
4.2); everything after that works on the (few hundred) modules, not on the tensors.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from sdlib.files._lora_base import found_base, pick_base
from sdlib.files._signatures import Keys
from sdlib.taxonomy import Base

Shape = tuple[int, ...]

#: Last name segment -> algorithm, for suffixes that stand alone (``<module>.hada_w1_a``).
_TAILS: dict[str, str] = {
    "hada_w1_a": "loha", "hada_w1_b": "loha", "hada_w2_a": "loha", "hada_w2_b": "loha",
    "hada_t1": "loha", "hada_t2": "loha",
    "lokr_w1": "lokr", "lokr_w1_a": "lokr", "lokr_w1_b": "lokr", "lokr_w2": "lokr",
    "lokr_w2_a": "lokr", "lokr_w2_b": "lokr", "lokr_t2": "lokr",
    "oft_blocks": "oft", "oft_diag": "oft",
    "diff": "full-diff", "diff_b": "full-diff",
    "w_norm": "norm", "b_norm": "norm",
    "dora_scale": "dora", "lora_magnitude_vector": "dora",
    "on_input": "ia3",
    "alpha": "",
}  # fmt: skip
#: Segment before ``.weight`` -> part label (``<module>.lora_down.weight``).
_WEIGHT_PARENTS: dict[str, str] = {
    "lora_down": "down", "lora_up": "up", "lora_mid": "mid", "lora_A": "down", "lora_B": "up",
    "a1": "glora", "a2": "glora", "b1": "glora", "b2": "glora",
}  # fmt: skip
#: Segments that hold a ``down``/``up`` pair: ``.lora.down.weight`` (diffusers),
#: ``.lora_linear_layer.down.weight`` (transformers-style).
_PAIR_HOLDERS = frozenset({"lora", "lora_linear_layer"})
#: cloneofsimo/lora: ``unet:12:down``, ``text_encoder:3:up``.
_CLONE = re.compile(r"^(unet|text_encoder):(\d+):(down|up)$")
#: XLabs Flux: ``double_blocks.0.processor.qkv_lora1.down.weight``.
_XLABS = re.compile(r"_lora[12]$")

#: Module-name prefix -> target, most specific first.
_TARGETS: tuple[tuple[str, str], ...] = (
    ("lora_unet_", "unet"), ("lora_te1_", "text-encoder"), ("lora_te2_", "text-encoder-2"),
    ("lora_te3_", "t5"), ("lora_te_", "text-encoder"), ("lora_transformer_", "unet"),
    ("lycoris_", "unet"), ("oft_unet_", "unet"), ("unet", "unet"),
    ("text_encoder_2.", "text-encoder-2"), ("text_encoder.", "text-encoder"),
    ("text_encoder:", "text-encoder"), ("transformer.", "unet"), ("base_model.model.", "unet"),
    ("diffusion_model.", "unet"),
)  # fmt: skip
TARGET_ORDER = ("unet", "text-encoder", "text-encoder-2", "t5")

#: Algorithms that are plain LoRA (Civitai "LORA"/"DoRA"); the rest are LyCORIS.
LORA_ALGOS = frozenset({"lora", "dora"})


#: The part labels whose shapes a rule reads (algorithm, rank, widths). Every other part
#: is kept with shape ``()``: only its presence counts. Files whose names agree and whose
#: shapes agree at these parts share one scan; a rule that starts reading another part's
#: shape adds its label here.
SHAPED_PARTS = frozenset(
    {"down", "up", "oft_blocks", "hada_w1_b", "diff", "lokr_w1", "lokr_w1_b", "lokr_w2",
     "lokr_w2_b"}
)  # fmt: skip


@dataclass(slots=True)
class Module:
    """One patched module: its delta tensors by part label, and what they imply.

    ``algo``, ``target`` and ``flat`` are worked out once by :func:`scan`; the rules read
    them many times. ``parts`` holds the shape of each label in ``SHAPED_PARTS`` and ``()``
    for any other label.
    """

    name: str
    parts: dict[str, Shape] = field(default_factory=dict)
    algo: str | None = None
    target: str = "unet"
    #: The name with ``.``/``:`` as ``_`` plus a trailing ``_``: one spelling to match
    #: kohya (``attn2_to_k``) and diffusers (``attn2.to_k``) names alike.
    flat: str = ""

    def rank(self) -> int | None:
        for part in ("down", "hada_w1_b", "lokr_w2_b", "lokr_w1_b"):
            shape = self.parts.get(part)
            if shape:  # a 0-d (scalar) part has no rank axis
                return shape[0]
        return None

    def in_dim(self) -> int | None:
        """Input width of the patched layer (for Linear layers; convs give in-channels)."""
        p = self.parts
        for part in ("down", "hada_w1_b", "diff"):
            if part in p and len(p[part]) >= 2:
                return p[part][1]
        w1 = _second(p, "lokr_w1", "lokr_w1_b")
        w2 = _second(p, "lokr_w2", "lokr_w2_b")
        return w1 * w2 if w1 and w2 else None

    def out_dim(self) -> int | None:
        up = self.parts.get("up")
        return up[0] if up else None


def _second(parts: Mapping[str, Shape], *names: str) -> int | None:
    for n in names:
        if n in parts and len(parts[n]) >= 2:
            return parts[n][1]
    return None


def _module_algo(p: Mapping[str, Shape]) -> str | None:
    down = p.get("down")
    if down is not None:  # the common case first: LoRA / LoCon (a down part is theirs alone)
        conv = len(down) == 4 and down[2:] != (1, 1)
        return "locon" if conv or "mid" in p else "lora"
    if "oft_blocks" in p:
        return "boft" if len(p["oft_blocks"]) == 4 else "oft"
    for key, algo in _PART_ALGOS:
        if key in p:
            return algo
    return None if _LOKR_PARTS.isdisjoint(p) else "lokr"


_LOKR_PARTS = frozenset(k for k, a in _TAILS.items() if a == "lokr")
#: Part label -> algorithm, checked in order (classify.md 4.2).
_PART_ALGOS = (("oft_diag", "oft"), ("hada_w1_a", "loha"), ("hada_w1_b", "loha"),
               ("glora", "glora"), ("on_input", "ia3"), ("diff", "full-diff"))  # fmt: skip


@lru_cache(maxsize=1 << 16)
def _parse(name: str) -> tuple[str, str] | None:
    """``(module, part)`` for a delta tensor name, else None. Hot: one call per tensor.

    Cached: LoRAs for one base and trainer share their names (a library of 2,000 SD1.5
    kohya LoRAs holds ~800 distinct ones), so a scan mostly finds the answer known."""
    dot = name.rfind(".")
    tail = name[dot + 1 :]
    if tail == "weight" or tail == "bias":
        head = name[:dot]
        cut = head.rfind(".")
        parent = head[cut + 1 :]
        if parent in _WEIGHT_PARENTS:
            part = _WEIGHT_PARENTS[parent]
            return head[:cut], (part if tail == "weight" else part + "_bias")
        if (parent == "down" or parent == "up") and tail == "weight":
            return _pair(head[:cut], parent)
        return None
    if tail in _TAILS:
        return name[:dot], tail
    if ":" in name:
        m = _CLONE.match(name)
        if m:
            return f"{m.group(1)}:{m.group(2)}", m.group(3)
    return None


def _pair(mod: str, part: str) -> tuple[str, str] | None:
    """``<holder>.down.weight``: which holders make it a LoRA pair (classify.md 4.1)."""
    holder_mod, _, holder = mod.rpartition(".")
    if holder in _PAIR_HOLDERS:
        return holder_mod, part
    if holder.endswith("_lora"):  # old diffusers attention processors: to_q_lora.down
        return f"{holder_mod}.{holder[:-5]}", part
    if _XLABS.search(holder):
        return mod, part
    return None


@dataclass
class LoraScan:
    """Delta modules found in a key set, plus tensors that look like embedded TI tokens."""

    modules: dict[str, Module]
    tokens: list[str]
    #: ``analyze``'s findings from the modules alone, kept for the next file with the
    #: same modules (scans are shared through ``_Layout.scans``: never changed after).
    summary: _Summary | None = None
    #: Any module with an algorithm (alpha-only or norm-only modules do not make a file a
    #: LoRA); worked out once, as the modules never change.
    deltas: bool = field(init=False)

    def __post_init__(self) -> None:
        self.deltas = any(m.algo for m in self.modules.values())

    def __bool__(self) -> bool:
        return self.deltas


def scan(keys: Keys) -> LoraScan:
    """The delta modules of ``keys``, each with its parts' shapes and what they imply.

    Files with the same names and the same shapes at the parts rules read (LoRAs trained
    with one recipe: see ``SHAPED_PARTS``) share one scan: its modules, and what
    ``analyze`` found in them."""
    layout = _layout(keys)
    shapes = keys.column(keys.shapes)  # by position among the names
    signature = tuple(map(shapes.__getitem__, layout.positions))
    for shared, known in layout.scans:  # a few; a different rank differs at once
        if shared == signature:
            return known
    modules: dict[str, Module] = {}
    for name, tgt, flat, labels in zip(
        layout.modules, layout.targets, layout.flats, layout.parts, strict=True
    ):
        parts = {label: shapes[pos] if label in SHAPED_PARTS else () for label, pos in labels}
        modules[name] = Module(name, parts, _module_algo(parts), tgt, flat)
    found = LoraScan(modules, list(layout.tokens))
    if len(layout.scans) < _SCANS_KEPT:
        layout.scans.append((signature, found))
    return found


#: Scans kept per layout (one per set of delta shapes: a rank, a dtype-independent recipe).
_SCANS_KEPT = 8


@dataclass(frozen=True)
class _Layout:
    """What a scan learns from the names alone: the modules (in first-seen order) with the
    position of each part's tensor among the names, their targets and flat spellings, and
    the embedded token tensors. LoRAs of one trainer and base share their names exactly."""

    modules: tuple[str, ...]
    targets: tuple[str, ...]
    flats: tuple[str, ...]
    parts: tuple[tuple[tuple[str, int], ...], ...]
    tokens: tuple[str, ...]
    #: The position of every part in ``SHAPED_PARTS``, in order: the shapes there are a
    #: scan's signature.
    positions: tuple[int, ...]
    #: Scans made with this layout, with their signatures (compared, never hashed: equal
    #: signatures are the common case and a comparison stops at the first difference).
    scans: list[tuple[tuple[Shape, ...], LoraScan]] = field(default_factory=list, compare=False)


def _layout(keys: Keys) -> _Layout:
    """The layout of ``keys``' names, kept with them: files with the same names (see
    ``Keys.names_info``) share it, and the scans made with it."""
    memo = keys.names_info.memo
    layout = memo.get("lora-layout")
    if not isinstance(layout, _Layout):
        layout = memo["lora-layout"] = _make_layout(keys.names())
    return layout


def _make_layout(names: Iterable[str]) -> _Layout:
    grouped: dict[str, dict[str, int]] = {}
    tokens: list[str] = []
    parse = _parse
    for pos, name in enumerate(names):
        parsed = parse(name)
        if parsed is None:
            if name[:1] == "<" or ".string_to_param." in name:
                tokens.append(name)  # TI tokens bundled with a LoRA (cloneofsimo, kohya)
            continue
        parts = grouped.get(parsed[0])
        if parts is None:
            parts = grouped[parsed[0]] = {}
        parts[parsed[1]] = pos
    modules = tuple(grouped)
    return _Layout(
        modules,
        tuple(map(target, modules)),
        tuple(m.replace(".", "_").replace(":", "_") + "_" for m in modules),
        tuple(tuple(p.items()) for p in grouped.values()),
        tuple(tokens),
        tuple(pos for p in grouped.values() for label, pos in p.items() if label in SHAPED_PARTS),
    )


def target(module: str) -> str:
    tgt = _prefix_target(module[:_TARGET_PREFIX_MAX])
    if tgt == "text-encoder-2" and "encoder_block" in module:
        return "t5"  # some Flux trainers put T5 in lora_te2_ (classify.md 10)
    return tgt


_TARGET_PREFIX_MAX = max(len(p) for p, _ in _TARGETS)


@lru_cache(maxsize=256)
def _prefix_target(head: str) -> str:
    # Cached on the first few characters: modules of one file share a handful of prefixes.
    return next((tgt for prefix, tgt in _TARGETS if head.startswith(prefix)), "unet")


@dataclass
class LoraVerdict:
    algo: str
    rank: int | None
    alpha: float | None
    targets: tuple[str, ...]
    producer: str | None
    base: Base
    evidence: list[str]


def analyze(lora: LoraScan, metadata: Mapping[str, str]) -> LoraVerdict:
    if lora.summary is None:
        lora.summary = _summarize(lora)
    s = lora.summary
    evidence = list(s.evidence)
    base = pick_base(s.found, metadata, evidence)
    producer = _producer(s.by_name, metadata)
    return LoraVerdict(s.algo, s.rank, _alpha(metadata), s.targets, producer, base, evidence)


@dataclass(frozen=True)
class _Summary:
    """What the modules alone say (metadata aside): worked out once per ``LoraScan``."""

    algo: str
    rank: int | None
    targets: tuple[str, ...]
    #: The base the tensors give (None or unknown: they are silent).
    found: Base | None
    #: The producer the first module's name points to (when the metadata does not say).
    by_name: str | None
    evidence: tuple[str, ...]


def _summarize(lora: LoraScan) -> _Summary:
    mods = [m for m in lora.modules.values() if m.algo]
    evidence: list[str] = []
    algo = _algo(mods, evidence)
    ranks = Counter(r for m in mods if (r := m.rank()) is not None)
    rank = ranks.most_common(1)[0][0] if ranks else None
    if rank is not None:
        evidence.append(f"rank {rank} in {ranks[rank]} of {len(mods)} modules")
    present = {m.target for m in mods}
    targets = tuple(t for t in TARGET_ORDER if t in present)
    found = found_base(mods, evidence)
    first = mods[0].name if mods else ""
    by_name = next((who for pattern, who in _PRODUCER_NAMES if pattern.search(first)), None)
    return _Summary(algo, rank, targets, found, by_name, tuple(evidence))


def _algo(mods: list[Module], evidence: list[str]) -> str:
    votes = Counter(m.algo or "" for m in mods)
    votes.pop("norm", None)
    if not votes:
        return "lora"
    algo = votes.most_common(1)[0][0]
    if algo == "lora" and votes.get("locon"):
        algo = "locon"  # LoCon = LoRA on attention plus 3x3 convs elsewhere
    detail = ", ".join(f"{n} {a}" for a, n in votes.most_common())
    evidence.append(f"{len(mods)} delta modules ({detail}) -> {algo}")
    dora = sum(1 for m in mods if "dora_scale" in m.parts or "lora_magnitude_vector" in m.parts)
    if dora and algo in ("lora", "locon"):
        evidence.append(f"{dora} modules carry a DoRA magnitude vector -> dora")
        algo = "dora"
    return algo


def _alpha(metadata: Mapping[str, str]) -> float | None:
    # Alpha tensors hold their value in the data section, which a header reader never sees.
    try:
        alpha = float(metadata["ss_network_alpha"])
    except (KeyError, ValueError):
        return None
    return alpha if math.isfinite(alpha) else None


def _producer(by_name: str | None, metadata: Mapping[str, str]) -> str | None:
    software = _software(metadata)
    if software:
        return software
    module = metadata.get("ss_network_module", "")
    if module.startswith("lycoris"):
        return "lycoris"
    if module.startswith("networks."):
        return "kohya"
    return by_name


#: Module-name pattern -> producer, for files whose metadata does not say (classify.md 4.1).
_PRODUCER_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(unet|text_encoder):\d+$"), "cloneofsimo"),
    (re.compile(r"^lycoris_"), "lycoris"),
    (re.compile(r"^lora_transformer_"), "onetrainer"),
    (re.compile(r"^(lora_unet_|lora_te\d?_|oft_unet_)"), "kohya"),
    (re.compile(r"_lora[12]$"), "xlabs"),
    (re.compile(r"^base_model\.model\."), "peft"),
    (re.compile(r"^(unet\.|text_encoder|transformer\.)|\.processor\."), "diffusers"),
)


def _software(metadata: Mapping[str, str]) -> str | None:
    raw = metadata.get("software")
    if not raw:
        return None
    try:
        name = json.loads(raw).get("name") if raw.lstrip().startswith("{") else raw
    except (ValueError, AttributeError, RecursionError):
        return None
    return str(name) if name else None
