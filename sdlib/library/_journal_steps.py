"""One operation of an organize journal (:mod:`sdlib.library._journal`), forward (apply)
and back (undo), and how each finds itself pending, applied, half-way or blocked.

**Crash safety.** The marks are a record, not the source of truth: before acting, every
operation inspects the file system and finds itself pending, applied, half-way, or blocked
(something else changed the files; then it is skipped, never forced). Each step is atomic
or leaves a state the check recognises:

- move, same device: ``link(src, dst)`` then ``unlink(src)`` (``rename`` where hard links
  are not supported). Half-way, both names are one inode: finishing means unlinking src.
- move, across devices: copy to ``.<name>.sdlib-part`` beside dst, fsync, re-read and
  compare SHA256 with the source, ``os.replace`` to dst, fsync the folder, then unlink src.
  A part file is always a redundant copy and is removed on resume; with both src and dst
  present, dst is verified again before src is removed.
- link (dedupe): ``link(kept, tmp)``, then ``os.replace(tmp, dup)``: the name never goes
  missing and always holds the same bytes.
- reflink (dedupe, where the filesystem clones): the same with a clone for ``tmp``; undo
  leaves it, a file of its own already.
- delete (``--dedupe delete`` only): only while the kept copy exists with the same SHA256.
- mkdir: idempotent; undo removes the folder only if empty.

So bytes are never lost: nothing is unlinked before another name holds the same bytes.
And nothing outside the root is touched: right before each step (forward or back), every
path of the operation must still resolve inside the wall the plan recorded; a folder
swapped for a link to elsewhere since the plan blocks the step.
Undo runs the operations backwards with the same checks, so it too can be interrupted and
run again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from sdlib.errors import LibraryError
from sdlib.library._fileops import (
    Steps,
    copy,
    fsync_dir,
    is_link,
    name,
    part_path,
    remove,
    same_device,
    sha256,
)
from sdlib.library._reflink import reflink_over, same_blocks

if TYPE_CHECKING:
    from sdlib.library._journal import Op
    from sdlib.library.wall import Wall

__all__ = ["APPLIED", "PARTIAL", "PENDING", "Blocked", "backward", "forward", "inside_wall",
           "state_of"]  # fmt: skip

PENDING, APPLIED, PARTIAL = "pending", "applied", "partial"

Sha256Of = Callable[[str], "str | None"]


class Blocked(Exception):
    """The files are not as the plan left them: skip, never force."""


def inside_wall(op: Op, wall: Wall) -> None:
    for path in (op.path, op.dst, op.keep):
        if path is not None and not wall.holds(path):
            raise Blocked(f"{name(path)} now resolves outside the root (a link?)")


# --- one operation, forward and back ----------------------------------------------------------


def state_of(op: Op, sha256_of: Sha256Of) -> str:
    if op.action == "mkdir":
        return APPLIED if os.path.isdir(op.path) else PENDING
    if op.action == "move":
        assert op.dst is not None
        return _move_state(op, op.path, op.dst, sha256_of)
    assert op.keep is not None
    if op.action in ("link", "reflink"):
        if not (os.path.lexists(op.path) and os.path.exists(op.keep)):
            raise Blocked(f"{name(op.path)} or the copy it links to is gone")
        if is_link(op.path) or is_link(op.keep):  # made for a file: refused
            raise Blocked(f"{name(op.path)} or the copy it links to is now a link")
        if (os.path.samefile if op.action == "link" else same_blocks)(op.path, op.keep):
            return APPLIED
        _check_same(op, op.path, sha256_of)
        return PENDING
    if op.action == "delete":
        if not os.path.exists(op.keep):
            raise Blocked(f"the copy that was to stay ({name(op.keep)}) is gone")
        if not os.path.lexists(op.path):
            _check_same(op, op.keep, sha256_of)
            return APPLIED
        if os.path.samefile(op.path, op.keep):
            raise Blocked("it is the same file as the copy that stays")
        _check_same(op, op.path, sha256_of)
        return PENDING
    raise LibraryError(f"unknown journal action {op.action!r}")


def _check_same(op: Op, path: str, sha256_of: Sha256Of) -> None:
    assert op.keep is not None
    if not (sha256_of(path) == op.sha256 == sha256_of(op.keep)):
        raise Blocked(f"{name(path)} changed since the plan: not the same bytes any more")


def _move_state(op: Op, src: str, dst: str, sha256_of: Sha256Of) -> str:
    s, d = os.path.lexists(src), os.path.lexists(dst)
    if (s and is_link(src)) or (d and is_link(dst)):  # planned for files: never through one
        raise Blocked(f"{name(src if s and is_link(src) else dst)} is now a link: not moved")
    if s and not d:
        if not _matches(src, op):
            raise Blocked(f"{name(src)} changed since the plan")
        return PENDING
    if d and not s:
        if not _matches(dst, op):
            raise Blocked(f"{name(dst)} is there but is not the file that was moved")
        return APPLIED
    if s and d:
        if os.path.samefile(src, dst):
            return PARTIAL  # linked, not yet unlinked
        if _matches(dst, op) and _matches(src, op) and sha256(src) == sha256(dst):
            return PARTIAL  # copied and verified, source not yet removed
        raise Blocked(f"{name(dst)} already exists and holds other bytes")
    raise Blocked(f"{name(src)} is gone")


def forward(op: Op, state: str, sha256_of: Sha256Of, steps: Steps) -> None:
    if op.action == "mkdir":
        os.makedirs(op.path, exist_ok=True)
    elif op.action == "move":
        assert op.dst is not None
        _move(op.path, op.dst, state, steps)
    elif op.action == "link":
        assert op.keep is not None
        tmp = part_path(op.path)
        remove(tmp)
        os.link(op.keep, tmp)
        if not os.path.samefile(tmp, op.keep):  # the new name must be the kept inode
            remove(tmp)
            raise OSError(errno.EIO, f"the link beside {name(op.path)} is not the kept file")
        steps()
        os.replace(tmp, op.path)
    elif op.action == "reflink":  # a clone of the kept file, with this name's mode and mtime
        reflink_over(op.keep or "", op.path, op.mode, op.mtime_ns, steps)
    elif op.action == "delete":
        os.unlink(op.path)
    steps()


def backward(op: Op, sha256_of: Sha256Of, steps: Steps) -> None:
    if op.action == "mkdir":
        with contextlib.suppress(OSError):
            os.rmdir(op.path)  # only if empty: anything the user put there stays
        return
    if op.action == "move":
        assert op.dst is not None
        state = _move_state(op, op.dst, op.path, sha256_of) if os.path.lexists(op.dst) else None
        if state is None:
            if not os.path.lexists(op.path):
                raise Blocked(f"{name(op.path)} is gone from both places")
            remove(part_path(op.dst))
            return  # never moved, or already back
        if state != APPLIED:
            _move(op.dst, op.path, state, steps)
        return
    assert op.keep is not None
    if op.action in ("link", "reflink"):  # a reflink is a file of its own already
        if os.path.lexists(op.path) and os.path.exists(op.keep):
            if os.path.samefile(op.path, op.keep):
                _restorecopy(op, steps)  # give the name its own bytes again
            remove(part_path(op.path))
            return
        raise Blocked(f"{name(op.path)} or {name(op.keep)} is gone")
    if op.action == "delete":
        if os.path.lexists(op.path):
            remove(part_path(op.path))
            return
        if not os.path.exists(op.keep) or sha256_of(op.keep) != op.sha256:
            raise Blocked(f"cannot restore {name(op.path)}: its identical copy is gone")
        _restorecopy(op, steps)


def _move(src: str, dst: str, state: str, steps: Steps) -> None:
    tmp = part_path(dst)
    remove(tmp)  # a part file is never the only copy
    if state == PARTIAL:
        os.unlink(src)
        fsync_dir(os.path.dirname(src))
        return
    if not steps.force_copy and same_device(src, dst):
        try:
            os.link(src, dst)  # organize never moves symlinks themselves
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise Blocked(f"{name(dst)} appeared meanwhile") from None
            if os.path.lexists(dst):
                raise
            os.rename(src, dst)  # no hard links here (FAT, some shares): rename is atomic too
            fsync_dir(os.path.dirname(dst))
            return
        steps()
        os.unlink(src)
        fsync_dir(os.path.dirname(dst))
        return
    digest = copy(src, tmp)
    steps()
    if sha256(tmp) != digest:
        remove(tmp)
        raise OSError(errno.EIO, f"the copy of {name(src)} does not read back the same")
    os.replace(tmp, dst)
    fsync_dir(os.path.dirname(dst))
    steps()
    os.unlink(src)
    fsync_dir(os.path.dirname(src))


def _restorecopy(op: Op, steps: Steps) -> None:
    assert op.keep is not None
    tmp = part_path(op.path)
    digest = copy(op.keep, tmp)
    if digest != op.sha256 or sha256(tmp) != digest:
        remove(tmp)
        raise Blocked(f"the copy kept for {name(op.path)} no longer has its bytes")
    if op.mtime_ns is not None:
        os.utime(tmp, ns=(op.mtime_ns, op.mtime_ns))
    if op.mode is not None:
        os.chmod(tmp, op.mode & 0o7777)
    steps()
    os.replace(tmp, op.path)
    fsync_dir(os.path.dirname(op.path))


# --- small helpers ----------------------------------------------------------------------------


def _matches(path: str, op: Op) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (op.size is None or st.st_size == op.size) and (
        op.mtime_ns is None or st.st_mtime_ns == op.mtime_ns
    )
