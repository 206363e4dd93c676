"""Parallel ranged fetching that still yields the file's bytes strictly in order.

Workers take fixed-size pieces in increasing order and fetch each over its own ranged
request (keep-alive connections from the shared client pool). The consumer receives
pieces in file order, so the part file stays a contiguous prefix and the hashers see
the bytes exactly once. A window bounds memory: no worker runs more than ``window``
pieces ahead of the consumer.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from sdlib.download._ramp import cut
from sdlib.download._transfer import (
    PROGRESS_RESETS_RETRIES,
    SpeedFloor,
    content_range_start,
    first_read_size,
    next_read_size,
    parse_int,
)
from sdlib.http import ABORT, FAST_BODY, READINTO

if TYPE_CHECKING:
    import mmap

    from sdlib.download._transfer import CancelWatch, PieceBuffers, ReadDeadline
    from sdlib.download._values import DownloadOptions


#: Pieces are handed out in slices of this size: each is written and hashed while the
#: write's copy has it in the CPU's cache (a whole 8 MiB piece would be read from memory
#: once per hash).
SLICE = 1 << 20


class PieceError(Exception):
    """A piece could not be fetched after retries; the caller retries from its offset."""


class PieceFetcher:
    """Pieces of ``[start, total)`` over ``workers`` connections, handed out in file order.

    ``set_workers`` changes the count while it runs (``sdlib.download._ramp`` decides it);
    at 0 no new piece is started, and ``in_order`` ends after the last piece that was
    (the caller goes on from there with a single stream).
    """

    def __init__(
        self,
        client: httpx2.Client,
        url: str,
        start: int,
        total: int,
        options: DownloadOptions,
        validator: str | None,
        throttle: Any,
        watch: CancelWatch | None = None,
        deadline: ReadDeadline | None = None,
        *,
        workers: int | None = None,
        arrived: Callable[[int], None] | None = None,
        joined: Callable[[], None] | None = None,
        buffers: PieceBuffers | None = None,
    ) -> None:
        self.client = client
        self.watch = watch
        self.deadline = deadline
        self.url = url
        self.opt = options
        self.validator = validator
        self.throttle = throttle
        self._arrived = arrived or (lambda _n: None)
        self._joined = joined or (lambda: None)
        self._local = threading.local()  # per worker: whether it has delivered a byte yet
        #: Where piece buffers come from and go back to (None: a new one for every piece).
        self._buffers = buffers
        self.pieces = cut(start, total, options.piece_size, options.connections)
        self._cond = threading.Condition()
        self._next = 0  # next piece a worker may take
        self._consumed = 0  # pieces handed to the consumer
        self._done: dict[int, _Piece] = {}
        self._error: str | None = None
        self._stop = False
        self._target = 0
        self._running = 0  # worker threads alive
        self._threads: list[threading.Thread] = []
        self.set_workers(options.connections if workers is None else workers)

    @property
    def window(self) -> int:
        """Pieces the workers may run ahead of the consumer (memory stays bounded)."""
        return max(2, self._target * 2)

    def set_workers(self, count: int) -> None:
        """Use ``count`` connections from now on (extra ones stop after their piece)."""
        with self._cond:
            self._target = max(0, count)
            start = max(0, self._target - self._running)
            self._running += start
            self._cond.notify_all()
        for _ in range(start):
            thread = threading.Thread(
                target=self._work, daemon=True, name=f"sdlib-piece-{len(self._threads)}"
            )
            self._threads.append(thread)
            thread.start()

    def in_order(self) -> Iterator[memoryview]:
        """The pieces' bytes in file order. Each buffer is reused once the caller asks for
        the next piece: it must have written (and queued for hashing) the one before."""
        try:
            for index in range(len(self.pieces)):
                with self._cond:
                    self._cond.wait_for(functools.partial(self._ready, index))
                    if index not in self._done:
                        if self._error is None and self._abandoned(index):
                            return  # no worker left to take it: the caller streams on
                        raise PieceError(self._error or "piece failed")
                    piece = self._done.pop(index)
                    self._consumed = index + 1
                    self._cond.notify_all()
                for at in range(0, len(piece.view), SLICE):
                    yield piece.view[at : at + SLICE]
                if self._buffers is not None and piece.owned is not None:
                    self._buffers.give(piece.owned)
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            for w in self._threads:
                w.join(timeout=self.opt.stall_timeout + 5)

    def stop(self) -> None:
        """Stop every worker (pieces in flight are dropped) and wait for them."""
        with self._cond:
            self._stop = True
            self._target = 0
            self._cond.notify_all()
        for w in self._threads:
            w.join(timeout=self.opt.stall_timeout + 5)

    def _abandoned(self, index: int) -> bool:
        return index >= self._next and self._running == 0 and self._target == 0

    def _ready(self, index: int) -> bool:
        return index in self._done or self._error is not None or self._abandoned(index)

    def _take(self) -> int | None:
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stop
                    or self._next >= len(self.pieces)
                    or self._running > self._target
                    or self._next < self._consumed + self.window
                )
            )
            if self._stop or self._next >= len(self.pieces) or self._running > self._target:
                self._running -= 1  # this worker stops
                self._cond.notify_all()
                return None
            index = self._next
            self._next += 1
            return index

    def _work(self) -> None:
        self._local.fresh = True
        while (index := self._take()) is not None:
            try:
                piece = self._fetch(*self.pieces[index])
            except PieceError as exc:
                self._fail(str(exc))
                return
            except Exception as exc:  # never let a worker die silently
                self._fail(f"unexpected error: {exc!r}")
                return
            if piece is None:
                self._fail(None)
                return
            with self._cond:
                self._done[index] = piece
                self._cond.notify_all()

    def _fail(self, error: str | None) -> None:
        with self._cond:
            if error is not None:
                self._error = self._error or error
                self._stop = True
            self._running -= 1
            self._cond.notify_all()

    def _fetch(self, begin: int, end: int) -> _Piece | None:
        """Bytes [begin, end) with retries that resume inside the piece."""
        if self._buffers is not None and end - begin <= self._buffers.size:
            owned = self._buffers.take()
            piece = _Piece(begin, memoryview(owned)[: end - begin], owned)
        else:
            piece = _Piece(begin, memoryview(bytearray(end - begin)))
        attempt = 0
        progress = 0
        while True:
            if self._stop:
                return None
            if self.opt.cancel is not None and self.opt.cancel.is_set():
                raise PieceError("stopped")
            if piece.filled - progress >= PROGRESS_RESETS_RETRIES:
                # Bytes arrived since the last failure: only failures in a row count (a
                # server that caps each response's length still gets the whole piece).
                attempt, progress = 0, piece.filled
            try:
                self._fetch_into(piece)
                if self._stop:
                    return None
                if piece.filled < len(piece.view):
                    raise _Retry(f"connection closed after {piece.begin + piece.filled:,} bytes")
                return piece
            except (httpx2.TransportError, _Retry) as exc:
                if attempt >= self.opt.retries:
                    raise PieceError(
                        f"bytes {piece.begin + piece.filled:,}-{end - 1:,}: {exc}"
                    ) from None
                attempt += 1
                delay = min(self.opt.backoff_max, 2.0**attempt) * random.uniform(0.25, 0.5)
                self.opt.wait(delay)

    def _fetch_into(self, piece: _Piece) -> None:
        """Continue filling ``piece`` from where it stands (progress kept on errors)."""
        first, last = piece.begin + piece.filled, piece.begin + len(piece.view) - 1
        headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
        if self.validator:
            headers["If-Range"] = self.validator
        timeout = httpx2.Timeout(self.opt.stall_timeout, connect=self.opt.connect_timeout)
        with self.client.stream(
            "GET", self.url, headers=headers, timeout=timeout, extensions={FAST_BODY: True}
        ) as response:
            if response.status_code != 206:
                # 200 means the validator changed or ranges stopped working; 403 an expired
                # link. Either way the whole download has to re-resolve and restart here.
                raise PieceError(f"ranged request answered HTTP {response.status_code}")
            _check_range(response, first, last)
            view = piece.view
            cap = 1 << 20
            if self.throttle.rate:
                cap = max(64 << 10, min(cap, self.throttle.rate // 10))
            # Without the fast transport, httpx2's chunks as they arrive (a fixed chunk size
            # would wait for that many bytes, however slowly they trickle in).
            readinto = response.extensions.get(READINTO) or _chunk_reader(response.iter_raw())
            abort = response.extensions.get(ABORT)
            floor = SpeedFloor.for_options(self.opt, max(1, self._target))
            window = self.opt.stall_timeout
            step = first_read_size(self.opt, cap)
            with self.watch.reading(abort) if self.watch else contextlib.nullcontext():
                while piece.filled < len(view) and not self._stop:
                    began = time.monotonic()
                    with self.deadline.read(abort) if self.deadline else contextlib.nullcontext():
                        n = readinto(view[piece.filled : piece.filled + step])
                    elapsed = time.monotonic() - began
                    step = next_read_size(step, elapsed, window, cap)
                    piece.filled += n
                    self._arrived(n)
                    if n and self._local.fresh:
                        self._local.fresh = False
                        self._joined()
                    if elapsed > window:  # cut by the read deadline: a trickle
                        raise _Retry(f"the server trickles data (a read took {elapsed:.0f} s)")
                    if not n:
                        return
                    if (why := floor.add(n)) is not None:
                        raise _Retry(why)
                    self.throttle.take(n)


def _chunk_reader(chunks: Iterator[bytes]) -> Callable[[memoryview], int]:
    """A ``readinto`` over httpx2's chunks (when the fast transport is not in use); a chunk
    larger than the buffer is handed out over several calls. ``_check_range`` has already
    refused a response longer than the range asked for."""
    pending = memoryview(b"")

    def readinto(view: memoryview) -> int:
        nonlocal pending
        if not pending:
            pending = memoryview(next(chunks, b""))
        n = min(len(view), len(pending))
        view[:n] = pending[:n]
        pending = pending[n:]
        return n

    return readinto


@dataclass
class _Piece:
    begin: int
    #: Where its bytes go: all of a new buffer, or the start of a reused one (``owned``).
    view: memoryview
    owned: mmap.mmap | None = None
    filled: int = 0


class _Retry(Exception):
    pass


def _check_range(response: httpx2.Response, first: int, last: int) -> None:
    """A 206 for exactly the bytes asked for (a server may send fewer, never others)."""
    start = content_range_start(response.headers.get("Content-Range"))
    length = parse_int(response.headers.get("Content-Length"))
    if start != first or (length is not None and length > last - first + 1):
        raise PieceError(
            f"the server answered bytes {response.headers.get('Content-Range')!r} "
            f"to a request for {first}-{last}"
        )
