"""The tensor table: what every container reader produces and the classifier consumes."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sdlib.taxonomy import Container

#: Bytes per element for each dtype name, in safetensors' spelling (the names we use everywhere).
DTYPE_SIZES: dict[str, float] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F6_E2M3": 0.75, "F6_E3M2": 0.75, "F4": 0.5,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1,
    "BOOL": 1, "C64": 8,
}  # fmt: skip

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"})


def is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """True when a strided view walks its storage in plain row-major order."""
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride), strict=True):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor's name, dtype (safetensors spelling), shape and, where known, byte range.

    ``offsets`` are relative to the start of the data section (safetensors) or to the storage
    (pickles, where ``storage_key`` names the archive entry and ``storage_offset`` the element
    offset into it).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int] | None = None
    storage_key: str | None = None
    storage_offset: int = 0
    stride: tuple[int, ...] | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.numel * DTYPE_SIZES.get(self.dtype, 1))


@dataclass(frozen=True)
class TensorTable:
    """All tensors of one file (in file order) plus its string metadata."""

    tensors: Mapping[str, TensorInfo]
    container: Container
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Bytes before the tensor data (8 + header length for safetensors).
    data_offset: int = 0

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors.values())

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def get(self, name: str) -> TensorInfo | None:
        return self.tensors.get(name)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @classmethod
    def from_specs(
        cls,
        specs: Mapping[str, tuple[str, tuple[int, ...]]],
        container: Container = Container.SAFETENSORS,
        metadata: Mapping[str, str] | None = None,
    ) -> TensorTable:
        """Build a table from ``{name: (dtype, shape)}``; handy in tests and for pickles."""
        return cls(
            {n: TensorInfo(n, d, tuple(s)) for n, (d, s) in specs.items()},
            container,
            dict(metadata or {}),
        )
