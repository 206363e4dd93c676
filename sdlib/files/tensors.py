"""The tensor table: what every container reader produces and the classifier consumes."""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
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

#: ggml block quantisations (GGUF files): dtype name -> (elements per block, bytes per
#: block), as llama.cpp's gguf-py ``GGML_QUANT_SIZES``. A tensor's innermost dimension is a
#: whole number of blocks, so its size is ``numel // elements * bytes``.
QUANT_BLOCKS: dict[str, tuple[int, int]] = {
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q8_1": (32, 40), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
    "Q5_K": (256, 176), "Q6_K": (256, 210), "Q8_K": (256, 292), "IQ2_XXS": (256, 66),
    "IQ2_XS": (256, 74), "IQ3_XXS": (256, 98), "IQ1_S": (256, 50), "IQ4_NL": (32, 18),
    "IQ3_S": (256, 110), "IQ2_S": (256, 82), "IQ4_XS": (256, 136), "IQ1_M": (256, 56),
    "TQ1_0": (256, 54), "TQ2_0": (256, 66), "MXFP4": (32, 17), "NVFP4": (64, 36),
    "Q1_0": (128, 18),
}  # fmt: skip


def is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """True when a strided view walks its storage in plain row-major order."""
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride), strict=True):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


def _drain(it: Iterable[object]) -> None:
    collections.deque(it, maxlen=0)


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

    @classmethod
    def many(
        cls,
        names: Sequence[str],
        dtypes: Sequence[str],
        shapes: Iterable[tuple[int, ...]],
        offsets: Iterable[tuple[int, int]],
    ) -> list[TensorInfo]:
        """``[TensorInfo(n, d, s, o) ...]`` for thousands of tensors at once, equal to
        building them one by one. A frozen dataclass's ``__init__`` costs ~3 us an object
        (seven guarded ``__setattr__`` calls), as much as parsing its JSON; here each slot
        is filled for all objects in one C-level pass through its slot descriptor."""
        out = list(map(object.__new__, itertools.repeat(cls, len(names))))
        columns: tuple[tuple[str, Iterable[object]], ...] = (
            ("name", names), ("dtype", dtypes), ("shape", shapes), ("offsets", offsets),
            ("storage_key", itertools.repeat(None)), ("storage_offset", itertools.repeat(0)),
            ("stride", itertools.repeat(None)),
        )  # fmt: skip
        for slot, values in columns:
            setter = cls.__dict__[slot].__set__  # the slot's own descriptor: no frozen guard
            _drain(map(setter, out, values))
        return out

    @property
    def nbytes(self) -> int:
        block = QUANT_BLOCKS.get(self.dtype)
        if block is not None:
            return -(-self.numel // block[0]) * block[1]
        return int(self.numel * DTYPE_SIZES.get(self.dtype, 1))


class TensorColumns(Mapping[str, TensorInfo]):
    """A name -> ``TensorInfo`` mapping kept as columns (a safetensors header read in bulk).

    A first scan meets millions of tensors and its classifier reads only names, dtypes and
    shapes: the columns serve it directly (``rows``, ``dtypes``, ``shapes``), and a
    ``TensorInfo`` is made only for whoever asks for one (all at once, then kept, for a
    walk over the values). Equal to the dict of the same ``TensorInfo`` objects.
    """

    __slots__ = ("_infos", "_offsets", "_packed", "dtypes", "numels", "rows", "shapes")

    def __init__(
        self,
        rows: Mapping[str, int],
        dtypes: list[str],
        shapes: list[tuple[int, ...]],
        begins: list[int],
        ends: list[int],
        numels: list[int] | None = None,
    ) -> None:
        #: name -> its row in the columns, in file order (names are unique). Read-only:
        #: files with the same names may share one (the compiled reader's templates).
        self.rows = rows
        self.dtypes = dtypes
        self.shapes = shapes
        #: (begins, ends); None while they are still ``_packed``.
        self._offsets: tuple[list[int], list[int]] | None = (begins, ends)
        self._packed = b""
        #: Elements per tensor (``math.prod`` of its shape), if the reader worked them out.
        self.numels = numels
        self._infos: dict[str, TensorInfo] | None = None

    @classmethod
    def packed(
        cls,
        rows: Mapping[str, int],
        dtypes: list[str],
        shapes: list[tuple[int, ...]],
        offsets: bytes,
        numels: list[int],
    ) -> TensorColumns:
        """Columns whose offsets come packed (native unsigned 64-bit begin, end pairs, as
        the compiled reader gives them): unpacked only if a ``TensorInfo`` is asked for,
        which a scan never does."""
        columns = cls(rows, dtypes, shapes, [], [], numels)
        columns._offsets = None
        columns._packed = offsets
        return columns

    @property
    def begins(self) -> list[int]:
        return self._unpacked()[0]

    @property
    def ends(self) -> list[int]:
        return self._unpacked()[1]

    def _unpacked(self) -> tuple[list[int], list[int]]:
        if self._offsets is None:
            pairs = memoryview(self._packed).cast("Q")
            self._offsets = (pairs[0::2].tolist(), pairs[1::2].tolist())
        return self._offsets

    def _all(self) -> dict[str, TensorInfo]:
        if self._infos is None:
            names = list(self.rows)
            offsets = zip(self.begins, self.ends, strict=True)
            infos = TensorInfo.many(names, self.dtypes, self.shapes, offsets)
            self._infos = dict(zip(names, infos, strict=True))
        return self._infos

    def __getitem__(self, name: str) -> TensorInfo:
        if self._infos is not None:
            return self._infos[name]
        i = self.rows[name]
        return TensorInfo(name, self.dtypes[i], self.shapes[i], (self.begins[i], self.ends[i]))

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, name: object) -> bool:
        return name in self.rows

    def values(self) -> ValuesView[TensorInfo]:
        return self._all().values()

    def items(self) -> ItemsView[str, TensorInfo]:
        return self._all().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TensorColumns):
            other = other._all()
        return self._all() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TensorColumns({len(self.rows)} tensors)"


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
