"""Merge checkpoints tensor by tensor: weighted sum and add difference in tens of MiB of memory.

    result = merge_files("a.safetensors", "b.safetensors", output="ab.safetensors",
                         method="weighted-sum", alpha=0.3, dtype="fp16")

- **weighted-sum**: ``A*(1-M) + B*M``; **add-difference**: ``A + (B-C)*M``.
- Everything that can refuse a merge is decided first (``_merge_plan``): pickles are scanned
  and an unsafe one refused (nothing is created), architectures and tensor tables compared.
- Tensors are read in ranges of ``CHUNK_ELEMENTS`` elements from each input (plain reads,
  no mmap, so the page cache is not charged to us), widened to float32, combined with numpy
  and cast to the output dtype with ``_tensordata.convert`` (torch's rounding). A1111's
  merger computes in the tensors' own dtype; float32 then one cast is at least as accurate
  and gives the same result whatever the inputs' dtypes. torch is never imported.
- Chunks are written to ``.<name>.<random>.part`` by a writer thread while the next chunk is
  computed; the inputs' SHA-256 are computed on another thread (or taken from the hash cache)
  and recorded in ``__metadata__`` with the recipe. The output is re-read and checked (names,
  shapes, dtypes, metadata, a CRC-32 per tensor, ``safetensors.safe_open``) before an atomic
  ``os.replace``; any failure removes the temporary file. Inputs are never written to.
- Every output chunk is checked for NaN and Inf as written (``_finite``), as A1111's merger
  refuses a NaN model: an output holding any raises ``NonFiniteError`` naming the tensors
  and nothing is written, unless ``allow_nan``. numpy's warnings never reach the user.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sdlib.errors import DiskFull, SdlibError, UsageError
from sdlib.transform._finite import NonFinite, refuse
from sdlib.transform._merge_inputs import InputHashes, RangeReader
from sdlib.transform._merge_plan import (
    COMPONENTS,
    METHODS,
    MergePlan,
    ModelInput,
    Step,
    final_metadata,
    open_input,
    plan_merge,
    recipe_metadata,
)
from sdlib.transform._output import (
    ConvertProgress,
    Sink,
    check_output,
    crc32,
    create_temp,
    verify_output,
)
from sdlib.transform._stwriter import OutTensor, SafetensorsWriter
from sdlib.transform._tensordata import (
    CASTS,
    Source,
    convert,
    raw_dtype,
    to_float32,
)

if TYPE_CHECKING:
    from sdlib.hashcache import HashCache

__all__ = ["COMPONENTS", "METHODS", "MergeProgress", "MergeResult", "merge_files"]

#: Elements per chunk: 2 MiB of float32 per operand keeps the working set (two slots of
#: A and of the output, one of B and C, raw read buffers) near 20 MiB whatever the model
#: size; numpy's per-call overhead is negligible at this size.
CHUNK_ELEMENTS = 1 << 19
DEFAULT_ALPHA = {"weighted-sum": 0.5, "add-difference": 1.0}


@dataclass(frozen=True)
class MergeProgress:
    """A progress event: ``stage`` is ``merge`` or ``verify``; counts are output bytes."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class InputInfo:
    role: str
    path: Path
    container: str
    sha256: str
    verdict: str | None  # pickles: safe or suspicious (unsafe ones never get this far)
    findings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "role": self.role,
            "path": str(self.path),
            "container": self.container,
            "sha256": self.sha256,
            "verdict": self.verdict,
            "findings": list(self.findings),
        }


@dataclass(frozen=True)
class MergeResult:
    output: Path
    method: str
    alpha: float
    dtype: str
    components: tuple[str, ...]
    inputs: tuple[InputInfo, ...]
    tensors: int
    merged: int
    vae_tensors: int
    bytes_written: int
    first_conv: str | None
    copied: dict[str, list[str]] = field(default_factory=dict)
    not_in_a: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    #: Tensors written with NaN or Inf values (only with ``allow_nan``; else refused).
    nonfinite: tuple[NonFinite, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "output": str(self.output),
            "method": self.method,
            "alpha": self.alpha,
            "dtype": self.dtype,
            "components": list(self.components),
            "inputs": [i.to_dict() for i in self.inputs],
            "tensors": self.tensors,
            "merged": self.merged,
            "vae_tensors": self.vae_tensors,
            "bytes": self.bytes_written,
            "first_conv": self.first_conv,
            "copied": {reason: list(names) for reason, names in self.copied.items()},
            "not_in_a": list(self.not_in_a),
            "notes": list(self.notes),
            "metadata": self.metadata,
            "nonfinite": [f.to_dict() for f in self.nonfinite],
        }


