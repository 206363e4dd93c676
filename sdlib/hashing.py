"""Every hash Civitai publishes, from ONE read of a file.

SHA256, AutoV1, AutoV2, AutoV3, CRC32 and BLAKE3, in Civitai's exact conventions
(uppercase hex; AutoV1 only for files of 2 MiB or more; AutoV3 only for safetensors, over
the bytes after the header; CRC32 printed little-endian, as .NET does). The file is read
once into a small pool of buffers; each hasher runs in its own thread (hashlib, blake3 and
zlib release the GIL on large buffers), so the wall time stays near that of SHA256 alone.

``Hasher`` is the streaming core, fed by ``hash_file`` and by the downloader as bytes
arrive; it never touches the disk itself.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from blake3 import blake3

from sdlib.errors import FormatError

try:  # ISA-L's CRC32 is ~6x faster than zlib's; same polynomial, same result.
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal has wheels for the common platforms
    _crc32 = zlib.crc32

AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
AUTOV1_MIN_SIZE = 0x200000
CHUNK = 8 << 20
#: A safetensors header larger than this is not a header (the format's own cap is 100 MB).
MAX_HEADER = 100_000_000

HASH_NAMES = ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3")


@dataclass(frozen=True, slots=True)
class FileHashes:
    """The six hashes of one file; ``None`` where Civitai publishes none."""

    size: int
    sha256: str
    autov1: str | None
    autov2: str
    autov3: str | None
    crc32: str
    blake3: str
    #: AutoV3 in full (64 characters), as Civitai's scanner stored it before its database
    #: began keeping 12. Known only when the bytes were just hashed (not from the hash cache),
    #: so it takes no part in equality and is not in ``to_dict``.
    autov3_full: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["autov3_full"]
        return out

    def get(self, kind: str) -> str | None:
        """A hash by Civitai's name (``SHA256``, ``AutoV2``...) or ours, case-insensitive."""
        name = kind.lower()
        if name not in HASH_NAMES:
            raise KeyError(kind)
        value: str | None = getattr(self, name)
        return value

    def matches(self, published: dict[str, str]) -> list[str]:
        """Names of the hashes in ``published`` (Civitai's ``hashes`` dict) that differ."""
        bad = []
        for kind, value in published.items():
            try:
                ours = self.get(kind)
            except KeyError:
                continue  # a hash type we do not know: nothing to compare
            if ours is not None and value and ours.upper() != str(value).upper():
                bad.append(kind)
        return bad


def safetensors_body_offset(head: bytes, size: int) -> int | None:
    """Where the tensor data of a safetensors file starts, or None if it is not safetensors.

    ``head`` is at least the first 9 bytes of the file; ``size`` the total size.
    """
    if len(head) < 9:
        return None
    n: int = struct.unpack("<Q", head[:8])[0]
    if n < 2 or n > MAX_HEADER or 8 + n > size or head[8:9] != b"{":
        return None
    return 8 + n


