"""Small, careful file operations for the organize journal: part files, verified copies
that keep sparse files sparse, folder fsyncs (POSIX; NTFS journals metadata itself), and
the journal's test hooks (crash after N steps, pause at each)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO


def same_device(src: str, dst: str) -> bool:
    try:
        return os.stat(src).st_dev == os.stat(os.path.dirname(dst)).st_dev
    except OSError:
        return False


def part_path(path: str) -> str:
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)[:180]}.sdlib-part")


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_link(path: str) -> bool:
    """A symlink or a Windows junction (a name that leads elsewhere)."""
    junction = getattr(os.path, "isjunction", None)  # Python 3.12+
    return os.path.islink(path) or bool(junction is not None and junction(path))


def name(path: str) -> str:
    return os.path.basename(path)


def copy(src: str, dst: str) -> str:
    """Copy bytes (and mtime, mode) to the part file ``dst``, fsynced; the SHA256 of what
    was read. A part file left by a crash (maybe read-only, like its source) is replaced."""
    remove(dst)
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        pump(fin, fout, h)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return h.hexdigest().upper()


ZEROS = bytes(8 << 20)


def pump(fin: BinaryIO, fout: BinaryIO, h: Any) -> None:
    """Copy, leaving holes where the source reads as zeros (sparse files stay sparse)."""
    total = 0
    while chunk := fin.read(len(ZEROS)):
        h.update(chunk)
        total += len(chunk)
        if chunk == ZEROS[: len(chunk)]:
            fout.seek(len(chunk), os.SEEK_CUR)
        else:
            fout.write(chunk)
    fout.truncate(total)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest().upper()


def fsync_dir(directory: str | Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync; NTFS journals metadata itself
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Steps:
    """Test hooks of the journal: crash after N steps, or pause at each step."""

    def __init__(self) -> None:
        raw = os.environ.get("SDLIB_TEST_CRASH_AFTER", "")
        self.crash_after = int(raw) if raw.strip().isdigit() else None
        self.delay = float(os.environ.get("SDLIB_TEST_STEP_DELAY", "0") or 0)
        self.force_copy = os.environ.get("SDLIB_TEST_FORCE_COPY") == "1"
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if self.crash_after is not None and self.count >= self.crash_after:
            os._exit(137)
        if self.delay:
            time.sleep(self.delay)
