"""Operations on single files the user names: hash them, say what they are.

``sdlib hash`` and ``sdlib inspect`` (and scripts) call these; neither prints. A file that
cannot be read raises an ``SdlibError`` with the file named, so a caller looping over many
files reports it and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.hashing import FileHashes
    from sdlib.inspect import InspectReport
    from sdlib.services._context import Context

__all__ = ["HashOutcome", "hash_path", "inspect_path"]


@dataclass(frozen=True)
class HashOutcome:
    path: Path
    hashes: FileHashes
    #: Taken from the hash cache: the file was not read.
    cached: bool


def hash_path(
    ctx: Context | None,
    path: str | os.PathLike[str],
    *,
    on_start: Callable[[int], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> HashOutcome:
    """All six hashes of ``path`` in one read (SHA256, AutoV1/V2/V3, CRC32, BLAKE3).

    With a context, answers come from (and go to) its hash cache, keyed by device, inode,
    size and modification time; ``ctx=None`` always reads the file. ``on_start`` hears the
    size before a read starts (not called for a cached answer), ``on_bytes`` each chunk.
    """
    from sdlib.files.opening import check_regular
    from sdlib.hashcache import HashCache

    path = Path(path)
    size = check_regular(path).st_size  # a FIFO or device is refused, never waited on
    cache = ctx.hashes if ctx is not None else HashCache(None)
    try:
        known = cache.lookup(path)
        if known is not None:
            return HashOutcome(path, known, True)
        if on_start is not None:
            on_start(size)
        hashes, cached = cache.get(path, on_bytes)
        return HashOutcome(path, hashes, cached)
    finally:
        if ctx is None:
            cache.close()


def inspect_path(path: str | os.PathLike[str]) -> InspectReport:
    """What the file is, from its content: container, kind, base, precision, safety.

    Pickles are scanned statically and never executed; a FIFO or device is refused."""
    from sdlib.files.opening import check_regular
    from sdlib.inspect import inspect_file

    check_regular(Path(path))
    return inspect_file(Path(path))
