"""Read tensor bytes straight from a checkpoint's storages, cast them, chunk by chunk.

No torch: numpy views the raw storage bytes by *bit width* (bf16 as uint16, fp8 as uint8),
applies the already-validated offset and strides, and casts. Contiguous tensors stream in
fixed-size chunks, so memory stays at one chunk however large the model; strided views read
only the span they cover.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from sdlib.errors import FormatError
from sdlib.files.tensors import is_contiguous
from sdlib.transform._f16 import SMALL, f32_to_f16

CHUNK_BYTES = 16 << 20

_NP: dict[str, str] = {
    "F64": "f8", "F32": "f4", "F16": "f2", "BF16": "u2", "I64": "i8", "I32": "i4", "I16": "i2",
    "I8": "i1", "U8": "u1", "U16": "u2", "U32": "u4", "U64": "u8", "BOOL": "u1", "C64": "c8",
    "F8_E4M3": "u1", "F8_E5M2": "u1", "F8_E8M0": "u1",
}  # fmt: skip
_FLOATS = frozenset({"F64", "F32", "F16", "BF16"})
CASTS = {"keep": None, "fp16": "F16", "bf16": "BF16"}


@dataclass(frozen=True)
class Storage:
    """Where a storage's bytes live in the input file."""

    offset: int
    nbytes: int
    compressed_size: int = 0
    method: int = 0  # 0 stored, 8 deflate
    crc: int | None = None
    big_endian: bool = False


@dataclass(frozen=True)
class Chunk:
    """Output bytes of part of a tensor, and the raw input bytes when they are CRC-checked."""

    data: np.ndarray
    raw: memoryview | None = None


@dataclass(frozen=True)
class Source:
    """One tensor to read: a validated view (element offset, shape, strides) of a storage."""

    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    storage: Storage

    @property
    def itemsize(self) -> int:
        return np.dtype(_NP[self.dtype]).itemsize

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def contiguous(self) -> bool:
        return is_contiguous(self.shape, self.stride)

    def covers_storage(self) -> bool:
        return (
            self.offset == 0
            and self.contiguous()
            and self.numel * self.itemsize == self.storage.nbytes
        )


def target_dtype(dtype: str, cast: str) -> str:
    """The output dtype: floating tensors take the requested cast, others keep theirs."""
    target = CASTS.get(cast)
    if target is None or dtype not in _FLOATS:
        return dtype
    return target


def _np_dtype(dtype: str, big_endian: bool) -> np.dtype[np.generic]:
    code = _NP.get(dtype)
    if code is None:
        raise FormatError(f"tensor dtype {dtype} cannot be written to safetensors")
    return np.dtype((">" if big_endian else "<") + code if np.dtype(code).itemsize > 1 else code)


def raw_dtype(dtype: str, big_endian: bool = False) -> np.dtype[np.generic]:
    """The numpy dtype that views a stored tensor's raw bits (bf16 as uint16, fp8 as uint8)."""
    return _np_dtype(dtype, big_endian)


def to_float32(arr: np.ndarray, src: str, out: np.ndarray) -> np.ndarray:
    """Widen raw ``src`` bits (F16, BF16, F32, F64, any byte order) into float32 ``out``.

    Exact for F16 and BF16 (every value is representable); F64 rounds to nearest. The
    counterpart of :func:`convert` for arithmetic done in float32 (merging).
    """
    if src == "BF16":
        bits = out.view("<u4")
        np.copyto(bits, arr, casting="unsafe")
        bits <<= 16
    elif src == "F16" and arr.dtype.byteorder != ">" and _f16_to_f32(arr, out):
        pass
    elif src in _FLOATS:
        np.copyto(out, arr, casting="unsafe")
    else:
        raise FormatError(f"cannot compute with {src} tensors")
    return out


def _f16_to_f32(arr: np.ndarray, out: np.ndarray) -> bool:
    """fp16 -> fp32 with integer ops, ~4x faster than numpy's scalar conversion loop.

    Sign-extending the 16 bits and shifting them left by 13 puts the fp16 exponent and
    mantissa in the low bits of an fp32 exponent and mantissa (the sign lands in bit 31,
    the mask clears the copies of it in bits 28-30); multiplying by 2**112 then rebiases
    the exponent exactly, subnormals included. Inf and NaN (exponent 31) come out as
    magnitudes of at least 65536, which no finite fp16 has: those chunks return False and
    take numpy's path.
    """
    bits = out.view("<u4")
    np.copyto(out.view("<i4"), arr.view("<i2"))
    bits <<= 13
    bits &= 0x8FFFE000
    out *= np.float32(2.0**112)
    return not out.size or (float(out.max()) < 65536.0 and float(out.min()) > -65536.0)


