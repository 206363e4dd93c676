"""Make and remove folder links without ever following one.

A symlink is made with ``os.symlink``; a Windows junction with ``_winapi.CreateJunction``
(no admin rights needed, local volumes only). Removal removes the name only: ``os.unlink``
on a symlink, ``os.rmdir`` on a Windows directory link or junction (which deletes the reparse
point, never what it leads to), and only after checking that the name is still a link to the
target sdlib made. Nothing here walks into a link or calls ``shutil.rmtree``.
"""

from __future__ import annotations

import os
import stat
import sys

from sdlib.errors import UsageError

__all__ = ["is_junction", "is_link", "link_target", "make_link", "remove_link", "same_target"]


def is_junction(path: str) -> bool:
    """A Windows junction (mount-point reparse point); never true elsewhere."""
    if sys.platform != "win32":
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    tag = getattr(st, "st_reparse_tag", 0)
    return bool(tag == getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", 0xA0000003))


def is_link(path: str) -> bool:
    """A symlink or a junction: a name that leads somewhere else."""
    return os.path.islink(path) or is_junction(path)


def link_target(path: str) -> str | None:
    """Where the link ``path`` leads (as written in it), or None if it is not a link."""
    if not is_link(path):
        return None
    try:
        target = os.readlink(path)
    except OSError:
        return None
    if sys.platform == "win32" and target.startswith("\\\\?\\"):
        target = target[4:]
    return target


def same_target(path: str, target: str) -> bool:
    """``path`` is a link whose written target is ``target``."""
    written = link_target(path)
    if written is None:
        return False
    norm = os.path.normcase
    return norm(os.path.normpath(written)) == norm(os.path.normpath(target))


def make_link(method: str, target: str, path: str) -> None:
    """A ``symlink`` or ``junction`` named ``path`` leading to the folder ``target``."""
    if method == "symlink":
        os.symlink(target, path, target_is_directory=True)
    elif method == "junction":
        if sys.platform != "win32":
            raise UsageError("junctions exist on Windows only; use --method symlink")
        import _winapi

        _winapi.CreateJunction(target, path)  # type: ignore[attr-defined,unused-ignore]
    else:  # pragma: no cover - callers pass one of the two
        raise ValueError(method)


def remove_link(path: str) -> None:
    """Remove the link ``path`` itself (never what it leads to)."""
    if not is_link(path):
        raise UsageError(f"{path} is not a link: not removed")
    if sys.platform == "win32" and (is_junction(path) or os.path.isdir(path)):
        os.rmdir(path)  # a directory link or junction: rmdir removes the reparse point only
    else:
        os.unlink(path)
