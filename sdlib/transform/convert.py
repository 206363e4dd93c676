"""Convert pickle checkpoints (and safetensors) to safetensors, without running pickle code.

    result = convert_file("model.ckpt", dtype="fp16", prune=True)

The order of operations is the safety argument:

1. ``sdlib.files.pickles.open_pickle`` scans and parses in one symbolic pass (nothing is
   imported or called). An *unsafe* verdict raises ``UnsafeFileError`` before any file is
   created. Suspicious files (Lightning callbacks, unknown classes) convert: their objects
   were never instantiated, only recorded.
2. Tensor bytes are read from the storages with numpy (``_tensordata``), cast chunk by chunk
   and streamed into ``.<name>.<random>.part`` beside the output; torch is never imported.
3. The source SHA-256 is computed on a second thread while writing and stored in the header.
4. The written file is re-read and checked (names, dtypes, shapes, a CRC-32 of every tensor's
   bytes against the one computed from the source, and ``safetensors.safe_open``) before an
   atomic ``os.replace``. Any failure removes the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sdlib._version import __version__
from sdlib.errors import DiskFull, FormatError, SdlibError, UsageError
from sdlib.files.pickles import PickleScan, open_pickle, unsafe_error
from sdlib.transform._plan import Plan, plan_from_pickle, plan_from_safetensors
from sdlib.transform._stwriter import OutTensor, SafetensorsWriter, read_header
from sdlib.transform._tensordata import CASTS, CHUNK_BYTES, Chunk, StorageReader

__all__ = ["ConvertProgress", "ConvertResult", "convert_file", "default_output"]

DTYPES = tuple(CASTS)
_HASH_PLACEHOLDER = "0" * 64
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


@dataclass(frozen=True)
class ConvertProgress:
    """A progress event: ``stage`` is ``write`` or ``verify``; counts are output bytes."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class ConvertResult:
    source: Path
    output: Path
    layout: str
    tensors: int
    bytes_written: int
    source_sha256: str
    dtype: str
    prune: bool
    scan: PickleScan | None = None
    dropped: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "output": str(self.output),
            "layout": self.layout,
            "tensors": self.tensors,
            "bytes": self.bytes_written,
            "source_sha256": self.source_sha256,
            "dtype": self.dtype,
            "prune": self.prune,
            "verdict": str(self.scan.verdict) if self.scan else None,
            "findings": [f.to_dict() for f in self.scan.findings] if self.scan else [],
            "dropped": list(self.dropped),
            "metadata": self.metadata,
        }


def default_output(source: Path, dtype: str = "keep", prune: bool = False) -> Path:
    """``<stem>[.pruned][.fp16|.bf16].safetensors`` beside the source."""
    parts = [source.stem]
    if prune:
        parts.append("pruned")
    if dtype != "keep":
        parts.append(dtype)
    return source.with_name(".".join(parts) + ".safetensors")


def convert_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    dtype: str = "keep",
    prune: bool = False,
    overwrite: bool = False,
    progress: Callable[[ConvertProgress], None] | None = None,
) -> ConvertResult:
    """Convert ``source`` to safetensors; see the module docstring for the guarantees."""
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    src = Path(source)
    if not src.is_file():
        raise UsageError("no such file", path=str(src))
    out = Path(output) if output is not None else default_output(src, dtype, prune)
    plan, scan = _plan(src, dtype, prune)
    _check_output(src, out, overwrite)
    metadata = {
        "format": "pt",
        **plan.metadata,
        "sdlib.source": src.name,
        "sdlib.source_sha256": _HASH_PLACEHOLDER,
        "sdlib.convert": json.dumps(
            {"dtype": dtype, "prune": prune, "sdlib": __version__}, separators=(",", ":")
        ),
    }
    if plan.dropped:
        metadata["sdlib.dropped"] = _summary(plan.dropped)
    digest = _write_verified(src, out, plan, metadata, progress)
    return ConvertResult(
        src,
        out,
        plan.layout,
        len(plan.items),
        out.stat().st_size,
        digest,
        dtype,
        prune,
        scan,
        tuple(plan.dropped),
        metadata,
    )


def _plan(src: Path, dtype: str, prune: bool) -> tuple[Plan, PickleScan | None]:
    if _is_safetensors(src):
        if dtype == "keep" and not prune:
            raise UsageError("already safetensors: pass --dtype or --prune to change it")
        with open(src, "rb") as fh:
            return plan_from_safetensors(read_header(fh), dtype, prune), None
    loaded = open_pickle(src)
    if loaded.scan.unsafe:
        raise unsafe_error(loaded.scan, str(src))
    return plan_from_pickle(loaded, dtype, prune), loaded.scan


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < (100 << 20) and head[8:] == b"{"


def _check_output(src: Path, out: Path, overwrite: bool) -> None:
    if out.suffix != ".safetensors":
        raise UsageError("the output name must end in .safetensors", path=str(out))
    if not out.parent.is_dir():
        raise UsageError("the output folder does not exist", path=str(out.parent))
    if out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src)):
        raise UsageError("the output would replace the input; choose another name", path=str(out))
    if out.exists() and not overwrite:
        raise UsageError("already exists (pass --overwrite to replace it)", path=str(out))


