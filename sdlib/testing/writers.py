"""Write header-valid model files from ``{name: (dtype, shape)}`` specs.

Tensor data is zeros (or a deterministic pattern): what matters to readers is the header.
``sparse=True`` leaves the data as a hole in the file, so a "6.9 GB" checkpoint costs
no disk space.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path

from sdlib.files.tensors import DTYPE_SIZES

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
