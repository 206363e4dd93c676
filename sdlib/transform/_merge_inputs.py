"""The merge's inputs: their SHA-256 on a second core, and element ranges of their tensors."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from sdlib.errors import FormatError, SdlibError
from sdlib.transform._output import crc32
from sdlib.transform._tensordata import Source, StorageReader, raw_dtype

if TYPE_CHECKING:
    from sdlib.hashcache import HashCache


class _Cancelled(Exception):
    """Raised from the hash cache's progress callback to stop hashing a cancelled merge."""


class InputHashes(threading.Thread):
    """SHA-256 of each input (cache first) on a second core while the merge runs."""

    def __init__(self, paths: list[Path], cache: HashCache | None) -> None:
        super().__init__(daemon=True, name="sdlib-merge-sha256")
        self.paths = list(dict.fromkeys(paths))
        self.cache = cache
        self.sha256: dict[Path, str] = {}
        self.error: BaseException | None = None
        self.cancelled = threading.Event()

    def placeholders(self) -> dict[Path, str]:
        """Distinct stand-ins of the final length (the header is rewritten once known)."""
        return {p: f"{i:x}" * 64 for i, p in enumerate(self.paths)}

    def run(self) -> None:
        try:
            for path in self.paths:
                if self.cancelled.is_set():
                    return
                self.sha256[path] = self._one(path)
        except _Cancelled:
            return
        except BaseException as exc:  # reported in the caller's thread by result()
            self.error = exc

    def _one(self, path: Path) -> str:
        if self.cache is not None:
            # The cache hashes a missing file in one go; its progress callback is where
            # a cancelled merge stops it (nothing is stored for a file not read to the end).
            return self.cache.get(path, self._progress)[0].sha256.lower()
        digest = hashlib.sha256()
        buf = memoryview(bytearray(8 << 20))  # reused: no allocation or page faults per read
        with open(path, "rb", buffering=0) as fh:
            while not self.cancelled.is_set() and (n := fh.readinto(buf)):
                digest.update(buf[:n])
        return digest.hexdigest()

    def _progress(self, _nbytes: int) -> None:
        if self.cancelled.is_set():
            raise _Cancelled

    def stop(self) -> None:
        """Cancel and wait, so no thread reads an input (or uses the cache) after merge
        returns: the caller may close the cache right after."""
        self.cancelled.set()
        if self.ident is not None:  # started
            self.join()

    def result(self) -> dict[Path, str]:
        self.join()
        if self.error is not None:
            if isinstance(self.error, SdlibError):
                raise self.error
            raise FormatError(f"cannot hash an input ({self.error})") from self.error
        return {p: self.sha256[p] for p in self.paths}


class RangeReader:
    """Element ranges of one input's tensors, raw (uncast), read into the caller's buffers.

    Stored contiguous tensors (every safetensors tensor, nearly every pickle one) are read
    range by range; strided or deflated pickle tensors are read whole once by
    ``StorageReader``. Pickle storages are CRC-checked like ``convert`` does.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.storages = StorageReader(fh)
        self._whole: np.ndarray | None = None
        self._crc = 0

    def read(self, src: Source, start: int, count: int, buf: memoryview) -> np.ndarray:
        dt = raw_dtype(src.dtype, src.storage.big_endian)
        if src.storage.method != 0 or not src.contiguous():
            if self._whole is None:
                self._whole = next(iter(self.storages.chunks(src, src.dtype))).data
            return self._whole[start : start + count]
        n = count * dt.itemsize
        view = buf[:n]
        self.fh.seek(src.storage.offset + (src.offset + start) * dt.itemsize)
        if self.fh.readinto(view) != n:  # type: ignore[attr-defined]
            raise FormatError("a tensor is shorter than its header says")
        if self._whole_record(src):
            self._crc = crc32(view, self._crc)
        return np.frombuffer(view, dtype=dt)

    def done(self, src: Source) -> None:
        """After a tensor's last range: check its storage's CRC (pickles record them)."""
        if self._whole_record(src):
            self.storages.check_record(src.storage, self._crc)
        self.storages.verify(src.storage)
        self._crc, self._whole = 0, None

    @staticmethod
    def _whole_record(src: Source) -> bool:
        return bool(src.storage.crc) and src.storage.method == 0 and src.covers_storage()