def _summary(names: Sequence[str], limit: int = 64) -> str:
    shown = list(names[:limit])
    if len(names) > limit:
        shown.append(f"... {len(names) - limit} more")
    return json.dumps(shown, ensure_ascii=False)


class _Sha256(threading.Thread):
    """Hash the source on another core while the main thread converts (both release the GIL)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="sdlib-sha256")
        self.path = path
        self.hexdigest = ""
        self.error: OSError | None = None
        self.cancelled = threading.Event()

    def run(self) -> None:
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb", buffering=0) as fh:
                while not self.cancelled.is_set() and (block := fh.read(8 << 20)):
                    digest.update(block)
        except OSError as exc:
            self.error = exc
        self.hexdigest = digest.hexdigest()


def _write_verified(
    src: Path,
    out: Path,
    plan: Plan,
    metadata: dict[str, str],
    progress: Callable[[ConvertProgress], None] | None,
) -> str:
    tensors = [OutTensor(i.name, i.dtype, i.shape) for i in plan.items]
    hasher = _Sha256(src)
    hasher.start()
    fd, tmp = _create_temp(out)
    try:
        with os.fdopen(fd, "wb") as fh, open(src, "rb", buffering=0) as raw:
            writer = SafetensorsWriter(fh, tensors, metadata)
            crcs = _copy_tensors(StorageReader(raw), writer, plan, progress)
            hasher.join()
            if hasher.error is not None:
                raise FormatError(f"cannot read the source ({hasher.error.strerror})")
            metadata["sdlib.source_sha256"] = hasher.hexdigest
            writer.rewrite_metadata(metadata)
            writer.close()
        _verify(tmp, tensors, crcs, metadata, progress)
        os.replace(tmp, out)
    except OSError as exc:
        _discard(tmp, hasher)
        if exc.errno == errno.ENOSPC:
            raise DiskFull("no space left for the output", path=str(out)) from exc
        raise SdlibError(f"cannot write the output ({exc.strerror or exc})", path=str(out)) from exc
    except BaseException:
        _discard(tmp, hasher)
        raise
    return hasher.hexdigest


def _discard(tmp: Path, hasher: _Sha256) -> None:
    hasher.cancelled.set()
    with contextlib.suppress(OSError):
        tmp.unlink()


def _create_temp(out: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.part`` beside ``out`` (umask-respecting, unlike mkstemp)."""
    for _ in range(100):
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666), tmp
        except FileExistsError:
            continue
    raise SdlibError("cannot create a temporary file beside the output", path=str(out))


class _Sink:
    """CRC and write chunks on a worker thread while the next chunk is read and cast.

    One chunk is in flight at a time: ``put`` waits for the previous one, which is what
    keeps the reader's two alternating buffers safe to reuse. zlib and file writes release
    the GIL, so this overlaps with numpy's casts on the main thread.
    """

    def __init__(self, writer: SafetensorsWriter) -> None:
        self.writer = writer
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sdlib-write")
        self.pending: Future[None] | None = None
        self.out_crc = 0
        self.raw_crc = 0

    def _job(self, chunk: Chunk) -> None:
        data = chunk.data.reshape(-1).view("u1").data
        self.out_crc = zlib.crc32(data, self.out_crc)
        if chunk.raw is not None:
            self.raw_crc = zlib.crc32(chunk.raw, self.raw_crc)
        self.writer.write(data)

    def put(self, chunk: Chunk) -> None:
        self.wait()
        self.pending = self.pool.submit(self._job, chunk)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def take(self) -> tuple[int, int]:
        """Finish the current tensor: (CRC of its output bytes, CRC of its raw input)."""
        self.wait()
        crcs, self.out_crc, self.raw_crc = (self.out_crc, self.raw_crc), 0, 0
        return crcs


def _copy_tensors(
    reader: StorageReader,
    writer: SafetensorsWriter,
    plan: Plan,
    progress: Callable[[ConvertProgress], None] | None,
) -> list[int]:
    crcs = []
    sink = _Sink(writer)
    try:
        for item in plan.items:
            whole = False
            for chunk in reader.chunks(item.source, item.dtype):
                whole = chunk.raw is not None
                sink.put(chunk)
                if progress:
                    progress(ConvertProgress("write", writer.written, writer.total))
            out_crc, raw_crc = sink.take()
            crcs.append(out_crc)
            if whole:
                reader.check_record(item.source.storage, raw_crc)
            # A record no tensor read whole is CRC-checked with one extra read.
            reader.verify(item.source.storage)
    finally:
        sink.wait()
        sink.pool.shutdown()
    return crcs


def _verify(
    path: Path,
    tensors: list[OutTensor],
    crcs: list[int],
    metadata: dict[str, str],
    progress: Callable[[ConvertProgress], None] | None,
) -> None:
    """Re-read the output: same names, dtypes, shapes, metadata and tensor checksums."""
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
                block = fh.read(min(left, CHUNK_BYTES))
                if not block:
                    raise SdlibError("verification failed: the output is truncated")
                crc = zlib.crc32(block, crc)
                left -= len(block)
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