def convert(arr: np.ndarray, src: str, dst: str, out: np.ndarray | None = None) -> np.ndarray:
    """Cast ``arr`` (raw ``src`` bits) to little-endian ``dst`` bits, as torch rounds.

    ``out``, when given, is a reusable byte buffer of at least ``2 * arr.size`` bytes: casting
    into it avoids a fresh allocation (and its page faults) per chunk.
    """
    if src == "BOOL" and arr.size and int(arr.max()) > 1:
        raise FormatError("bool tensor holds values other than 0 and 1")
    if src == dst:
        return arr if arr.dtype.byteorder in "<=|" else arr.astype(arr.dtype.newbyteorder("<"))
    if src == "BF16":
        arr = (arr.astype("<u4") << 16).view("<f4")
    if dst == "F16":
        target = np.empty(arr.shape, "<f2") if out is None else out[: arr.size * 2].view("<f2")
        if arr.dtype == np.dtype("<f4") and arr.size >= SMALL and arr.flags.c_contiguous:
            f32_to_f16(arr, target.view("<u2"))  # same bits, a fraction of the time
            return target
        with np.errstate(over="ignore"):  # beyond fp16 range becomes inf, exactly as in torch
            np.copyto(target, arr, casting="unsafe")
        return target
    if dst == "BF16":
        target = np.empty(arr.shape, "<u2") if out is None else out[: arr.size * 2].view("<u2")
        _to_bf16(arr.astype("<f4", copy=False), target)
        return target
    raise FormatError(f"cannot cast {src} to {dst}")


def _to_bf16(f32: np.ndarray, out: np.ndarray) -> None:
    """Round-to-nearest-even, NaN -> 0x7FC0: exactly torch's float -> bfloat16."""
    bits = f32.view("<u4")
    rounded = bits >> 16
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    np.copyto(out, rounded, casting="unsafe")
    nans = np.isnan(f32)
    if nans.any():
        out[nans] = 0x7FC0


