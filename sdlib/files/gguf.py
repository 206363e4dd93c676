"""A bounded, validating reader of GGUF headers (llama.cpp, ComfyUI-GGUF, stable-diffusion.cpp).

Layout (GGUF v2 and v3; ggml/docs/gguf.md): ``GGUF``, u32 version, u64 tensor count, u64
key/value count, the key/values (u64-length strings, u32 value types, arrays of one type),
the tensor infos (name, u32 rank, u64 dims innermost first, u32 ggml type, u64 offset into
the data section), then padding to ``general.alignment`` (default 32) and the tensor data.
v3 files may be big-endian; the version field shows which.

Reads the header only, never tensor data. Every count, length and nesting depth is checked
against a cap and against the bytes the file still has *before* anything is read or
allocated, so a hostile or truncated file gives a one-line ``FormatError``, never a
traceback, a huge allocation or a long read. Pure: stdlib only (no numpy, no torch).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeAlias

from sdlib.errors import FormatError
from sdlib.files._gguf_names import classifier_names
from sdlib.files.opening import open_regular, os_problem, printable
from sdlib.files.tensors import QUANT_BLOCKS, TensorInfo, TensorTable
from sdlib.hashing import MAX_HEADER
from sdlib.taxonomy import Container

__all__ = [
    "GGML_TYPES",
    "GGUFHeader",
    "GGUFValue",
    "classifier_names",
    "file_type_name",
    "parse_header",
    "read_header",
    "read_header_from",
    "read_table",
]

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
#: Caps for hostile files. Real headers: a Flux transformer has ~780 tensors, an LLM a few
#: thousand and a 256k-token vocabulary array (a few MB of header); the header byte cap is
#: the safetensors one (100 MB).
MAX_HEADER_BYTES = MAX_HEADER
MAX_TENSORS = 1 << 20
MAX_KEYS = 1 << 20
MAX_STRING = 1 << 24
MAX_ARRAY = 1 << 24
MAX_DEPTH = 4
MAX_DIMS = 4  # GGML_MAX_DIMS
#: ComfyUI-GGUF stores a tensor of more than 4 dims flattened and keeps its real shape here.
ORIG_SHAPE_KEY = "comfy.gguf.orig_shape."

#: ggml type id -> dtype name: the safetensors spelling for plain types, ggml's for the
#: block quantisations (ggml.h ``enum ggml_type``; the gaps are types removed from GGUF).
GGML_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}  # fmt: skip

#: ``general.file_type`` (llama.h ``enum llama_ftype``) -> the name quantisers print.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip

#: A metadata value: arrays become tuples (of one element type, possibly nested).
GGUFValue: TypeAlias = "int | float | bool | str | tuple[GGUFValue, ...]"

_STRING, _ARRAY, _BOOL = 8, 9, 7
#: Scalar value type -> struct code (the element size follows from it).
_SCALARS: dict[int, str] = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip
#: Fewest bytes one value of a type can take (a string is at least its length field).
_MIN_SIZE = {t: struct.calcsize(c) for t, c in _SCALARS.items()} | {_STRING: 8, _ARRAY: 12}
_READ_AHEAD = 1 << 16
_SHOWN_ITEMS = 64


@dataclass(frozen=True)
class GGUFHeader:
    """Everything before a GGUF file's tensor data."""

    version: int
    #: "little" or "big" (v3 allows big-endian files).
    byte_order: str
    alignment: int
    metadata: Mapping[str, GGUFValue]
    #: Name -> tensor (file order); shapes in PyTorch order (outermost first), offsets
    #: relative to the data section, dtype a :data:`GGML_TYPES` name.
    tensors: Mapping[str, TensorInfo]
    #: Where the data section starts (the header, padded to ``alignment``).
    data_offset: int

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> str | None:
        """``general.file_type`` as the quantiser names it (``Q4_K_M``), if set and known."""
        return file_type_name(self.metadata.get("general.file_type"))

    def table(self) -> TensorTable:
        """The tensor table with metadata as text (long arrays summarised), for classify."""
        metadata = {key: _text(value) for key, value in self.metadata.items()}
        return TensorTable(self.tensors, Container.GGUF, metadata, self.data_offset)


