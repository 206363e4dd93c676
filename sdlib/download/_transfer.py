"""Small pieces of the download engine that hold no policy: pacing, buffers, flushing.

``sdlib.download`` decides what to fetch and when to give up; these only move bytes.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, Protocol

import httpx2

from sdlib.hashing import CHUNK

if TYPE_CHECKING:
    from sdlib.download._values import DownloadOptions
    from sdlib.hashing import Hasher

#: Bytes that must arrive between two failures for them not to count as "in a row": a flaky
#: link (or a server capping each response's length) that keeps delivering is not given up on.
PROGRESS_RESETS_RETRIES = 1 << 20

#: A progress event is due once this many bytes arrived since the last one...
PROGRESS_EVERY_BYTES = 256 << 10
#: ...or this many seconds passed (with new bytes), whichever comes first...
PROGRESS_EVERY_SECONDS = 0.5
#: ...but never sooner than this after the last: a terminal redraws no faster, and a fast
#: link would otherwise send hundreds of events a second to the TUI.
PROGRESS_MIN_INTERVAL = 0.05


def progress_due(
    done: int,
    total: int | None,
    last_done: int,
    elapsed: float,
    *,
    every_bytes: int = PROGRESS_EVERY_BYTES,
    every_seconds: float = PROGRESS_EVERY_SECONDS,
    min_interval: float = PROGRESS_MIN_INTERVAL,
) -> bool:
    """Whether to report progress now: ``done`` bytes written, ``last_done`` at the last
    report, ``elapsed`` seconds since it. The last byte is always reported; otherwise
    every ``every_bytes`` or ``every_seconds`` (whichever first), at most every
    ``min_interval``."""
    if done == last_done:
        return False
    if total is not None and done >= total:
        return True
    if elapsed < min_interval:
        return False
    return done - last_done >= every_bytes or elapsed >= every_seconds


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


class SpeedFloor:
    """Ends a body that trickles: at least ``min_bytes`` must arrive in every ``window``
    seconds. A read timeout alone never fires on a server that sends a byte now and then
    (slowloris); this does, within about two windows."""

    def __init__(
        self, window: float, min_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.min_bytes = min_bytes
        self._clock = clock
        self._start = clock()
        self._got = 0

    @classmethod
    def for_options(cls, options: DownloadOptions, connections: int) -> SpeedFloor:
        speed = options.min_speed
        if options.limit_rate:  # never below what the user's own --limit-rate allows
            speed = min(speed, options.limit_rate // (4 * max(1, connections)))
        window = options.stall_timeout
        return cls(window, int(speed * window))

    def add(self, n: int) -> str | None:
        """Count ``n`` bytes that arrived; the reason to give up, or None."""
        if self.min_bytes <= 0 or self.window <= 0:
            return None
        self._got += n
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self.window:
            return None
        if self._got < self.min_bytes:
            return (
                f"the server trickles data ({self._got:,} bytes in {elapsed:.0f} s, "
                f"below {self.min_bytes / self.window:,.0f} bytes/s)"
            )
        self._start, self._got = now, 0
        return None


#: Reads of a body start this small and double while they come back quickly (up to the
#: caller's cap), halving when one is slow: a slow link then still returns within the read
#: deadline, and a fast one soon reads 1 MiB at a time.
FIRST_READ = 64 << 10
MIN_READ = 1 << 10
SLOW_READ = 0.12


def first_read_size(options: DownloadOptions, cap: int) -> int:
    """Small enough that a link at ``min_speed`` fills it in half a read deadline."""
    fits = int(options.min_speed * options.stall_timeout / 2) if options.min_speed else cap
    return max(MIN_READ, min(FIRST_READ, cap, fits))


#: While the connection count is being decided, the stream's reads aim at this many seconds
#: each (doubling below half of it, halving above twice it): the count is decided between
#: two reads, and a capped server's 1 MiB read (60 ms at 16 MiB/s) made each decision up to
#: that late, twice in a ramp from one connection to four. A fast link reads its full size.
RAMP_READ = 0.012


def next_read_size(
    step: int, elapsed: float, window: float, cap: int, *, aim: float | None = None
) -> int:
    """The size of the next read, after one of ``step`` bytes took ``elapsed`` seconds.
    ``aim``: keep reads near that many seconds (see ``RAMP_READ``)."""
    if aim is not None:
        if elapsed < aim / 2:
            return min(cap, step * 2)
        if elapsed > aim * 2:
            return max(MIN_READ, min(cap, step // 2))
        return min(step, cap)
    if elapsed < 0.05:
        return min(cap, step * 2)
    # Reads of more than about a tenth of a second are halved too: what arrived is then
    # counted (by the connection ramp, the speed floor) in small steps, not in lumps.
    if elapsed > min(window / 8, SLOW_READ):
        return max(MIN_READ, step // 2)
    return min(step, cap)


class ReadDeadline:
    """Aborts a body read that has not returned within ``seconds`` (a socket's read timeout
    never fires on a server that trickles a byte now and then; a read filling a buffer would
    wait for it for hours). The bytes that did arrive are kept by the reader; the aborted
    read raises next, and ``fired`` says why."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._reads: dict[int, tuple[float, Callable[[], None]]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sdlib-deadline")
        self._thread.start()

    @contextlib.contextmanager
    def read(self, abort: Callable[[], None] | None) -> Iterator[None]:
        """One read call; ``abort`` (None: nothing to call) ends it when it takes too long."""
        if abort is None or self.seconds <= 0:
            yield
            return
        key = threading.get_ident()
        with self._lock:
            self._reads[key] = (time.monotonic(), abort)
        try:
            yield
        finally:
            with self._lock:
                self._reads.pop(key, None)

    def _run(self) -> None:
        while not self._done.wait(min(0.2, max(0.01, self.seconds / 4))):
            now = time.monotonic()
            with self._lock:
                late = [a for t, a in self._reads.values() if now - t > self.seconds]
            for abort in late:
                self.fired = True
                abort()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class BufferUser(Protocol):
    """What reads a buffer after it was handed over (the hasher, the file writer): buffers
    are counted as they are fed to it, and one is reused only once it is done with it."""

    @property
    def fed(self) -> int: ...

    def wait_done(self, count: int) -> None: ...