def merge_files(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    c: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str],
    method: str,
    alpha: float | None = None,
    dtype: str = "keep",
    bake_vae: str | os.PathLike[str] | None = None,
    components: Sequence[str] = COMPONENTS,
    overwrite: bool = False,
    hashes: HashCache | None = None,
    allow_nan: bool = False,
    progress: Callable[[MergeProgress], None] | None = None,
) -> MergeResult:
    """Merge A with B (and C) into ``output``; see the module docstring for the guarantees.

    ``hashes`` supplies cached SHA-256 values of the inputs (and remembers new ones); without
    it they are computed while the merge runs. An output that would hold NaN or Inf raises
    ``NonFiniteError`` (nothing is written) unless ``allow_nan``; then the result's
    ``nonfinite`` lists those tensors.
    """
    alpha = _check_options(method, c, alpha, dtype, components)
    components = tuple(x for x in COMPONENTS if x in components)  # canonical order, no repeats
    out = Path(output)
    paths = {"A": Path(a), "B": Path(b)}
    if c is not None:
        paths["C"] = Path(c)
    if bake_vae is not None:
        paths["VAE"] = Path(bake_vae)
    for path in paths.values():
        if not path.is_file():
            raise UsageError("no such file", path=str(path))
        check_output(path, out, overwrite)
    opened = {role: open_input(path, role) for role, path in paths.items()}
    plan = plan_merge(
        opened["A"],
        opened["B"],
        opened.get("C"),
        opened.get("VAE"),
        dtype=dtype,
        components=components,
    )
    hasher = InputHashes(list(paths.values()), hashes)
    metadata = recipe_metadata(
        opened, plan, method, alpha, dtype, components, hasher.placeholders()
    )
    hasher.start()
    try:
        found = _write_verified(
            opened, plan, method, alpha, out, metadata, hasher, progress, allow_nan
        )
    finally:
        hasher.stop()  # on a failure: no thread keeps reading an input after we return
    infos = tuple(
        InputInfo(
            m.role,
            m.path,
            m.container,
            hasher.sha256[m.path],
            str(m.scan.verdict) if m.scan else None,
            tuple(str(f) for f in m.scan.findings) if m.scan else (),
        )
        for m in opened.values()
    )
    return MergeResult(
        out,
        method,
        alpha,
        dtype,
        tuple(components),
        infos,
        len(plan.steps),
        plan.count("merge") + plan.count("first-conv"),
        plan.count("vae"),
        out.stat().st_size,
        plan.first_conv,
        plan.copied,
        tuple(plan.not_in_a),
        tuple(plan.notes),
        metadata,
        found,
    )


def _check_options(
    method: str, c: object, alpha: float | None, dtype: str, components: Sequence[str]
) -> float:
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    if method == "add-difference" and c is None:
        raise UsageError("add-difference needs a third model C: A + (B - C) * alpha")
    if method == "weighted-sum" and c is not None:
        raise UsageError("weighted-sum merges two models; C is only used by add-difference")
    if dtype not in CASTS:
        raise UsageError(f"--dtype must be one of {', '.join(CASTS)}")
    unknown = [x for x in components if x not in COMPONENTS]
    if unknown or not components:
        raise UsageError(f"--components takes some of {', '.join(COMPONENTS)}")
    value = DEFAULT_ALPHA[method] if alpha is None else float(alpha)
    if not math.isfinite(value):
        raise UsageError("--alpha must be a finite number")
    return value


# --- writing -----------------------------------------------------------------------------------


