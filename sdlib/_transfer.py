"""Small pieces of the download engine that hold no policy: pacing, buffers, flushing.

``sdlib.download`` decides what to fetch and when to give up; these only move bytes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from sdlib.hashing import Hasher

#: Bytes that must arrive between two failures for them not to count as "in a row": a flaky
#: link (or a server capping each response's length) that keeps delivering is not given up on.
PROGRESS_RESETS_RETRIES = 1 << 20


class Throttle:
    """A token bucket shared by all connections of one download (``--limit-rate``)."""

    def __init__(self, rate: int, sleep: Callable[[float], None]) -> None:
        self.rate = rate
        self._sleep = sleep
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._sent = 0

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            self._sent += n
            due = self._start + self._sent / self.rate
        wait = due - time.monotonic()
        if wait > 0:
            self._sleep(wait)


class BufferRing:
    """A few fixed buffers reused in turn, each handed out only once the hasher is done with it.

    Every buffer taken must be fed to ``hasher`` (once, in order) before the next is taken.
    """

    def __init__(self, count: int, size: int) -> None:
        self._buffers = [bytearray(size) for _ in range(count)]
        self._taken = 0

    def take(self, hasher: Hasher, fed_before: int) -> memoryview:
        """The next buffer. ``fed_before``: buffers the hasher had queued before this ring."""
        count = len(self._buffers)
        if self._taken >= count:
            # This buffer was queued ``count`` feeds ago; wait until it has been hashed.
            hasher.wait_done(fed_before + self._taken - count + 1)
        buf = self._buffers[self._taken % count]
        self._taken += 1
        return memoryview(buf)


class BackgroundFlush:
    """Pushes a growing file to disk every ``every`` bytes from a thread of its own.

    The final ``fsync`` before a download is renamed into place then has little left to
    write, instead of a whole multi-GB file. Only where ``os.fdatasync`` exists (Linux,
    the BSDs); elsewhere ``start`` returns None and the final fsync does all the work.
    """

    def __init__(self, fd: int, every: int) -> None:
        self._fd = fd
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="sdlib-flush")

    @classmethod
    def start(cls, fd: int, every: int = 64 << 20) -> BackgroundFlush | None:
        if not hasattr(os, "fdatasync"):
            return None
        flush = cls(fd, every)
        flush._thread.start()
        return flush

    def wrote(self, n: int) -> None:
        self._pending += n
        if self._pending >= self._every:
            self._pending = 0
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            # Errors (a full disk, EIO) surface again at the final fsync, which reports them.
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()


class CancelWatch:
    """Runs the abort functions of the reads in flight as soon as ``event`` is set, so a
    pause, a cancel or Ctrl-C does not wait for a silent server's stall timeout."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event
        self._aborts: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sdlib-cancel")
        self._thread.start()

    @contextlib.contextmanager
    def reading(self, abort: Callable[[], None] | None) -> Iterator[None]:
        """While the block runs, a cancel calls ``abort`` (None: nothing to call)."""
        if abort is None:
            yield
            return
        key = id(abort)
        with self._lock:
            self._aborts[key] = abort
        try:
            if self._event.is_set():
                abort()
            yield
        finally:
            with self._lock:
                self._aborts.pop(key, None)

    def _run(self) -> None:
        while not self._done.is_set():
            if self._event.wait(0.2):
                with self._lock:
                    aborts = list(self._aborts.values())
                for abort in aborts:
                    abort()
                self._done.wait(0.2)  # new reads that start meanwhile abort themselves

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def describe_transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the connection stalled (no data before the timeout)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection early"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the server"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "the connection broke"
    return f"network error ({type(exc).__name__})"


def parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/1000"
    if not value or not value.startswith("bytes ") or "-" not in value:
        return None
    return parse_int(value[6:].split("-", 1)[0].strip())


def content_range_total(value: str | None) -> int | None:
    if not value or "/" not in value:
        return None
    return parse_int(value.rsplit("/", 1)[1].strip())
