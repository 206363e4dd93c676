"""Write header-valid model files (safetensors, GGUF) from ``{name: (dtype, shape)}`` specs.

Tensor data is zeros (or a deterministic pattern): what matters to readers is the header.
``sparse=True`` leaves the data as a hole in the file, so a "6.9 GB" checkpoint costs
no disk space.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from sdlib.files.tensors import DTYPE_SIZES, QUANT_BLOCKS, TensorInfo

Spec = Mapping[str, tuple[str, tuple[int, ...]]]


def safetensors_header(specs: Spec, metadata: Mapping[str, str] | None = None) -> bytes:
    """The 8-byte length plus JSON header (padded with spaces to 8 bytes) for ``specs``."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dtype, shape) in specs.items():
        size = int(math.prod(shape) * DTYPE_SIZES[dtype])
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def data_size(specs: Spec) -> int:
    return sum(int(math.prod(shape) * DTYPE_SIZES[dtype]) for dtype, shape in specs.values())


def write_safetensors(
    path: str | os.PathLike[str],
    specs: Spec,
    metadata: Mapping[str, str] | None = None,
    *,
    sparse: bool = False,
    fill: bytes | None = None,
) -> Path:
    """Write a safetensors file. ``fill`` repeats a byte pattern over the data (else zeros)."""
    path = Path(path)
    head = safetensors_header(specs, metadata)
    total = data_size(specs)
    with open(path, "wb") as fh:
        fh.write(head)
        if sparse:
            fh.truncate(len(head) + total)
        elif fill:
            chunk = (fill * ((1 << 20) // max(1, len(fill)) + 1))[: 1 << 20]
            left = total
            while left:
                n = min(left, len(chunk))
                fh.write(chunk[:n])
                left -= n
        else:
            left = total
            zeros = bytes(1 << 20)
            while left:
                n = min(left, len(zeros))
                fh.write(zeros[:n])
                left -= n
    return path


# --- GGUF --------------------------------------------------------------------------------------

#: GGUF value types (ggml/docs/gguf.md ``gguf_metadata_value_type``).
_GGUF_U32, _GGUF_I32, _GGUF_F32, _GGUF_BOOL, _GGUF_STRING, _GGUF_ARRAY, _GGUF_I64 = (
    4, 5, 6, 7, 8, 9, 11,
)  # fmt: skip
_GGUF_CODES = {_GGUF_U32: "I", _GGUF_I32: "i", _GGUF_F32: "f", _GGUF_BOOL: "?", _GGUF_I64: "q"}
GGUFMeta = str | int | float | bool | Sequence[object]


def _gguf_type(value: object) -> int:
    if isinstance(value, bool):
        return _GGUF_BOOL
    if isinstance(value, int):
        return _GGUF_U32 if 0 <= value < 1 << 32 else _GGUF_I64
    if isinstance(value, float):
        return _GGUF_F32
    if isinstance(value, str):
        return _GGUF_STRING
    if isinstance(value, Sequence):
        return _GGUF_ARRAY
    raise TypeError(f"no GGUF type for {value!r}")


def _gguf_value(order: str, vtype: int, value: object) -> bytes:
    if vtype == _GGUF_STRING:
        raw = str(value).encode()
        return struct.pack(order + "Q", len(raw)) + raw
    if vtype != _GGUF_ARRAY:
        return struct.pack(order + _GGUF_CODES[vtype], value)
    items = list(value) if isinstance(value, Sequence) else []
    etype = _gguf_type(items[0]) if items else _GGUF_I32
    if etype in (_GGUF_U32, _GGUF_I64):  # int arrays as ComfyUI-GGUF writes them: INT32
        small = all(-(1 << 31) <= int(v) < 1 << 31 for v in items)
        etype = _GGUF_I32 if small else _GGUF_I64
    out = struct.pack(order + "IQ", etype, len(items))
    return out + b"".join(_gguf_value(order, etype, v) for v in items)


#: Layers ComfyUI-GGUF's converter keeps unquantised (tools/convert.py ``blacklist``).
_GGUF_KEEP = ("time_embedding.", "add_embedding.", "time_in.", "txt_in.", "vector_in.",
              "img_in.", "guidance_in.", "final_layer.")  # fmt: skip


def quantize_specs(
    specs: Spec, qtype: str = "Q8_0", fallback: str = "F32"
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``specs`` as ComfyUI-GGUF's converter would store them at ``qtype``.

    Vectors, small tensors, conv kernels, the embedders and final layer and any tensor whose
    rows are not whole blocks stay in ``fallback``; the rest is quantised.
    """
    block = QUANT_BLOCKS[qtype][0]
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, (_, shape) in specs.items():
        keep = (
            len(shape) != 2 or math.prod(shape) <= 1024 or shape[-1] % block != 0
            or (name.endswith(".weight") and any(k in name for k in _GGUF_KEEP))
        )  # fmt: skip
        out[name] = (fallback if keep else qtype, tuple(shape))
    return out


def gguf_header(
    specs: Spec,
    metadata: Mapping[str, GGUFMeta] | None = None,
    *,
    version: int = 3,
    big_endian: bool = False,
) -> tuple[bytes, int]:
    """A GGUF header padded to its alignment, and the size of the data section after it.

    ``specs`` maps names to ``(ggml type name, PyTorch shape)``; each tensor's data starts
    at the next multiple of ``general.alignment`` (default 32), as llama.cpp lays it out.
    """
    from sdlib.files.gguf import GGML_TYPES

    ids = {name: i for i, name in GGML_TYPES.items()}
    order = ">" if big_endian else "<"
    md = dict(metadata or {})
    align = int(md.get("general.alignment", 32))  # type: ignore[arg-type]
    head = b"GGUF" + struct.pack(order + "IQQ", version, len(specs), len(md))
    for key, value in md.items():
        vtype = _gguf_type(value)
        head += _gguf_value(order, _GGUF_STRING, key) + struct.pack(order + "I", vtype)
        head += _gguf_value(order, vtype, value)
    offset = 0
    for name, (dtype, shape) in specs.items():
        info = TensorInfo(name, dtype, tuple(shape))
        block = QUANT_BLOCKS.get(dtype, (1, 0))[0]
        if dtype not in ids or (shape and shape[-1] % block):
            raise ValueError(f"{name}: cannot store {list(shape)} as {dtype}")
        dims = shape[::-1]
        head += _gguf_value(order, _GGUF_STRING, name)
        head += struct.pack(f"{order}I{len(dims)}QIQ", len(dims), *dims, ids[dtype], offset)
        offset += -(-info.nbytes // align) * align
    head += bytes(-len(head) % align)
    return head, offset


def write_gguf(
    path: str | os.PathLike[str],
    specs: Spec,
    metadata: Mapping[str, GGUFMeta] | None = None,
    *,
    version: int = 3,
    big_endian: bool = False,
) -> Path:
    """Write a valid GGUF file; the tensor data is a hole (zeros), so big models cost no disk.

    Metadata values map to GGUF types: str -> STRING, bool -> BOOL, int -> UINT32 (INT64
    when out of range), float -> FLOAT32, a list -> ARRAY (ints as INT32).
    """
    path = Path(path)
    head, total = gguf_header(specs, metadata, version=version, big_endian=big_endian)
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + total)
    return path
