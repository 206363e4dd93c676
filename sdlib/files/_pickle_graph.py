"""Walk the inert object graph of a pickle into dotted tensor names.

Dicts are flattened with ``.`` (int keys such as a hypernetwork's ``768`` become ``"768"``),
lists and tuples with their indices, and a pickled ``nn.Module`` through its ``_parameters``,
``_buffers`` and ``_modules`` (what ``state_dict()`` would give). The walk is iterative, with
depth, visit and name-length caps, and expands each container once, so cycles and
exponential sharing built through the memo cannot hang it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sdlib.files._pickle_values import Opaque, TensorRef

MAX_DEPTH = 64
MAX_VISITS = 10_000_000
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


def _children(obj: object) -> list[tuple[object, object]] | None:
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    if isinstance(obj, Opaque) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        # A pickled nn.Module (ParameterDict in early A1111 embeddings, whole-model saves).
        out: list[tuple[object, object]] = []
        for slot in ("_parameters", "_buffers", "_modules"):
            part = obj.state.get(slot)
            if isinstance(part, dict):
                out.extend((k, v) for k, v in part.items() if v is not None)
        return out
    return None


def flatten(root: object) -> Flat:
    """Every tensor reachable from ``root`` under its dotted name, in pickle order."""
    flat = Flat()
    if isinstance(root, TensorRef):
        flat.tensors["tensor"] = root  # a bare tensor (aesthetic-gradient embeddings)
        return flat
    expanded: set[int] = set()
    todo: list[tuple[str, object, int]] = [("", root, 0)]
    visits = 0
    while todo:
        name, obj, depth = todo.pop()
        if isinstance(obj, TensorRef):
            if name in flat.tensors:
                flat.notes.append(f"duplicate name {name!r} (kept the first)")
            else:
                flat.tensors[name] = obj
            continue
        children = _children(obj)
        if children is None:
            continue
        if id(obj) in expanded:
            flat.notes.append(f"{name or '<root>'}: container reached twice (not repeated)")
            continue
        expanded.add(id(obj))
        visits += len(children)
        if depth >= MAX_DEPTH or visits > MAX_VISITS:
            flat.notes.append(f"{name or '<root>'}: nesting too deep or too large (skipped)")
            continue
        for key, child in reversed(children):
            text = _key(key)
            if text is None:
                flat.notes.append(f"{name or '<root>'}: non-string key skipped")
                continue
            full = f"{name}.{text}" if name else text
            if len(full) > MAX_NAME:
                flat.notes.append("tensor name longer than 1 KiB skipped")
                continue
            todo.append((full, child, depth + 1))
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
