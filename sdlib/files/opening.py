"""Open a model file for reading, refusing anything that is not a regular file.

A FIFO given where a model belongs would block ``open`` until some process writes to it
(and a character device such as ``/dev/zero`` never ends), so every reader stats first and
opens with ``O_NONBLOCK`` where the platform has it: a special file is refused at once with
a one-line ``FormatError`` instead of hanging a batch. OS errors become ``FormatError`` too,
with the reason a user can act on.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from sdlib.errors import FormatError

__all__ = ["UNREADABLE_PREFIXES", "check_regular", "open_regular", "os_problem", "printable"]

#: ``FormatError`` messages (and scan ``problem`` texts) that mean "sdlib may not or cannot
#: read this file", as opposed to "its bytes are malformed".
UNREADABLE_PREFIXES = (
    "permission denied", "not a regular file", "cannot read", "no such file", "is a directory",
)  # fmt: skip


def _special(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    what = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a special file"
    )  # fmt: skip
    return f"not a regular file ({what})"


def os_problem(exc: OSError) -> str:
    """One line for an OS error on a file, without the path (the caller adds it)."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if exc.errno == errno.ELOOP:
        return "cannot read: a loop of symbolic links"
    return f"cannot read: {exc.strerror or exc}"


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat(path)`` if it is a regular file; else a ``FormatError`` saying what it is."""
    where = printable(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FormatError(os_problem(exc), path=where) from None
    problem = _special(st.st_mode)
    if problem:
        raise FormatError(problem, path=where)
    return st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "rb")`` for a regular file; special files are refused without blocking."""
    where = printable(path)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FormatError(os_problem(exc), path=where) from None
    try:
        problem = _special(os.fstat(fd).st_mode)
        if problem:
            raise FormatError(problem, path=where)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` as text that can always be printed, logged or stored: bytes that are not
    UTF-8 in a file name (kept by Python as lone surrogates) become ``\\xNN``."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text
