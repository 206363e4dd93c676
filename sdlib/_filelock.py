"""An exclusive, non-blocking OS lock on an open file (fcntl on POSIX, msvcrt on Windows).

The OS drops the lock when the process dies, even by kill -9, so a crashed download never
leaves a stale lock behind.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

# msvcrt locks byte ranges; lock one byte far past any real file so writes are not blocked.
_WIN_LOCK_OFFSET = 1 << 40


def try_lock(fh: BinaryIO) -> bool:
    """Lock ``fh`` exclusively; False if another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        pos = fh.tell()
        try:
            fh.seek(_WIN_LOCK_OFFSET)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
        finally:
            fh.seek(pos)
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def unlock(fh: BinaryIO) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        pos = fh.tell()
        try:
            fh.seek(_WIN_LOCK_OFFSET)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        finally:
            fh.seek(pos)
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
