"""Writing a safetensors output safely: the temp file beside it, the writer thread, and the
re-read that verifies it before it gets its name. Shared by ``convert`` and ``merge``."""

from __future__ import annotations

import json
import os
import secrets
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sdlib.errors import SdlibError, UsageError
from sdlib.transform._finite import FiniteCheck
from sdlib.transform._stwriter import OutTensor, SafetensorsWriter, read_header
from sdlib.transform._tensordata import CHUNK_BYTES, Chunk

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation

try:  # the CRC-32 sdlib.hashing uses: ISA-L's when installed (a dependency), else zlib's
    from isal.isal_zlib import crc32 as crc32
except ImportError:  # pragma: no cover
    crc32 = zlib.crc32


@dataclass(frozen=True)
class ConvertProgress:
    """A progress event: ``stage`` is ``write`` or ``verify``; counts are output bytes."""

    stage: str
    done: int
    total: int


def check_output(src: Path, out: Path, overwrite: bool) -> None:
    if out.suffix != ".safetensors":
        raise UsageError("the output name must end in .safetensors", path=str(out))
    if not out.parent.is_dir():
        raise UsageError("the output folder does not exist", path=str(out.parent))
    if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
        raise UsageError("the output would replace the input; choose another name", path=str(out))
    if out.exists() and not overwrite:
        raise UsageError("already exists (pass --overwrite to replace it)", path=str(out))


def summarize(names: Sequence[str], limit: int = 64) -> str:
    shown = list(names[:limit])
    if len(names) > limit:
        shown.append(f"... {len(names) - limit} more")
    return json.dumps(shown, ensure_ascii=False)


def create_temp(out: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.part`` beside ``out`` (umask-respecting, unlike mkstemp)."""
    for _ in range(100):
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666), tmp
        except FileExistsError:
            continue
    raise SdlibError("cannot create a temporary file beside the output", path=str(out))


class Sink:
    """Check, CRC and write chunks on a worker thread while the next one is read and cast.

    One chunk is in flight at a time: ``put`` waits for the previous one, which is what
    keeps the reader's two alternating buffers safe to reuse. CRC-32 and file writes release
    the GIL, so this overlaps with numpy's casts on the main thread. ``check`` counts NaN
    and Inf in each floating-point chunk as written (a few percent of the CRC's time).
    """

    def __init__(self, writer: SafetensorsWriter) -> None:
        self.writer = writer
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sdlib-write")
        self.pending: Future[None] | None = None
        self.out_crc = 0
        self.raw_crc = 0
        self.check = FiniteCheck()

    def _job(self, chunk: Chunk, dtype: str) -> None:
        self.check.chunk(chunk.data, dtype)
        data = chunk.data.reshape(-1).view("u1").data
        self.out_crc = crc32(data, self.out_crc)
        if chunk.raw is not None:
            self.raw_crc = crc32(chunk.raw, self.raw_crc)
        self.writer.write(data)

    def put(self, chunk: Chunk, dtype: str) -> None:
        """Queue a chunk of a tensor whose output dtype is ``dtype``."""
        self.wait()
        self.pending = self.pool.submit(self._job, chunk, dtype)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def take(self, name: str) -> tuple[int, int]:
        """Finish tensor ``name``: (CRC of its output bytes, CRC of its raw input)."""
        self.wait()
        self.check.end(name)
        crcs, self.out_crc, self.raw_crc = (self.out_crc, self.raw_crc), 0, 0
        return crcs


def verify_output(
    path: Path,
    tensors: list[OutTensor],
    crcs: list[int],
    metadata: dict[str, str],
    progress: Callable[[ConvertProgress], None] | None,
) -> None:
    """Re-read the output: same names, dtypes, shapes, metadata and tensor checksums."""
    buf = memoryview(bytearray(CHUNK_BYTES))  # one buffer: no allocation per read
    with open(path, "rb", buffering=0) as fh:
        header = read_header(fh)
        got = [(t.name, t.dtype, t.shape) for t in header.tensors]
        if got != [(t.name, t.dtype, t.shape) for t in tensors] or header.metadata != metadata:
            raise SdlibError("verification failed: the written header differs from the plan")
        total = header.file_size - header.data_start
        for stored, expected in zip(header.tensors, crcs, strict=True):
            fh.seek(stored.start)
            crc, left = 0, stored.end - stored.start
            while left:
                got_n = fh.readinto(buf[: min(left, CHUNK_BYTES)])
                if not got_n:
                    raise SdlibError("verification failed: the output is truncated")
                crc = crc32(buf[:got_n], crc)
                left -= got_n
            if crc != expected:
                raise SdlibError(f"verification failed: tensor {stored.name!r} differs")
            if progress:
                progress(ConvertProgress("verify", stored.end - header.data_start, total))
    _verify_with_safetensors(path, tensors, metadata)


def _verify_with_safetensors(
    path: Path, tensors: list[OutTensor], metadata: dict[str, str]
) -> None:
    """The reference reader must accept the file too (it validates the header its own way)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            names = set(f.keys())
            ok = names == {t.name for t in tensors} and (f.metadata() or {}) == metadata
            for t in tensors:
                view = f.get_slice(t.name)
                ok = ok and tuple(view.get_shape()) == t.shape and view.get_dtype() == t.dtype
    except Exception as exc:  # the binding raises its own error types
        raise SdlibError(
            f"verification failed: safetensors cannot read the output ({exc})"
        ) from exc
    if not ok:
        raise SdlibError("verification failed: safetensors reads different tensors")