def file_type_name(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return FILE_TYPES.get(value)


def parse_header(data: bytes, file_size: int | None = None, path: str | None = None) -> GGUFHeader:
    """The header of a GGUF file whose first bytes are ``data`` (the whole file by default)."""
    size = len(data) if file_size is None else file_size
    return read_header_from(io.BytesIO(data), size, path)


def read_header_from(fh: BinaryIO, file_size: int, path: str | None = None) -> GGUFHeader:
    """Read and validate the header of an open GGUF file (at position 0)."""
    return _Parser(_Cursor(fh, file_size, path)).header()


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    with open_regular(path) as fh:
        try:
            return read_header_from(fh, os.fstat(fh.fileno()).st_size, printable(path))
        except OSError as exc:  # an I/O error mid-read
            raise FormatError(os_problem(exc), path=printable(path)) from None


def read_table(path: str | os.PathLike[str]) -> TensorTable:
    """The tensor table and metadata of a GGUF file, from its header alone."""
    return read_header(path).table()


# --- reading -----------------------------------------------------------------------------------


class _Cursor:
    """Bytes of the header, fetched from the file in growing chunks, never past the caps."""

    def __init__(self, fh: BinaryIO, file_size: int, path: str | None) -> None:
        self.fh, self.size, self.path = fh, file_size, path
        self.buf = bytearray()
        self.pos = 0
        self.order = "<"

    def fail(self, message: str) -> FormatError:
        return FormatError(message, path=self.path)

    def left(self) -> int:
        """Bytes the header may still use: up to the end of the file and the header cap."""
        return min(self.size, MAX_HEADER_BYTES) - self.pos

    def take(self, n: int) -> int:
        """Claim the next ``n`` header bytes (reading them in if needed); their offset."""
        end = self.pos + n
        if end > len(self.buf):
            self._fill(end)
        start, self.pos = self.pos, end
        return start

    def raw(self, n: int) -> bytes:
        start = self.take(n)
        return bytes(self.buf[start : start + n])

    def _fill(self, end: int) -> None:
        if end > self.size:
            raise self.fail(
                f"truncated: the GGUF header runs past the end of the {self.size}-byte file"
            )
        if end > MAX_HEADER_BYTES:
            raise self.fail(f"GGUF header is over the {MAX_HEADER_BYTES // 1_000_000} MB limit")
        # Read ahead (doubling) so thousands of small fields cost few reads, within the caps.
        want = min(max(end, 2 * len(self.buf), _READ_AHEAD), self.size, MAX_HEADER_BYTES)
        chunk = self.fh.read(want - len(self.buf))
        self.buf += chunk
        if len(self.buf) < end:
            raise self.fail("truncated: the file ended inside the GGUF header")

    def unpack(self, code: str) -> tuple[Any, ...]:
        fmt = self.order + code
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))

    def u32(self) -> int:
        value: int = self.unpack("I")[0]
        return value

    def u64(self) -> int:
        value: int = self.unpack("Q")[0]
        return value

    def string(self, what: str) -> str:
        n = self.u64()
        if n > MAX_STRING or n > self.left():
            raise self.fail(f"{what}: a string of {n:,} bytes does not fit in the header")
        start = self.take(n)
        return self.buf[start : start + n].decode("utf-8", "replace")

    def strings(self, n: int, what: str) -> tuple[str, ...]:
        """``n`` strings in a row: a tight loop, as vocabularies hold 150,000 and more."""
        length = struct.Struct(self.order + "Q").unpack_from
        limit = min(self.size, MAX_HEADER_BYTES)
        out: list[str] = []
        for _ in range(n):
            pos = self.pos
            if pos + 8 > len(self.buf):
                self._fill(pos + 8)
            (size,) = length(self.buf, pos)
            end = pos + 8 + size
            if size > MAX_STRING or end > limit:
                raise self.fail(f"{what}: a string of {size:,} bytes does not fit in the header")
            if end > len(self.buf):
                self._fill(end)
            out.append(self.buf[pos + 8 : end].decode("utf-8", "replace"))
            self.pos = end
        return tuple(out)


