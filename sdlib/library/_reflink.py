"""Reflinks (copy-on-write clones): a second file that shares the first one's blocks.

Linux only, through the ``FICLONE`` ioctl, which is what ``cp --reflink=always`` does: Btrfs,
XFS (made with reflink=1, the default since xfsprogs 5.1), bcachefs, and others that
implement it. A clone is its own file (own inode, mode and mtime): writing to one name never
changes the other, and deleting one frees nothing until both are gone. Whether a folder's
filesystem can clone is found by trying it on two temporary files there, never guessed from
the filesystem's name. Elsewhere (macOS ``clonefile``, Windows block cloning on ReFS: not
done yet) nothing is cloned and callers fall back to hard links.

``same_blocks`` tells two files that already share every block (a clone made earlier) by
their extent maps (``FS_IOC_FIEMAP``), so a second dedupe does not clone them again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import struct
import sys
from collections.abc import Callable

__all__ = ["can_reflink", "clone", "reflink_over", "same_blocks"]

_FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
_FIEMAP_FLAG_SYNC = 0x1
_HEAD = struct.Struct("=QQIIII")  # struct fiemap, before its extents
_EXTENT = struct.Struct("=QQQ2QI3I")  # struct fiemap_extent
_MAX_EXTENTS = 256
_LINUX = sys.platform.startswith("linux")


def clone(src: str, dst: str) -> None:
    """Make ``dst`` (a new file) a reflink of ``src``; OSError where it cannot be (the
    filesystem has no reflinks: EOPNOTSUPP, EINVAL, EXDEV...). ``dst`` is removed again on
    failure."""
    if not _LINUX:
        raise OSError(errno.EOPNOTSUPP, "reflinks are made on Linux only")
    import fcntl

    fd_in = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd_out, _FICLONE, fd_in)
            os.fsync(fd_out)
        except OSError:
            os.close(fd_out)
            with contextlib.suppress(OSError):
                os.unlink(dst)
            raise
        os.close(fd_out)
    finally:
        os.close(fd_in)


def can_reflink(directory: str) -> bool:
    """Whether files in ``directory`` can be cloned there (tried, then removed)."""
    if not _LINUX:
        return False
    base = os.path.join(directory, f".sdlib-reflink-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(base, "xb") as fh:
            fh.write(b"sdlib")
        clone(base, base + ".clone")
    except OSError:
        return False
    finally:
        for path in (base + ".clone", base):
            with contextlib.suppress(OSError):
                os.unlink(path)
    return True


def _extents(path: str) -> list[tuple[int, int, int]] | None:
    """(logical, physical, length) of each extent, or None when unknown (no FIEMAP, too many
    extents to compare)."""
    if not _LINUX:
        return None
    import fcntl

    buf = bytearray(_HEAD.size + _EXTENT.size * _MAX_EXTENTS)
    _HEAD.pack_into(buf, 0, 0, 0xFFFFFFFFFFFFFFFF, _FIEMAP_FLAG_SYNC, 0, _MAX_EXTENTS, 0)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    mapped = _HEAD.unpack_from(buf, 0)[3]
    if mapped >= _MAX_EXTENTS:
        return None
    out = []
    for i in range(mapped):
        logical, physical, length, *_ = _EXTENT.unpack_from(buf, _HEAD.size + i * _EXTENT.size)
        out.append((logical, physical, length))
    return out


def same_blocks(a: str, b: str) -> bool:
    """``a`` and ``b`` are separate files whose data sits in the very same blocks (one is a
    reflink of the other); False when unsure."""
    ea, eb = _extents(a), _extents(b)
    return bool(ea) and ea == eb


def reflink_over(
    keep: str, path: str, mode: int | None, mtime_ns: int | None, step: Callable[[], None]
) -> None:
    """Replace the file ``path`` by a clone of ``keep`` holding ``path``'s mode and mtime:
    the clone is made beside it under a part name, then renamed over it, so the name never
    goes missing and always holds the same bytes (dedupe checked they are the same)."""
    from sdlib.library._fileops import part_path, remove

    tmp = part_path(path)
    remove(tmp)
    clone(keep, tmp)
    if mode is not None:
        os.chmod(tmp, mode & 0o7777)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    step()
    os.replace(tmp, path)
