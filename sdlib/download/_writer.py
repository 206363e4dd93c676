"""Appending a download's bytes to its part file from a thread of its own.

The receiving thread hands each buffer over (``put``) and goes back to its socket; the
writer copies the buffers into the file in order (the kernel's copy into the page cache,
about half a second of CPU per GiB, no longer on the receiving thread) and tells the
background flush what it wrote, so that writeback starts at once. A buffer may be reused
only once the writer is done with it: ``fed`` and ``wait_done`` follow the contract of a
threaded ``sdlib.hashing.Hasher``, and the engine's buffers wait for both.

What the writer reports is exact: ``unwritten`` counts the bytes handed over that no
``write`` call took, so after a failure (a full disk) or a stop the part file holds the
file's prefix up to the engine's offset less those bytes, and that is all a later run may
resume from.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.download._transfer import BackgroundFlush

#: Buffers the receiving thread may run ahead of the writer before it waits (a few MiB:
#: what a crash at any moment could lose of what arrived, and what a stop has to write).
WRITE_AHEAD = 8


class FileWriter:
    """Writes the buffers ``put`` to ``fd`` (opened for appending), in order, on a thread.
    With ``fd`` None it stands for a file not open yet: it takes nothing and has nothing
    to write."""

    def __init__(self, fd: int | None, flush: BackgroundFlush | None = None) -> None:
        self._fd = fd if fd is not None else -1
        self._flush = flush
        self._queue: deque[memoryview] = deque()
        self._head_done = 0  # bytes of the queue's first buffer already written
        self._fed = 0
        self._done = 0
        self._error: OSError | None = None
        self._closing = False
        self._drain = True
        self._stopped = False  # the thread has ended: nothing queued will be written now
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sdlib-writer")
        if fd is None:
            self._closing = self._stopped = True
        else:
            self._thread.start()

    # -- the receiving thread's side ---------------------------------------------------------
    @property
    def fed(self) -> int:
        """How many buffers ``put`` has queued so far."""
        return self._fed

    def put(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (unchanged until ``wait_done`` says it was written); raises the
        error a write failed with, if one did."""
        view = memoryview(data).cast("B")
        if not len(view):
            return
        with self._cond:
            self._raise()
            if self._closing:
                raise RuntimeError("the writer is closed")
            self._queue.append(view)
            self._fed += 1
            self._cond.notify_all()

    def wait_done(self, count: int) -> None:
        """Block until the first ``count`` buffers are written, or will never be (the writer
        stopped); raises the writer's error."""
        with self._cond:
            self._cond.wait_for(lambda: self._done >= count or self._stopped)
            if self._done < count:
                self._raise()

    def check(self) -> None:
        """Raise the error a write failed with, if one did."""
        with self._cond:
            self._raise()

    @property
    def unwritten(self) -> int:
        """Bytes handed over that no write took (yet)."""
        with self._cond:
            return sum(len(v) for v in self._queue) - self._head_done

    def close(self, *, drain: bool = True) -> int:
        """Stop the thread: after writing everything queued (``drain``, unless a write
        failed) or after the write in flight. Returns ``unwritten``. A Ctrl-C meanwhile
        does not cut the wait short: the file must not be closed under a write."""
        with self._cond:
            self._closing = True
            self._drain = self._drain and drain
            self._cond.notify_all()
        while self._thread.ident is not None and self._thread.is_alive():
            try:
                self._thread.join()
            except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C, within milliseconds
                continue
        return self.unwritten

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue or (self._closing and not self._drain):
                    return
                view = self._queue[0]
            try:
                self._write_all(view)
            except Exception as exc:  # any failure stops the download: never a silent gap
                error = exc if isinstance(exc, OSError) else OSError(errno.EIO, repr(exc))
                with self._cond:
                    self._error = error
                return
            with self._cond:
                self._queue.popleft()
                self._head_done = 0
                self._done += 1
                self._cond.notify_all()
            if self._flush is not None:
                self._flush.wrote(len(view))

    def _write_all(self, view: memoryview) -> None:
        while self._head_done < len(view):
            n = os.write(self._fd, view[self._head_done :])
            with self._cond:
                self._head_done += n
