"""Walk the inert object graph of a pickle into dotted tensor names.

Dicts are flattened with ``.`` (int keys such as a hypernetwork's ``768`` become ``"768"``),
lists and tuples with their indices, and a pickled ``nn.Module`` through its ``_parameters``,
``_buffers`` and ``_modules`` (what ``state_dict()`` would give). The walk is iterative and
linear: each container is expanded once and its children are read lazily, a revisit costs
one lookup, and depth, edge and name-length caps stop it, so cycles, a list holding itself a
million times and exponential sharing built through the memo cannot hang it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from sdlib.files._pickle_values import Opaque, TensorRef

MAX_DEPTH = 64
MAX_VISITS = 2_000_000
MAX_NAME = 1024
MAX_META = 64
MAX_META_VALUE = 4096


@dataclass
class Flat:
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def state_dict_root(root: object) -> tuple[object, str]:
    """Unwrap ``state_dict`` as A1111, ComfyUI, diffusers and InvokeAI all do."""
    path = ""
    for _ in range(8):
        inner = root.get("state_dict") if isinstance(root, dict) else None
        if not isinstance(inner, dict):
            break
        root, path = inner, f"{path}.state_dict" if path else "state_dict"
    return root, path


def _key(key: object) -> str | None:
    if isinstance(key, str):
        return key
    if type(key) is int:
        return str(key)
    return None


def _children(obj: object) -> Iterator[tuple[object, object]] | None:
    """A lazy view of a container's children: nothing is copied, so a revisit costs O(1)."""
    if isinstance(obj, dict):
        return iter(obj.items())
    if isinstance(obj, (list, tuple)):
        return enumerate(obj)
    if isinstance(obj, Opaque) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        # A pickled nn.Module (ParameterDict in early A1111 embeddings, whole-model saves).
        state = obj.state
        return (
            (k, v)
            for slot in ("_parameters", "_buffers", "_modules")
            if isinstance(part := state.get(slot), dict)
            for k, v in part.items()
            if v is not None
        )
    return None


def flatten(root: object, budget: int = MAX_VISITS) -> Flat:
    """Every tensor reachable from ``root`` under its dotted name, in pickle order.

    Linear in the graph: each container is expanded once (its children are walked lazily),
    a revisit is one set lookup, and after ``budget`` edges the walk stops with a note.
    """
    flat = Flat()
    if isinstance(root, TensorRef):
        flat.tensors["tensor"] = root  # a bare tensor (aesthetic-gradient embeddings)
        return flat
    children = _children(root)
    if children is None:
        return flat
    expanded = {id(root)}
    keep = [root]  # ids stay unique only while their objects are alive
    revisits = skipped = 0
    stack: list[tuple[str, Iterator[tuple[object, object]]]] = [("", children)]
    visits = 0
    while stack:
        name, it = stack[-1]
        step = next(it, None)
        if step is None:
            stack.pop()
            continue
        visits += 1
        if visits > budget:
            flat.notes.append(f"more than {budget} entries: the rest of the graph was skipped")
            break
        key, child = step
        text = _key(key)
        if text is None:
            skipped += 1
            continue
        full = f"{name}.{text}" if name else text
        if len(full) > MAX_NAME:
            flat.notes.append("tensor name longer than 1 KiB skipped")
            continue
        if isinstance(child, TensorRef):
            if full in flat.tensors:
                flat.notes.append(f"duplicate name {full!r} (kept the first)")
            else:
                flat.tensors[full] = child
            continue
        grand = _children(child)
        if grand is None:
            continue
        if id(child) in expanded:
            revisits += 1
            continue
        if len(stack) >= MAX_DEPTH:
            flat.notes.append(f"{full}: nesting too deep (skipped)")
            continue
        expanded.add(id(child))
        keep.append(child)
        stack.append((full, grand))
    if revisits:
        flat.notes.append(f"{revisits} container(s) reached twice or more (not repeated)")
    if skipped:
        flat.notes.append(f"{skipped} non-string key(s) skipped")
    del keep
    return flat


def scalar_metadata(*roots: object) -> dict[str, str]:
    """Top-level primitive values (``global_step``, ``name``, ``layer_structure``) as strings."""
    out: dict[str, str] = {}
    for root in roots:
        if not isinstance(root, dict):
            continue
        for key, value in root.items():
            text = _key(key)
            if text is None or text in out or len(out) >= MAX_META:
                continue
            encoded = _encode(value)
            if encoded is not None and len(encoded) <= MAX_META_VALUE:
                out[text] = encoded
    return out


def _encode(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)) and len(value) <= 64 and all(map(_primitive, value)):
        return json.dumps(list(value))
    if isinstance(value, dict) and len(value) <= 64:
        items = {_key(k): v for k, v in value.items()}
        if None not in items and all(map(_primitive, items.values())):
            return json.dumps(items)
    return None


def _primitive(value: object) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))