def _write_verified(
    opened: dict[str, ModelInput],
    plan: MergePlan,
    method: str,
    alpha: float,
    out: Path,
    metadata: dict[str, str],
    hasher: InputHashes,
    progress: Callable[[MergeProgress], None] | None,
    allow_nan: bool,
) -> tuple[NonFinite, ...]:
    tensors = [OutTensor(s.name, s.dtype, s.shape) for s in plan.steps]
    placeholders = hasher.placeholders()
    fd, tmp = create_temp(out)
    try:
        with contextlib.ExitStack() as stack:
            fh = stack.enter_context(os.fdopen(fd, "wb"))
            readers = {
                role: RangeReader(stack.enter_context(open(m.path, "rb", buffering=0)))
                for role, m in opened.items()
            }
            writer = stack.enter_context(SafetensorsWriter(fh, tensors, metadata))
            sink = _CastSink(writer)
            merger = _Merger(readers, method, alpha, sink, writer.total, progress)
            crcs = merger.run(plan.steps)
            found = tuple(sink.check.found)
            if found and not allow_nan:
                fp16 = any(s.dtype == "F16" != s.a.dtype for s in plan.steps)
                raise refuse(found, "the merged model", fp16)
            sha = hasher.result()
            final_metadata(metadata, placeholders, sha)
            writer.rewrite_metadata(metadata)
            writer.close()

        def verify_progress(event: ConvertProgress) -> None:
            if progress is not None:
                progress(MergeProgress("verify", event.done, event.total))

        verify_output(tmp, tensors, crcs, metadata, verify_progress)
        os.replace(tmp, out)
    except OSError as exc:
        _discard(tmp)
        if exc.errno == errno.ENOSPC:
            raise DiskFull("no space left for the output", path=str(out)) from exc
        raise SdlibError(f"cannot write the output ({exc.strerror or exc})", path=str(out)) from exc
    except BaseException:
        _discard(tmp)
        raise
    return found


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


class _CastSink(Sink):
    """convert's writer thread, which here also does the final cast of each chunk: numpy
    releases the GIL while casting, so rounding to fp16/bf16 overlaps with reading and
    combining the next chunk on the main thread. That makes this thread the busier one,
    hence ISA-L's CRC-32 (same polynomial and values as zlib's, ~6x faster)."""

    def put_cast(self, arr: np.ndarray, src: str, dst: str, out: np.ndarray) -> None:
        self.wait()
        self.pending = self.pool.submit(self._cast_job, arr, src, dst, out)

    def _cast_job(self, arr: np.ndarray, src: str, dst: str, out: np.ndarray) -> None:
        with np.errstate(all="ignore"):  # numpy's error state is per thread
            cast = _cast(arr, src, dst, out)
        self.check.chunk(cast, dst)
        data = cast.reshape(-1).view("u1").data
        self.out_crc = crc32(data, self.out_crc)
        self.writer.write(data)


def _cast(arr: np.ndarray, src: str, dst: str, out: np.ndarray) -> np.ndarray:
    """``arr`` (raw ``src`` bits) as little-endian ``dst`` bits, rounding as torch does;
    ``out`` is a byte buffer of at least 4 bytes an element (F64 output allocates)."""
    if src == dst:
        return convert(arr, src, dst)
    if dst in ("F16", "BF16"):
        return convert(arr, src, dst, out)
    wide = to_float32(arr, src, out[: arr.size * 4].view("<f4"))
    if dst == "F32":
        return wide
    return wide.astype("<f8")  # F64 output: only when A is F64 (rare; computed in F32)


