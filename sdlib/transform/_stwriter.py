"""Write safetensors files tensor by tensor, and read their headers back strictly.

The format is an 8-byte little-endian header length, a JSON header (``name -> {dtype, shape,
data_offsets}`` plus an optional string-to-string ``__metadata__``), then the data, contiguous
and in header order. Writing it directly (instead of building a dict of tensors for
``safetensors.save_file``) is what lets conversion stream: peak memory is one chunk.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from sdlib.errors import FormatError
from sdlib.files.tensors import DTYPE_SIZES
from sdlib.transform._writebehind import AVAILABLE as WRITE_BEHIND
from sdlib.transform._writebehind import FLUSH_BYTES, WriteBehind

MAX_HEADER = 100 << 20
#: Lone UTF-16 surrogates: a pickle's strings may hold them (pickle decodes with
#: ``surrogatepass``), but a safetensors header is UTF-8 JSON, which cannot.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class OutTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(math.prod(self.shape) * DTYPE_SIZES[self.dtype])


def header_bytes(
    tensors: Sequence[OutTensor], metadata: Mapping[str, str], pad_to: int = 0
) -> bytes:
    """The length prefix plus JSON header, padded with spaces to a multiple of 8 (and to
    ``pad_to`` bytes in all when that is longer: JSON ignores trailing whitespace)."""
    header: dict[str, object] = {}
    if metadata:
        # Metadata is informational: keep it, with U+FFFD where it cannot be UTF-8.
        header["__metadata__"] = {_utf8(k): _utf8(v) for k, v in metadata.items()}
    offset = 0
    for t in tensors:
        if _SURROGATE.search(t.name):
            # A tensor's name is how loaders find it: changing it would make a different model.
            raise FormatError(
                f"tensor name {t.name!r} is not valid Unicode (it holds a lone surrogate); "
                "safetensors cannot store it"
            )
        header[t.name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    raw += b" " * max(0, pad_to - 8 - len(raw))
    return struct.pack("<Q", len(raw)) + raw


def _utf8(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


class SafetensorsWriter:
    """Sequential writer: header (rewritable once, same length), then each tensor's bytes.

    Once ``FLUSH_BYTES`` are written, a write-behind thread pushes them to disk while the
    rest is computed (``_writebehind``). Use it as a context manager, or call ``close`` (on
    success) or ``abort``, so that thread never outlives the file.
    """

    def __init__(self, fh: BinaryIO, tensors: Sequence[OutTensor], metadata: Mapping[str, str]):
        self.fh = fh
        self.tensors = tuple(tensors)
        self.head = header_bytes(self.tensors, metadata)
        self.data_start = len(self.head)
        self.total = sum(t.nbytes for t in self.tensors)
        fh.write(self.head)
        self.written = 0
        self._behind: WriteBehind | None = None

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, data: bytes | memoryview) -> None:
        self.fh.write(data)
        self.written += len(data)
        if self._behind is None and self.written >= FLUSH_BYTES and WRITE_BEHIND:
            self.fh.flush()  # the thread syncs the descriptor, not this object's buffer
            self._behind = WriteBehind(self.fh.fileno(), FLUSH_BYTES)
            self._behind.start()
        if self._behind is not None:
            self._behind.check()
            self._behind.wrote(len(data))

    def abort(self) -> None:
        """Stop the write-behind thread (idempotent); the caller removes the file."""
        if self._behind is not None:
            self._behind.stop()

    def rewrite_metadata(self, metadata: Mapping[str, str]) -> None:
        """Replace the metadata once its late values (the source hash) are known.

        A header that came out shorter than the first is padded with spaces to its length.
        """
        head = header_bytes(self.tensors, metadata, pad_to=len(self.head))
        if len(head) != len(self.head):
            raise RuntimeError("safetensors header changed length on rewrite")
        end = self.fh.tell()
        self.fh.seek(0)
        self.fh.write(head)
        self.fh.seek(end)
        self.head = head

    def close(self) -> None:
        """Check the length, then flush and fsync (after the write-behind thread is done)."""
        self.abort()
        if self._behind is not None:
            self._behind.check()
        if self.written != self.total:
            raise RuntimeError(f"wrote {self.written} data bytes, header promises {self.total}")
        self.fh.flush()
        os.fsync(self.fh.fileno())


@dataclass(frozen=True)
class StoredTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offsets
    end: int


@dataclass(frozen=True)
class Header:
    tensors: tuple[StoredTensor, ...]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def read_header(fh: BinaryIO) -> Header:
    """Parse and validate a safetensors header: bounded, contiguous, sizes match dtypes."""
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    prefix = fh.read(8)
    if len(prefix) != 8:
        raise FormatError("not a safetensors file (shorter than 8 bytes)")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER or 8 + length > size:
        raise FormatError("not a safetensors file (header length out of range)")
    try:
        header = json.loads(fh.read(length))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError("safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise FormatError("safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("safetensors __metadata__ is not a string map")
    data_start = 8 + length
    tensors = sorted(
        (_entry(name, spec, data_start) for name, spec in header.items()), key=lambda t: t.start
    )
    expected = data_start
    for t in tensors:
        if t.start != expected:
            raise FormatError(f"safetensors tensor {t.name!r} is not contiguous with the previous")
        expected = t.end
    if expected != size:
        raise FormatError("safetensors data does not end at the end of the file")
    return Header(tuple(tensors), metadata, data_start, size)


def _entry(name: str, spec: object, data_start: int) -> StoredTensor:
    if not isinstance(spec, dict):
        raise FormatError(f"safetensors entry {name!r} is not an object")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype not in DTYPE_SIZES or not isinstance(shape, list) or not isinstance(offsets, list):
        raise FormatError(f"safetensors entry {name!r} is malformed")
    if not all(type(x) is int and x >= 0 for x in (*shape, *offsets)) or len(offsets) != 2:
        raise FormatError(f"safetensors entry {name!r} has invalid shape or offsets")
    start, end = offsets
    if end - start != int(math.prod(shape) * DTYPE_SIZES[dtype]):
        raise FormatError(f"safetensors entry {name!r}: size does not match dtype and shape")
    return StoredTensor(name, dtype, tuple(shape), data_start + start, data_start + end)