class BufferRing:
    """A few fixed buffers reused in turn, each handed out only once every user is done with it.

    Every buffer taken must be fed to each of ``users`` (once, in order) before the next is
    taken. The buffers are anonymous maps (Windows has them too): nothing zeroes them while
    holding the GIL, and they are page-aligned. A socket's copy into them is never
    slower than into a bytearray (16 bytes into its page), and cheaper where the sender's
    bytes sit aligned alike (0.25 against 0.45 s of CPU per GiB in a loopback test; the
    same in the download benchmark, whose server's bytes do not).
    """

    def __init__(self, count: int, size: int, users: Sequence[BufferUser]) -> None:
        self._buffers = [mmap.mmap(-1, size) for _ in range(count)]
        self._taken = 0
        # What each user had been fed before this ring's first buffer.
        self._users = [(user, user.fed) for user in users]

    def take(self) -> memoryview:
        """The next buffer."""
        count = len(self._buffers)
        if self._taken >= count:
            # This buffer was fed ``count`` feeds ago; wait until every user is done with it.
            for user, fed_before in self._users:
                user.wait_done(fed_before + self._taken - count + 1)
        buf = self._buffers[self._taken % count]
        self._taken += 1
        return memoryview(buf)


class PieceBuffers:
    """Page-aligned buffers of one size for ranged pieces, reused from piece to piece.

    A fresh buffer per piece costs a page fault and zeroing per 4 KiB each time (on a
    virtual machine about 0.4 s of CPU per GiB, and the host takes freed pages back, so
    the next ones fault again). A buffer comes back once its piece is written, with the
    count of buffers each user (the hasher, the file writer) had then been given; it is
    handed out again only after every user is done with that many.
    """

    def __init__(self, size: int, users: Sequence[BufferUser]) -> None:
        self.size = size
        self._users = list(users)
        self._free: list[tuple[mmap.mmap, list[int]]] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        """A buffer: a reused one (once every user is done with it) or a new one."""
        with self._lock:
            item = self._free.pop(0) if self._free else None
        if item is None:
            return mmap.mmap(-1, self.size)
        buf, fed = item
        for user, count in zip(self._users, fed, strict=True):
            user.wait_done(count)
        return buf

    def give(self, buf: mmap.mmap) -> None:
        """``buf``'s bytes were handed to every user (by the calling thread)."""
        with self._lock:
            self._free.append((buf, [user.fed for user in self._users]))


#: Bytes written between two background flushes of a part file (see ``BackgroundFlush``).
FLUSH_EVERY = 8 << 20


class BackgroundFlush:
    """Pushes a growing file to disk every ``every`` bytes from a thread of its own.

    The final ``fsync`` before a download is renamed into place then has little left to
    write, instead of a whole multi-GB file: what was written since the last flush, and
    the rest of a flush still running (which the stop waits for). With 8 MiB that wait was
    17-29 and 18-76 ms at the end of a 1 GiB download in two runs on a busy machine,
    against 36-111 and 32-113 ms with 16 MiB (0.13-0.22 s with 64 MiB), the download's
    time and the flushes' CPU unchanged within the noise.
    Only where ``os.fdatasync`` exists (Linux, the BSDs); elsewhere
    ``start`` returns None and the final fsync does all the work. ``wrote`` is called by
    the one thread that writes the file (``sdlib.download._writer``), after each write.
    """

    def __init__(self, fd: int, every: int) -> None:
        self._fd = fd
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="sdlib-flush")

    @classmethod
    def start(cls, fd: int, every: int = FLUSH_EVERY) -> BackgroundFlush | None:
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

    #: Seconds between two looks at the event: how late a cancel may abort a read.
    POLL = 0.02

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
        # The caller's event is looked at every POLL seconds while waiting on ``_done``, so
        # that ``stop`` returns at once (waiting on the event itself, a stop waited up to
        # 0.2 s: at the end of every download, for nothing).
        while not self._done.wait(self.POLL):
            if self._event.is_set():
                with self._lock:
                    aborts = list(self._aborts.values())
                for abort in aborts:
                    abort()
                self._done.wait(0.2)  # new reads that start meanwhile abort themselves

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def describe_transport(exc: httpx2.TransportError) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "the connection stalled (no data before the timeout)"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "the server closed the connection early"
    if isinstance(exc, httpx2.ConnectError):
        return "cannot connect to the server"
    if isinstance(exc, (httpx2.ReadError, httpx2.WriteError)):
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


def feed_prefix(fh: BinaryIO, size: int, hasher: Hasher) -> None:
    """Feed the first ``size`` bytes of ``fh`` (what a previous run wrote) to ``hasher``."""
    fh.seek(0)
    left = size
    while left:
        data = fh.read(min(CHUNK, left))
        if not data:
            break
        hasher.update(data)
        left -= len(data)