class StorageReader:
    """Reads storages of one input file; inflates deflated ones once; checks CRCs."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.verified: set[int] = set()
        self._inflated: tuple[int, bytes] | None = None
        self._inputs = [bytearray(), bytearray()]
        self._outputs = [bytearray(), bytearray()]
        self._turn = 0
        self._carry = b""  # a partial element between two inflated chunks

    def _raw(self, storage: Storage) -> bytes:
        if self._inflated and self._inflated[0] == storage.offset:
            return self._inflated[1]
        self.fh.seek(storage.offset)
        raw = self.fh.read(storage.compressed_size or storage.nbytes)
        if storage.method == 8:
            try:
                raw = zlib.decompressobj(-15).decompress(raw, storage.nbytes + 1)
            except zlib.error as exc:
                raise FormatError("a compressed storage does not inflate") from exc
        if len(raw) != storage.nbytes:
            raise FormatError("a storage is shorter than its record says")
        self._check_crc(storage, zlib.crc32(raw))
        if storage.method == 8:
            self._inflated = (storage.offset, raw)
        return raw

    def _check_crc(self, storage: Storage, crc: int) -> None:
        if storage.crc and crc != storage.crc:
            raise FormatError("storage CRC mismatch: the file is corrupt or was altered")
        self.verified.add(storage.offset)

    def verify(self, storage: Storage) -> None:
        """Check a stored record's CRC by reading it (for storages no tensor reads whole)."""
        if not storage.crc or storage.offset in self.verified or storage.method == 8:
            return
        self.fh.seek(storage.offset)
        crc, left = 0, storage.nbytes
        while left:
            block = self.fh.read(min(left, CHUNK_BYTES))
            if not block:
                raise FormatError("a storage is shorter than its record says")
            crc = zlib.crc32(block, crc)
            left -= len(block)
        self._check_crc(storage, crc)

    def chunks(self, src: Source, dst: str) -> Iterator[Chunk]:
        """The tensor's bytes in C order, cast to ``dst``, a chunk at a time.

        A chunk's buffers stay valid until the chunk after next is requested (two buffers
        alternate), so a consumer may write one chunk on another thread while the next is
        read and cast. When ``Chunk.raw`` is set, the consumer CRCs it and hands the total
        to ``check_record`` after the last chunk.
        """
        if src.numel == 0:
            return
        np_src = _np_dtype(src.dtype, src.storage.big_endian)
        if src.storage.method == 0 and src.contiguous():
            yield from self._contiguous(src, np_src, dst)
            return
        if src.storage.method == 8 and src.contiguous() and not self._is_inflated(src.storage):
            yield from self._inflating(src, np_src, dst)
            return
        raw = self._raw(src.storage) if src.storage.method == 8 else self._span(src)
        base = np.frombuffer(raw, dtype=np_src)
        offset = src.offset if src.storage.method == 8 else 0
        view = np.lib.stride_tricks.as_strided(
            base[offset:],
            shape=src.shape,
            strides=tuple(s * np_src.itemsize for s in src.stride),
            writeable=False,
        )
        yield Chunk(convert(np.ascontiguousarray(view).reshape(-1), src.dtype, dst))

    def _is_inflated(self, storage: Storage) -> bool:
        return self._inflated is not None and self._inflated[0] == storage.offset

    def _inflating(self, src: Source, np_src: np.dtype[np.generic], dst: str) -> Iterator[Chunk]:
        """A contiguous view of a deflated storage, inflated a chunk at a time: memory stays
        at one chunk however large the storage (or however much it claims), never past its
        declared size; the whole record is inflated once to check its size and CRC."""
        storage, size = src.storage, np_src.itemsize
        start, end = src.offset * size, (src.offset + src.numel) * size
        step = max(size, CHUNK_BYTES // size * size)
        inflater = zlib.decompressobj(-15)
        self._carry = b""
        self.fh.seek(storage.offset)
        left_in = storage.compressed_size
        pending = b""
        done = crc = 0  # bytes of the storage inflated so far, and their CRC
        while done < storage.nbytes:
            want = min(step, storage.nbytes - done)
            try:
                if not pending and left_in:
                    pending = self.fh.read(min(left_in, 1 << 20))
                    left_in -= len(pending)
                data = inflater.decompress(pending, want)
                pending = inflater.unconsumed_tail
            except zlib.error as exc:
                raise FormatError("a compressed storage does not inflate") from exc
            if not data:
                if not pending and not left_in:
                    raise FormatError("a storage is shorter than its record says")
                continue
            crc = zlib.crc32(data, crc)
            lo, hi = max(start, done), min(end, done + len(data))
            done += len(data)
            if lo < hi:
                part = data[lo - (done - len(data)) : hi - (done - len(data))]
                # Whole elements only: a chunk boundary can fall inside one.
                yield from self._cast_part(part, np_src, src.dtype, dst)
        if self._carry:
            raise FormatError("a storage is shorter than its record says")
        self._check_crc(storage, crc)

    def _cast_part(
        self, part: bytes, np_src: np.dtype[np.generic], src_dtype: str, dst: str
    ) -> Iterator[Chunk]:
        data = self._carry + part
        whole = len(data) - len(data) % np_src.itemsize
        self._carry = data[whole:]
        if whole:
            yield Chunk(convert(np.frombuffer(data[:whole], dtype=np_src), src_dtype, dst))

    def _span(self, src: Source) -> bytes:
        """Bytes from the view's first to its last element (validated against the storage)."""
        last = src.offset + sum((n - 1) * s for n, s in zip(src.shape, src.stride, strict=True))
        size = src.itemsize
        self.fh.seek(src.storage.offset + src.offset * size)
        data = self.fh.read((last - src.offset + 1) * size)
        if len(data) != (last - src.offset + 1) * size:
            raise FormatError("a storage is shorter than its record says")
        return data

    def _contiguous(self, src: Source, np_src: np.dtype[np.generic], dst: str) -> Iterator[Chunk]:
        size = np_src.itemsize
        total = src.numel * size
        whole = src.covers_storage() and bool(src.storage.crc)
        step = max(size, CHUNK_BYTES // size * size)
        self.fh.seek(src.storage.offset + src.offset * size)
        done = 0
        while done < total:
            n = min(step, total - done)
            self._turn ^= 1  # alternate buffers: the previous chunk may still be being written
            view = memoryview(self._buffer(self._inputs, n))[:n]
            got = self.fh.readinto(view)  # type: ignore[attr-defined]
            if got != n:
                raise FormatError("a storage is shorter than its record says")
            out_buf = np.frombuffer(self._buffer(self._outputs, n), dtype="u1")
            out = convert(np.frombuffer(view, dtype=np_src), src.dtype, dst, out_buf)
            yield Chunk(out, view if whole else None)
            done += n

    def _buffer(self, pool: list[bytearray], size: int) -> bytearray:
        """This turn's reusable buffer (kept across tensors), grown to ``size`` if needed."""
        if len(pool[self._turn]) < size:
            pool[self._turn] = bytearray(max(size, min(CHUNK_BYTES, 2 * len(pool[self._turn]))))
        return pool[self._turn]

    def check_record(self, storage: Storage, crc: int) -> None:
        """The CRC a consumer computed over ``Chunk.raw`` of a tensor covering ``storage``."""
        self._check_crc(storage, crc)
