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
   Every floating-point chunk is checked for NaN and Inf as written (``_finite``): a source
   holding them, or an fp16 cast overflowing to Inf, is refused unless ``allow_nan``.
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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdlib._version import __version__
from sdlib.errors import DiskFull, FormatError, SdlibError, UsageError
from sdlib.files.pickles import PickleScan, open_pickle, unsafe_error
from sdlib.transform._finite import NonFinite, refuse
from sdlib.transform._finite import describe as describe_nonfinite
from sdlib.transform._output import (
    ConvertProgress,
    Sink,
    check_output,
    create_temp,
    summarize,
    verify_output,
)
from sdlib.transform._plan import Plan, PlanItem, plan_from_pickle, plan_from_safetensors
from sdlib.transform._stwriter import OutTensor, SafetensorsWriter, read_header
from sdlib.transform._tensordata import CASTS, StorageReader

__all__ = [
    "ConvertProgress",
    "ConvertResult",
    "NonFinite",
    "convert_file",
    "default_output",
    "describe_nonfinite",
]

DTYPES = tuple(CASTS)
_HASH_PLACEHOLDER = "0" * 64
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


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
    #: Tensors written with NaN or Inf values (only with ``allow_nan``; else refused).
    nonfinite: tuple[NonFinite, ...] = ()

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
            "nonfinite": [f.to_dict() for f in self.nonfinite],
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
    allow_nan: bool = False,
    progress: Callable[[ConvertProgress], None] | None = None,
) -> ConvertResult:
    """Convert ``source`` to safetensors; see the module docstring for the guarantees.

    An output that would hold NaN or Inf raises ``NonFiniteError`` (nothing is written)
    unless ``allow_nan``; then the result's ``nonfinite`` lists those tensors.
    """
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    src = Path(source)
    if not src.is_file():
        raise UsageError("no such file", path=str(src))
    out = Path(output) if output is not None else default_output(src, dtype, prune)
    plan, scan = _plan(src, dtype, prune)
    check_output(src, out, overwrite)
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
        metadata["sdlib.dropped"] = summarize(plan.dropped)
    digest, found = _write_verified(src, out, plan, metadata, progress, allow_nan)
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
        found,
    )


def _plan(src: Path, dtype: str, prune: bool) -> tuple[Plan, PickleScan | None]:
    if _is_gguf(src):
        raise UsageError(
            "a GGUF file: its weights are block-quantised for GGUF loaders (ComfyUI-GGUF, "
            "Forge) and cannot be converted to safetensors without dequantising"
        )
    if _is_safetensors(src):
        try:
            with open(src, "rb") as fh:
                header = read_header(fh)
        except FormatError:
            # A safetensors-looking start can open a pickle (torch.load runs it): judge it.
            if not _is_hostile_pickle(src):
                raise
        else:
            if dtype == "keep" and not prune:
                raise UsageError("already safetensors: pass --dtype or --prune to change it")
            return plan_from_safetensors(header, dtype, prune), None
    loaded = open_pickle(src)
    if loaded.scan.unsafe:
        raise unsafe_error(loaded.scan, str(src))
    return plan_from_pickle(loaded, dtype, prune), loaded.scan


def _is_hostile_pickle(path: Path) -> bool:
    try:
        return open_pickle(path).scan.unsafe
    except FormatError:
        return False


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"GGUF"


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < (100 << 20) and head[8:] == b"{"


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
        buf = memoryview(bytearray(8 << 20))  # reused: no allocation or page faults per read
        try:
            with open(self.path, "rb", buffering=0) as fh:
                while not self.cancelled.is_set() and (n := fh.readinto(buf)):
                    digest.update(buf[:n])
        except OSError as exc:
            self.error = exc
        self.hexdigest = digest.hexdigest()

    def stop(self) -> None:
        """Cancel and wait: no thread keeps reading the source after convert returns."""
        self.cancelled.set()
        if self.ident is not None:  # started
            self.join()


def _write_verified(
    src: Path,
    out: Path,
    plan: Plan,
    metadata: dict[str, str],
    progress: Callable[[ConvertProgress], None] | None,
    allow_nan: bool,
) -> tuple[str, tuple[NonFinite, ...]]:
    tensors = [OutTensor(i.name, i.dtype, i.shape) for i in plan.items]
    fd, tmp = create_temp(out)
    hasher = _Sha256(src)
    try:
        hasher.start()
        with (
            os.fdopen(fd, "wb") as fh,
            open(src, "rb", buffering=0) as raw,
            SafetensorsWriter(fh, tensors, metadata) as writer,
        ):
            crcs, found = _copy_tensors(StorageReader(raw), writer, plan, progress)
            if found and not allow_nan:
                fp16 = any(i.dtype == "F16" != i.source.dtype for i in plan.items)
                raise refuse(found, "the converted file", fp16)
            hasher.join()
            if hasher.error is not None:
                raise FormatError(f"cannot read the source ({hasher.error.strerror})")
            metadata["sdlib.source_sha256"] = hasher.hexdigest
            writer.rewrite_metadata(metadata)
            writer.close()
        verify_output(tmp, tensors, crcs, metadata, progress)
        os.replace(tmp, out)
    except OSError as exc:
        _discard(tmp, hasher)
        if exc.errno == errno.ENOSPC:
            raise DiskFull("no space left for the output", path=str(out)) from exc
        raise SdlibError(f"cannot write the output ({exc.strerror or exc})", path=str(out)) from exc
    except BaseException:
        _discard(tmp, hasher)
        raise
    return hasher.hexdigest, found


def _discard(tmp: Path, hasher: _Sha256) -> None:
    hasher.stop()
    with contextlib.suppress(OSError):
        tmp.unlink()


def _copy_tensors(
    reader: StorageReader,
    writer: SafetensorsWriter,
    plan: Plan,
    progress: Callable[[ConvertProgress], None] | None,
) -> tuple[list[int], tuple[NonFinite, ...]]:
    crcs = []
    sink = Sink(writer)
    # Casting an out-of-range value gives Inf, as torch does; the sink counts it, so numpy's
    # RuntimeWarnings would only repeat that on the user's terminal.
    with np.errstate(all="ignore"):
        try:
            for item in plan.items:
                crcs.append(_copy_tensor(reader, sink, item, writer, progress))
        finally:
            sink.wait()
            sink.pool.shutdown()
    return crcs, tuple(sink.check.found)


def _copy_tensor(
    reader: StorageReader,
    sink: Sink,
    item: PlanItem,
    writer: SafetensorsWriter,
    progress: Callable[[ConvertProgress], None] | None,
) -> int:
    whole = False
    for chunk in reader.chunks(item.source, item.dtype):
        whole = chunk.raw is not None
        sink.put(chunk, item.dtype)
        if progress:
            progress(ConvertProgress("write", writer.written, writer.total))
    out_crc, raw_crc = sink.take(item.name)
    if whole:
        reader.check_record(item.source.storage, raw_crc)
    # A record no tensor read whole is CRC-checked with one extra read.
    reader.verify(item.source.storage)
    return out_crc
