"""The inert values the symbolic pickle VM builds instead of real objects.

None of these can run code: a global becomes a ``GlobalRef`` (a name, never imported), a call
to anything that is not a known stub becomes an ``Opaque`` record, a storage persistent id a
``StorageRef`` and a rebuilt tensor a ``TensorRef`` (dtype, shape, stride, where its bytes are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sdlib.files._pickle_rules import GlobalClass, Rule
from sdlib.files.tensors import is_contiguous

#: Bytes per element of each storage dtype we can read (safetensors spelling).
ITEMSIZE: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "C64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
}  # fmt: skip


class PickleError(Exception):
    """The stream is not a well-formed pickle (or breaks a resource limit) at ``offset``."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset


class BadCall(Exception):
    """Arguments no legitimate writer emits; the VM reports this as unsafe."""


class TooDeep(BadCall):
    """A key nested past our limit (CPython would hash it; we stop, so it counts as unsafe)."""


@dataclass(frozen=True)
class GlobalRef:
    """A global named by the pickle. Only its classification is kept; nothing is imported."""

    cls: GlobalClass

    @property
    def module(self) -> str:
        return self.cls.module

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def handler(self) -> str:
        return self.cls.handler if self.cls.rule is Rule.ALLOWED else ""

    @property
    def qualname(self) -> str:
        return f"{self.cls.module}.{self.cls.name}"


@dataclass(eq=False)
class Opaque:
    """The would-be result of instantiating or calling ``cls``: a record, never an object."""

    cls: GlobalRef | None
    args: tuple[object, ...] = ()
    state: object = None
    items: list[object] = field(default_factory=list)
    dictitems: dict[object, object] = field(default_factory=dict)

    @property
    def qualname(self) -> str:
        return self.cls.qualname if self.cls else "<computed>"


class ODict(dict[object, object]):
    """An ``OrderedDict`` result; BUILD may attach attributes (torch's ``_metadata``)."""

    __slots__ = ("attrs",)

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, object] = {}


@dataclass(frozen=True)
class StorageRef:
    """A storage persistent id: ``('storage', <type>, key, location, numel[, view])``."""

    key: str
    storage_type: str
    dtype: str | None  # None: quantized or complex128 (not convertible)
    itemsize: int
    location: str
    numel: int  # elements of ``dtype`` (bytes for UntypedStorage)
    view: tuple[str, int, int] | None = None  # legacy pre-0.4 storage views

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


@dataclass(eq=False)
class TensorRef:
    """A tensor rebuilt from a storage view. ``offset`` and ``stride`` count elements."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str | None
    itemsize: int
    has_metadata: bool = False  # conj/neg bits or Python attributes torch would restore

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def is_contiguous(self) -> bool:
        return is_contiguous(self.shape, self.stride)


@dataclass(eq=False)
class NpDtype:
    """``numpy.dtype(spec, align, copy)`` plus what BUILD tells (byte order, structure)."""

    spec: str
    byteorder: str = "<"
    structured: bool = False

    @property
    def is_object(self) -> bool:
        return self.spec.startswith("O") or self.structured


@dataclass(eq=False)
class NpArray:
    """``numpy.core.multiarray._reconstruct`` plus BUILD: shape, dtype and raw byte count."""

    dtype: NpDtype | None = None
    shape: tuple[int, ...] = ()
    nbytes: int = 0
    objects: bool = False