class Hasher:
    """Streaming six-way hasher. Feed it the file's bytes in order, then call ``result``.

    ``threads=True`` hashes each buffer in worker threads; a buffer passed to ``update``
    must then stay unchanged until ``wait_done`` says it was hashed (``hash_file`` recycles buffers
    that way). With ``threads=False`` it works inline (for small inputs and the downloader's
    own threads).
    """

    def __init__(self, size_hint: int | None = None, *, threads: bool = False) -> None:
        self._sha = hashlib.sha256()
        self._b3 = blake3()
        self._crc = 0
        self._v3: Any = None
        self._v3_start: int | None = None
        self._decided = False
        self._head = bytearray()
        self._v1 = bytearray()
        self._pos = 0
        self._size_hint = size_hint
        self._workers: list[_Worker] = []
        self._fed = 0
        if threads:
            # SHA256 alone in one thread is what keeps pace with the disk; the cheap hashes
            # share a second, and AutoV3's second SHA256 stream (safetensors only) a third.
            self._workers = [
                _Worker(self._sha.update),
                _Worker(self._b3_crc),
                _Worker(self._v3_update),
            ]

    # -- per-hasher work, run inline or in a worker -------------------------------------------
    def _b3_crc(self, data: memoryview) -> None:
        self._b3.update(data)
        self._crc = _crc32(data, self._crc)

    def _v3_update(self, data: memoryview, v3_from: int = -1) -> None:
        if v3_from >= 0 and self._v3 is not None:
            self._v3.update(data[v3_from:])

    # -- feeding -----------------------------------------------------------------------------
    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return
        start = self._pos
        self._pos += n
        self._capture_head(view, start)
        self._capture_autov1(view, start)
        # Where, in this buffer, the AutoV3 body starts (-1: not in this buffer, or never).
        v3_from = -1
        if self._v3_start is not None and self._pos > self._v3_start:
            v3_from = max(0, self._v3_start - start)
        if self._workers:
            self._workers[0].put(view)
            self._workers[1].put(view)
            self._workers[2].put(view, v3_from)
            self._fed += 1
        else:
            self._sha.update(view)
            self._b3_crc(view)
            self._v3_update(view, v3_from)

    def _capture_head(self, view: memoryview, start: int) -> None:
        # AutoV3 needs the header length, which sits in the first 8 bytes; we decide after
        # 9 bytes (the '{' that opens the JSON header) whether this is safetensors at all.
        if self._decided:
            return
        self._head += view[: max(0, 9 - start)]
        if len(self._head) < 9:
            return
        self._decided = True
        size = self._size_hint if self._size_hint is not None else 1 << 62
        offset = safetensors_body_offset(bytes(self._head[:9]), size)
        if offset is not None:
            self._v3 = hashlib.sha256()
            self._v3_start = offset

    def _capture_autov1(self, view: memoryview, start: int) -> None:
        lo, hi = AUTOV1_OFFSET, AUTOV1_OFFSET + AUTOV1_LENGTH
        end = start + len(view)
        if end <= lo or start >= hi:
            return
        self._v1 += view[max(lo, start) - start : min(hi, end) - start]

    @property
    def fed(self) -> int:
        """How many buffers ``update`` has queued so far."""
        return self._fed

    def wait_done(self, count: int) -> None:
        """Block until the workers have hashed the first ``count`` buffers queued."""
        for worker in self._workers:
            worker.wait_done(count)

    def close(self) -> None:
        """Stop the worker threads without a result (a download being abandoned)."""
        for worker in self._workers:
            worker.close()

    def result(self) -> FileHashes:
        self.close()
        for worker in self._workers:
            worker.raise_error()
        size = self._pos
        sha = self._sha.hexdigest().upper()
        autov3 = autov3_full = None
        if self._v3 is not None and self._v3_start is not None and size >= self._v3_start:
            autov3_full = self._v3.hexdigest().upper()
            autov3 = autov3_full[:12]
        autov1 = None
        if size >= AUTOV1_MIN_SIZE:
            autov1 = hashlib.sha256(self._v1).hexdigest().upper()[:8]
        crc = (self._crc & 0xFFFFFFFF).to_bytes(4, "little").hex().upper()
        return FileHashes(
            size=size,
            sha256=sha,
            autov1=autov1,
            autov2=sha[:10],
            autov3=autov3,
            crc32=crc,
            blake3=self._b3.hexdigest().upper(),
            autov3_full=autov3_full,
        )


class _Worker:
    """One thread applying one function to a stream of buffers, in order."""

    def __init__(self, func: Callable[..., None]) -> None:
        self._func = func
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._done = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._func(*item)
            except BaseException as exc:  # surfaced by raise_error in the caller's thread
                self._error = exc
            with self._cond:
                self._done += 1
                self._cond.notify_all()

    def put(self, *args: Any) -> None:
        self._queue.put(args)

    def wait_done(self, count: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._done >= count)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


ProgressCallback = Callable[[int], None]


class Readable(Protocol):
    def readinto(self, buffer: bytearray, /) -> int | None: ...


def hash_stream(
    fh: Readable, size: int | None = None, progress: ProgressCallback | None = None
) -> FileHashes:
    """Hash everything readable from ``fh`` in one pass."""
    threaded = size is None or size > 4 * CHUNK
    hasher = Hasher(size, threads=threaded)
    # A few buffers in rotation: the workers hash some while the next is read.
    buffers = [bytearray(CHUNK) for _ in range(4 if threaded else 1)]
    i = 0
    try:
        while True:
            buf = buffers[i % len(buffers)]
            if threaded and i >= len(buffers):
                # The buffer we are about to refill was queued as number i - len + 1.
                hasher.wait_done(i - len(buffers) + 1)
            n = fh.readinto(buf)
            if not n:
                break
            hasher.update(memoryview(buf)[:n])
            if progress is not None:
                progress(n)
            i += 1
    finally:
        result = hasher.result()
    return result


def hash_file(path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> FileHashes:
    """Hash a file in one read. See ``sdlib.hashcache`` for the cached variant."""
    path = Path(path)
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            result = hash_stream(fh, size, progress)
    except IsADirectoryError:
        raise FormatError("is a directory, not a file", path=str(path)) from None
    except FileNotFoundError:
        raise FormatError("no such file", path=str(path)) from None
    except PermissionError:
        raise FormatError("permission denied", path=str(path)) from None
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if result.size != size:
        raise FormatError("file changed while it was being hashed", path=str(path))
    return result