class _Merger:
    """The chunk loop. Buffers come in two slots that alternate chunk by chunk: the writer
    thread may still be casting and writing the previous chunk while this one is read and
    combined (``Sink`` keeps one chunk in flight)."""

    def __init__(
        self,
        readers: dict[str, RangeReader],
        method: str,
        alpha: float,
        sink: _CastSink,
        total: int,
        progress: Callable[[MergeProgress], None] | None,
    ) -> None:
        self.readers = readers
        self.method = method
        self.alpha = alpha
        self.sink = sink
        self.total = total
        self.progress = progress
        self.done = 0
        self.turn = 0
        self.pool: dict[tuple[str, int], bytearray] = {}

    def run(self, steps: Sequence[Step]) -> list[int]:
        # inf - inf and inf * 0 make NaN, which the sink counts and reports by tensor name;
        # numpy's RuntimeWarnings would only repeat that, raw, on the user's terminal.
        with np.errstate(all="ignore"):
            return self._run(steps)

    def _run(self, steps: Sequence[Step]) -> list[int]:
        crcs = []
        try:
            for step in steps:
                if step.action == "first-conv":
                    arr = self._first_conv(step)
                    self._put(arr, "F32", step.dtype, np.empty(arr.size * 4, "u1"))
                else:
                    numel = math.prod(step.shape)
                    for start in range(0, numel, CHUNK_ELEMENTS):
                        count = min(CHUNK_ELEMENTS, numel - start)
                        self.turn ^= 1
                        arr, dtype = self._chunk(step, start, count)
                        out = np.frombuffer(self._buf("out", count * 4), "u1")
                        self._put(arr, dtype, step.dtype, out)
                for role, src in self._sources(step):
                    self.readers[role].done(src)
                crcs.append(self.sink.take(step.name)[0])
        finally:
            self.sink.wait()
            self.sink.pool.shutdown()
        return crcs

    def _put(self, arr: np.ndarray, src: str, dst: str, out: np.ndarray) -> None:
        self.sink.put_cast(arr, src, dst, out)
        self.done += arr.size * raw_dtype(dst).itemsize
        if self.progress is not None:
            self.progress(MergeProgress("merge", self.done, self.total))

    @staticmethod
    def _sources(step: Step) -> list[tuple[str, Source]]:
        if step.action == "vae":
            assert step.vae is not None
            return [("VAE", step.vae)]
        pairs = [("A", step.a), ("B", step.b), ("C", step.c)]
        return [(role, src) for role, src in pairs if src is not None]

    def _chunk(self, step: Step, start: int, count: int) -> tuple[np.ndarray, str]:
        """This chunk's values before the output cast, and their dtype."""
        if step.action in ("copy", "vae"):
            role, src = self._sources(step)[0]
            size = raw_dtype(src.dtype).itemsize * count
            return self.readers[role].read(src, start, count, self._buf("raw", size)), src.dtype
        assert step.b is not None
        a = self._float("A", step.a, start, count)
        b = self._float("B", step.b, start, count)
        c = self._float("C", step.c, start, count) if step.c is not None else None
        self._combine(a, b, c)
        return a, "F32"

    def _combine(self, a: np.ndarray, b: np.ndarray, c: np.ndarray | None) -> None:
        """In place into ``a``: A*(1-M) + B*M, or A + (B-C)*M (``b`` is scratch)."""
        if c is None:
            a *= np.float32(1 - self.alpha)
            b *= np.float32(self.alpha)
        else:
            b -= c
            b *= np.float32(self.alpha)
        a += b

    def _first_conv(self, step: Step) -> np.ndarray:
        """A1111: merge the first ``channels`` input channels, keep A's extra ones."""
        assert step.b is not None
        a = self._float("A", step.a, 0, math.prod(step.shape), fresh=True).reshape(step.shape)
        n = step.channels
        b = self._float("B", step.b, 0, math.prod(step.b.shape), fresh=True).reshape(step.b.shape)
        c = None
        if step.c is not None:
            c = self._float("C", step.c, 0, b.size, fresh=True).reshape(step.b.shape)
        head = np.ascontiguousarray(a[:, :n])
        self._combine(head, b, c)
        a[:, :n] = head
        return a.reshape(-1)

    def _float(
        self, role: str, src: Source, start: int, count: int, fresh: bool = False
    ) -> np.ndarray:
        """Elements of ``src`` as float32, in this slot's buffer for ``role``."""
        if fresh:
            target = np.empty(count, "<f4")
        else:  # only A's buffer is handed to the writer (as the F32 result): it alternates
            target = np.frombuffer(self._buf(f"f{role}", count * 4, role == "A"), "<f4", count)
        reader = self.readers[role]
        if src.dtype == "F32" and not src.storage.big_endian:
            raw = reader.read(src, start, count, target.view("u1").data)
            if raw.ctypes.data != target.ctypes.data:
                np.copyto(target, raw)
            return target
        size = raw_dtype(src.dtype).itemsize * count
        buf = memoryview(bytearray(size)) if fresh else self._buf(f"raw{role}", size, False)
        return to_float32(reader.read(src, start, count, buf), src.dtype, target)

    def _buf(self, name: str, nbytes: int, slot: bool = True) -> memoryview:
        """A reusable buffer; ``slot`` ones alternate chunk by chunk (the writer's input)."""
        key = (name, self.turn if slot else 0)
        buf = self.pool.get(key)
        if buf is None or len(buf) < nbytes:
            buf = self.pool[key] = bytearray(nbytes)
        return memoryview(buf)