class _Parser:
    def __init__(self, cur: _Cursor) -> None:
        self.cur = cur

    def header(self) -> GGUFHeader:
        cur = self.cur
        if cur.size < 4 or cur.raw(4) != MAGIC:
            raise cur.fail("not a GGUF file (no GGUF magic)")
        raw = cur.raw(4)
        version = int.from_bytes(raw, "little")
        if version not in VERSIONS and int.from_bytes(raw, "big") in VERSIONS:
            cur.order, version = ">", int.from_bytes(raw, "big")
        if version == 1:
            raise cur.fail("GGUF version 1 (2023 pre-release format) is not supported")
        if version not in VERSIONS:
            raise cur.fail(f"unsupported GGUF version {version} (sdlib reads 2 and 3)")
        n_tensors, n_keys = cur.u64(), cur.u64()
        # A key/value takes at least 13 bytes, a tensor info 24: refuse absurd counts before
        # reading any of them.
        if (
            n_keys > MAX_KEYS
            or n_tensors > MAX_TENSORS
            or 13 * n_keys + 24 * n_tensors > cur.left()
        ):
            raise cur.fail(
                f"GGUF header claims {n_tensors:,} tensors and {n_keys:,} metadata keys, more "
                f"than a {cur.size:,}-byte file can hold"
            )
        metadata: dict[str, GGUFValue] = {}
        for _ in range(n_keys):
            key = cur.string("metadata key")
            if key in metadata:
                raise cur.fail(f"duplicate GGUF metadata key {key!r}")
            metadata[key] = self.value(cur.u32(), key, 0)
        alignment = self.alignment(metadata)
        infos = [self.tensor_info() for _ in range(n_tensors)]
        data_offset = -(-cur.pos // alignment) * alignment
        tensors: dict[str, TensorInfo] = {}
        for name, shape, dtype, offset in infos:
            if name in tensors:
                raise cur.fail(f"duplicate GGUF tensor name {name!r}")
            tensors[name] = self.tensor(name, shape, dtype, offset, alignment, metadata)
        self.check_layout(tensors, cur.size - data_offset)
        order = "little" if cur.order == "<" else "big"
        return GGUFHeader(version, order, alignment, metadata, tensors, data_offset)

    def value(self, vtype: int, key: str, depth: int) -> GGUFValue:
        cur = self.cur
        if vtype == _STRING:
            return cur.string(f"metadata {key!r}")
        if vtype in _SCALARS:
            scalar: GGUFValue = cur.unpack(_SCALARS[vtype])[0]
            return scalar
        if vtype != _ARRAY:
            raise cur.fail(f"metadata {key!r} has unknown GGUF value type {vtype}")
        if depth >= MAX_DEPTH:
            raise cur.fail(f"metadata {key!r}: arrays nested more than {MAX_DEPTH} deep")
        etype, n = cur.u32(), cur.u64()
        if etype not in _MIN_SIZE:
            raise cur.fail(f"metadata {key!r}: array of unknown GGUF value type {etype}")
        if n > MAX_ARRAY or n * _MIN_SIZE[etype] > cur.left():
            raise cur.fail(f"metadata {key!r}: an array of {n:,} values does not fit in the file")
        if etype in _SCALARS:
            return cur.unpack(f"{n}{_SCALARS[etype]}")
        if etype == _STRING:
            return cur.strings(n, f"metadata {key!r}")
        return tuple(self.value(etype, key, depth + 1) for _ in range(n))

    def alignment(self, metadata: Mapping[str, GGUFValue]) -> int:
        value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (
            isinstance(value, bool) or not isinstance(value, int)
            or value <= 0 or value & (value - 1)
        ):  # fmt: skip
            raise self.cur.fail(f"general.alignment {value!r} is not a power of two")
        return value

    def tensor_info(self) -> tuple[str, tuple[int, ...], str, int]:
        cur = self.cur
        name = cur.string("tensor name")
        n_dims = cur.u32()
        if n_dims > MAX_DIMS:
            raise cur.fail(f"tensor {name!r} has {n_dims} dimensions (GGUF allows {MAX_DIMS})")
        dims: tuple[int, ...] = cur.unpack(f"{n_dims}Q")
        type_id = cur.u32()
        offset = cur.u64()
        dtype = GGML_TYPES.get(type_id)
        if dtype is None:
            raise cur.fail(f"tensor {name!r} has unknown ggml type {type_id}")
        if any(d >= 1 << 62 for d in dims) or math.prod(dims) >= 1 << 62:
            raise cur.fail(f"tensor {name!r} has impossible dimensions {list(dims)}")
        block = QUANT_BLOCKS.get(dtype, (1, 0))[0]
        if dims and dims[0] % block:
            raise cur.fail(
                f"tensor {name!r}: rows of {dims[0]} elements are not whole {dtype} blocks "
                f"of {block}"
            )
        # GGUF lists dims innermost first (ggml ne[0]); PyTorch's shape is the reverse.
        return name, dims[::-1], dtype, offset

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        offset: int,
        alignment: int,
        metadata: Mapping[str, GGUFValue],
    ) -> TensorInfo:
        if offset % alignment:
            raise self.cur.fail(f"tensor {name!r}: offset {offset} is not {alignment}-aligned")
        info = TensorInfo(name, dtype, shape)
        real = _orig_shape(metadata.get(ORIG_SHAPE_KEY + name), info.numel)
        return TensorInfo(name, dtype, real or shape, (offset, offset + info.nbytes))

    def check_layout(self, tensors: Mapping[str, TensorInfo], data_size: int) -> None:
        spans = sorted((t.offsets, t.name) for t in tensors.values() if t.offsets and t.nbytes)
        end_prev, name_prev = 0, ""
        for (begin, end), name in spans:
            if begin < end_prev:
                raise self.cur.fail(
                    f"tensors {name_prev!r} and {name!r} overlap in the data section"
                )
            end_prev, name_prev = end, name
        if end_prev > data_size:
            raise self.cur.fail(
                f"truncated: the header needs {end_prev:,} bytes of tensor data, the file has "
                f"{max(data_size, 0):,}"
            )


def _orig_shape(value: GGUFValue | None, numel: int) -> tuple[int, ...] | None:
    """ComfyUI-GGUF's real shape for a flattened 5-D tensor, if it is one and it fits."""
    if not isinstance(value, tuple) or not value:
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        return None
    dims = tuple(d for d in value if isinstance(d, int))
    return dims if math.prod(dims) == numel else None


def _text(value: GGUFValue) -> str:
    """Metadata as the text :class:`TensorTable` holds; long arrays (vocabularies) summarised."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        if len(value) > _SHOWN_ITEMS:
            return f"[{len(value):,} values]"
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)
