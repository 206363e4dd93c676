"""Every hash Civitai publishes, from ONE read of a file.

SHA256, AutoV1, AutoV2, AutoV3, CRC32 and BLAKE3, in Civitai's exact conventions
(uppercase hex; AutoV1 only for files of 2 MiB or more; AutoV3 only for safetensors, over
the bytes after the header; CRC32 printed little-endian, as .NET does). The file is read
once, into a few reused page-aligned buffers, by as many threads as there are cores (at
most three); each thread reads or runs whichever hash is furthest behind on buffers already
read (``sdlib._hashpool``). hashlib, blake3 and ISA-L release the GIL for the whole of a
4 MiB update, so the wall time is that of SHA256 alone for most files, and for safetensors
(AutoV3 is a second SHA256 stream) the whole work divided by the cores.

``Hasher`` is the streaming core, fed by ``hash_file`` and by the downloader as bytes
arrive; it never touches the disk itself.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from blake3 import blake3

from sdlib._hashpool import Chunk, ChunkPool, give_back, take_buffer, usable_cores
from sdlib.errors import FormatError

try:  # ISA-L's CRC32 is ~6x faster than zlib's; same polynomial, same result.
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal has wheels for the common platforms
    _crc32 = zlib.crc32

AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
AUTOV1_MIN_SIZE = 0x200000
#: Bytes per read (4 MiB: a buffer every hash reads while it is still in the CPU's cache).
CHUNK = 4 << 20
#: Buffers ``hash_file`` reads ahead of the slowest hash (they are reused in turn).
_WINDOW = 6
#: Seconds between two progress reports of a threaded ``hash_file``.
_PROGRESS_EVERY = 0.1
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


#: The stages a threaded ``Hasher`` runs, longest first (ties go to the earlier one).
_SHA, _V3, _B3_CRC = 0, 1, 2


class Hasher:
    """Streaming six-way hasher. Feed it the file's bytes in order, then call ``result``.

    ``threads=True`` hashes each buffer in worker threads (see ``sdlib._hashpool``); a
    buffer passed to ``update`` must then stay unchanged until ``wait_done`` says it was
    hashed (``hash_file`` and the downloader recycle buffers that way). With
    ``threads=False`` it works inline (for small inputs).
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
        self._pool: ChunkPool | None = None
        if threads:
            self._pool = ChunkPool(self._stages(), _worker_count()).start()

    def _stages(self) -> list[Callable[[Chunk], None]]:
        return [self._sha_update, self._v3_update, self._b3_crc]

    # -- per-hasher work, run inline or by the pool ----------------------------------------------
    def _sha_update(self, chunk: Chunk) -> None:
        self._sha.update(chunk.view)

    def _b3_crc(self, chunk: Chunk) -> None:
        self._b3.update(chunk.view)
        self._crc = _crc32(chunk.view, self._crc)

    def _v3_update(self, chunk: Chunk) -> None:
        if chunk.v3_from >= 0 and self._v3 is not None:
            self._v3.update(chunk.view[chunk.v3_from :])

    # -- feeding -----------------------------------------------------------------------------
    def update(self, data: bytes | bytearray | memoryview) -> None:
        chunk = self._chunk(data)
        if chunk is None:
            return
        if self._pool is not None:
            self._pool.put(chunk)
        else:
            for stage in self._stages():
                stage(chunk)

    def _chunk(self, data: bytes | bytearray | memoryview) -> Chunk | None:
        """The next buffer as a ``Chunk`` (None if empty), after taking what AutoV1 and the
        safetensors test need from it. Called for every buffer, in order, by one thread."""
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return None
        start = self._pos
        self._pos += n
        self._capture_head(view, start)
        self._capture_autov1(view, start)
        # Where, in this buffer, the AutoV3 body starts (-1: not in this buffer, or never).
        v3_from = -1
        if self._v3_start is not None and self._pos > self._v3_start:
            v3_from = max(0, self._v3_start - start)
        return Chunk(view, v3_from)

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
        elif self._pool is not None:
            self._pool.retire(_V3)  # no second SHA256 stream to wait for

    def _capture_autov1(self, view: memoryview, start: int) -> None:
        lo, hi = AUTOV1_OFFSET, AUTOV1_OFFSET + AUTOV1_LENGTH
        end = start + len(view)
        if end <= lo or start >= hi:
            return
        self._v1 += view[max(lo, start) - start : min(hi, end) - start]

    @property
    def fed(self) -> int:
        """How many buffers ``update`` has queued so far."""
        return self._pool.count if self._pool is not None else 0

    def wait_done(self, count: int) -> None:
        """Block until the workers have hashed the first ``count`` buffers queued."""
        if self._pool is not None:
            self._pool.wait_done(count)

    def close(self) -> None:
        """Stop the worker threads without a result (a download being abandoned)."""
        if self._pool is not None:
            self._pool.close()

    def result(self) -> FileHashes:
        if self._pool is not None:
            self._pool.finish()
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


def _worker_count() -> int:
    # One thread per core the stages can use: SHA256, AutoV3's SHA256 and BLAKE3+CRC32.
    return min(usable_cores(), 3)


ProgressCallback = Callable[[int], None]


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def hash_stream(
    fh: Readable, size: int | None = None, progress: ProgressCallback | None = None
) -> FileHashes:
    """Hash everything readable from ``fh`` in one pass."""
    if size is not None and size <= 2 * CHUNK:  # threads pay off from about 8 MiB
        hasher = Hasher(size)
        buffer = take_buffer(CHUNK)
        try:
            view = memoryview(buffer)
            while n := fh.readinto(view):
                hasher.update(view[:n])
                if progress is not None:
                    progress(n)
            return hasher.result()
        finally:
            give_back([buffer])
    return _hash_threaded(fh, size, progress)


def _hash_threaded(fh: Readable, size: int | None, progress: ProgressCallback | None) -> FileHashes:
    """The pool's own threads read ``fh`` into a few reused buffers and hash them; this
    thread only reports progress, a few times a second (a callback never runs in a worker)."""
    hasher = Hasher(size)
    buffers: list[mmap.mmap | None] = [None] * _WINDOW
    read_total = 0

    def read(slot: int) -> Chunk | None:
        nonlocal read_total
        buf = buffers[slot]
        if buf is None:  # taken on first use: the first read need not wait for all of them
            buf = buffers[slot] = take_buffer(CHUNK)
        view = memoryview(buf)
        n = fh.readinto(view)
        if not n:
            return None
        read_total += n
        return hasher._chunk(view[:n])

    pool = ChunkPool(hasher._stages(), _worker_count(), source=read, window=_WINDOW)
    hasher._pool = pool  # so that a file found not to be safetensors retires AutoV3's stage
    pool.start()
    try:
        reported = 0
        finished = False
        while not finished:
            finished = pool.wait_finished(_PROGRESS_EVERY)
            if progress is not None and read_total > reported:
                progress(read_total - reported)
                reported = read_total
        return hasher.result()
    finally:
        pool.close()  # joins the threads: nothing uses the buffers any more
        give_back(buffers)


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
