"""The library index follows what an organize journal does to files (see ``_journal``).

After each finished step, forward or back, the row of the file acted on goes where the
file went: its id, Civitai identity and history stay with the bytes. Recording never stops
a step: an index that cannot be opened or written is left to the next scan, which matches
files by inode and SHA256.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from sdlib.errors import SdlibError
from sdlib.library.index import Index

if TYPE_CHECKING:
    from sdlib.library._journal import Journal, Op

__all__ = ["Follow"]


class Follow:
    """Moves index rows along with a journal's operations (a no-op without an index)."""

    def __init__(self, index: Index | None) -> None:
        self.index = index

    @classmethod
    def of(cls, journal: Journal) -> Follow:
        """The index the journal's plan was made from (``index`` in its header), if any.
        :meth:`close` it; a step that dies with the process leaves it to the OS."""
        path = journal.header.get("index")
        index: Index | None = None
        if isinstance(path, str) and os.path.isfile(path):
            with contextlib.suppress(SdlibError):
                index = Index(path)
        return cls(index)

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None

    def forward(self, op: Op) -> None:
        if op.action == "move" and op.dst is not None:
            self._safely(self._moved, op.path, op.dst)
        elif op.action in ("link", "reflink"):
            self._safely(self._restat, op.path)
        elif op.action == "delete":
            self._safely(self._deleted, op.path, op.keep)

    def backward(self, op: Op) -> None:
        if op.action == "move" and op.dst is not None:
            self._safely(self._moved, op.dst, op.path)
        elif op.action in ("link", "reflink"):
            self._safely(self._restat, op.path)
        elif op.action == "delete":
            self._safely(self._restored, op.path)

    # -- one row ------------------------------------------------------------------------------

    def _safely(self, step: Any, *args: Any) -> None:
        if self.index is None:
            return
        with contextlib.suppress(SdlibError, OSError):
            step(self.index, *args)

    @staticmethod
    def _stat(path: str) -> dict[str, Any]:
        st = os.stat(path)
        return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                "mtime_ns": st.st_mtime_ns, "last_seen": time.time()}  # fmt: skip

    def _moved(self, index: Index, src: str, dst: str) -> None:
        row = index.file_at(src)
        if row is None or row.id is None:
            return  # never scanned, or already followed (a resumed run)
        values = self._stat(dst)
        with index.transaction():
            stale = index.file_at(dst)  # a file gone from there since the last scan
            if stale is not None and stale.id is not None and stale.id != row.id:
                index.update(stale.id, present=0)
                index.event(stale.id, "removed", path=dst)
            index.update(row.id, path=dst, present=1, **values)
            index.event(row.id, "moved", **{"from": src, "to": dst, "by": "organize"})

    def _restat(self, index: Index, path: str) -> None:
        """The name holds other inode now (a hard link, or its own copy again): same bytes."""
        row = index.file_at(path)
        if row is not None and row.id is not None:
            index.update(row.id, **self._stat(path))

    def _deleted(self, index: Index, path: str, keep: str | None) -> None:
        row = index.file_at(path)
        if row is None or row.id is None:
            return
        with index.transaction():
            index.update(row.id, present=0, last_seen=time.time())
            index.event(row.id, "removed", path=path, by="organize", duplicate_of=keep)

    def _restored(self, index: Index, path: str) -> None:
        if index.file_at(path) is not None:
            return  # a scan already found it
        row = index.gone_at(path)
        if row is None or row.id is None:
            return
        with index.transaction():
            index.update(row.id, present=1, **self._stat(path))
            index.event(row.id, "restored", path=path, by="organize")
