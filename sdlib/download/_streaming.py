"""Reading a response body into the part file: one stream, or ranged pieces in order.

A download starts as one stream (the first GET's body, read straight into a ring of
buffers). When ``Ramp`` (``_ramp``) says more connections pay, or the user fixed a count,
pieces from a boundary a little ahead of the stream are fetched in parallel while the
stream goes on up to that boundary: the first GET's body is never thrown away. When a
step did not pay and the count falls back to one, the pieces already started are finished
and written, and the engine goes on with a single stream again.

``BodyReading`` is a mixin of the engine's ``_Download`` (``_engine``); it holds the reading,
the engine the control flow (retries, resume, verification).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

import httpx2

from sdlib.download._checks import unknown_size_error
from sdlib.download._pieces import PieceError, PieceFetcher, _chunk_reader
from sdlib.download._transfer import (
    RAMP_READ,
    BackgroundFlush,
    BufferRing,
    CancelWatch,
    PieceBuffers,
    ReadDeadline,
    SpeedFloor,
    Throttle,
    describe_transport,
    first_read_size,
    next_read_size,
    progress_due,
)
from sdlib.download._values import DownloadOptions, EventCallback, Progress, Started
from sdlib.download._writer import WRITE_AHEAD
from sdlib.errors import DownloadError, HashMismatch, Interrupted
from sdlib.files.sniff import looks_like_text_error
from sdlib.formatting import human_size
from sdlib.http import ABORT, READINTO

if TYPE_CHECKING:
    from pathlib import Path

    from sdlib.download._ramp import Ramp
    from sdlib.download._writer import FileWriter
    from sdlib.hashing import Hasher

#: Buffers that a body is read into, in turn, while others are hashed; 1 MiB each, so a
#: slow link still shows progress (and keeps its bytes) every MiB.
RING_BUFFERS = 12
RING_BUFFER_SIZE = 1 << 20


class Transient(Exception):
    """A failure worth retrying (dropped connection, stall, expired URL, 5xx)."""


class BodyReading:
    """The engine's reading half (see the module docstring)."""

    client: httpx2.Client
    opt: DownloadOptions
    emit: EventCallback
    name: str
    part: Path
    total: int | None
    offset: int
    resumed_from: int
    validator: str | None
    connections: int
    fh: BinaryIO | None
    hasher: Hasher
    writer: FileWriter
    throttle: Throttle
    flush: BackgroundFlush | None
    watch: CancelWatch | None
    deadline: ReadDeadline | None
    ramp: Ramp
    _last_emit: float
    _last_done: int

    if TYPE_CHECKING:  # the engine defines it; declared here for the type checker only

        def _resume_hint(self) -> str: ...

    # -- one response ------------------------------------------------------------------------
    def _can_split(self, response: httpx2.Response) -> bool:
        """Whether the rest of this body may come as ranged pieces."""
        ranges = response.status_code == 206 or response.headers.get("Accept-Ranges") == "bytes"
        if not ranges or self.total is None or self.total < self.opt.split_threshold:
            return False
        return self.total - self.offset > 2 * self.opt.piece_size

    def _read_body(self, response: httpx2.Response) -> None:
        """Read ``response`` (a GET from ``self.offset``) and, when the count says so, pieces
        after it. Returns with the file complete, or short of it when pieces were given up
        for a single stream (the caller requests the rest)."""
        self.ramp.restart()
        splittable = self._can_split(response)
        count = self.ramp.count if splittable else 1
        self.emit(Started(self.name, self.total, self.resumed_from, count))
        fetcher: PieceFetcher | None = None
        if self.ramp.count > 1 and splittable:
            fetcher = self._start_pieces(str(response.url), self.ramp.count - 1)
        try:
            fetcher = self._stream(response, fetcher, splittable)
        finally:
            response.close()
        if fetcher is not None:
            self._consume_pieces(fetcher)
        elif self.total is not None and self.offset < self.total:
            raise Transient(f"connection closed at {self.offset:,} of {self.total:,} bytes")

    def _start_pieces(self, url: str, workers: int) -> PieceFetcher:
        assert self.total is not None
        # The stream goes on to the boundary; pieces start there.
        boundary = self.offset + self.opt.piece_size
        fetcher = PieceFetcher(
            self.client, url, boundary, self.total, self.opt, self.validator, self.throttle,
            self.watch, self.deadline, workers=0, arrived=self.ramp.arrived,
            joined=self.ramp.joined,
            buffers=PieceBuffers(self.opt.piece_size, (self.hasher, self.writer)),
        )  # fmt: skip
        self._use(fetcher, workers, streaming=True)
        return fetcher

    def _stream(
        self, response: httpx2.Response, fetcher: PieceFetcher | None, splittable: bool
    ) -> PieceFetcher | None:
        """Read the body straight into a ring of buffers (see ``sdlib.http._fastbody``) up to
        its end, or up to where ``fetcher``'s pieces begin. Returns the fetcher, if any."""
        assert self.deadline is not None
        readinto: Callable[[memoryview], int] | None = response.extensions.get(READINTO)
        abort = response.extensions.get(ABORT)
        if readinto is None:  # httpx2's own transport (a proxy): its chunks as they arrive
            readinto = _chunk_reader(response.iter_raw())
        ring = BufferRing(RING_BUFFERS, RING_BUFFER_SIZE, (self.hasher, self.writer))
        cap = RING_BUFFER_SIZE
        if self.throttle.rate:  # small reads so that --limit-rate stays smooth
            cap = max(64 << 10, min(cap, self.throttle.rate // 10))
        step = first_read_size(self.opt, cap)
        floor = SpeedFloor.for_options(self.opt, connections=1)
        reading = self.watch.reading(abort) if self.watch else contextlib.nullcontext()
        try:
            with reading:
                while True:
                    want = step
                    if fetcher is not None:
                        want = min(step, fetcher.pieces[0][0] - self.offset)
                        if want <= 0:
                            return fetcher  # the pieces take it from here
                    buf = ring.take()
                    began = time.monotonic()
                    with self.deadline.read(abort):
                        n = readinto(buf[:want])
                    step = next_read_size(
                        step, time.monotonic() - began, self.opt.stall_timeout, cap,
                        aim=None if self.ramp.settled else RAMP_READ,
                    )  # fmt: skip
                    if n:
                        self._write(buf[:n])
                        self.ramp.arrived(n)
                    self._check_deadline()  # an aborted read may look like the end of the body
                    if not n:
                        return fetcher
                    self._check_speed(floor, n)
                    self.throttle.take(n)
                    fetcher = self._step(response, fetcher, splittable)
        except httpx2.TransportError as exc:
            self._check_deadline()
            if fetcher is not None:
                fetcher.stop()
            raise Transient(describe_transport(exc)) from None
        except BaseException:
            if fetcher is not None:
                fetcher.stop()
            raise

    def _step(
        self, response: httpx2.Response, fetcher: PieceFetcher | None, splittable: bool
    ) -> PieceFetcher | None:
        """Act on the ramp's decision, if one is due, while the stream runs."""
        left = (self.total or 0) - self.offset
        count = self.ramp.decide(left)
        if count is None:
            return fetcher
        if fetcher is None:
            if count > 1 and splittable:
                return self._start_pieces(str(response.url), count - 1)
            return None
        self._use(fetcher, count - 1, streaming=True)  # the stream is one of them
        return fetcher

    def _consume_pieces(self, fetcher: PieceFetcher) -> None:
        """Write the pieces in order; the ramp may change how many connections fetch them."""
        self._use(fetcher, self.ramp.count)
        try:
            for data in fetcher.in_order():
                self._write(data)
                if (count := self.ramp.decide((self.total or 0) - self.offset)) is not None:
                    self._use(fetcher, count)
        except PieceError as exc:
            raise Transient(str(exc)) from None
        finally:
            fetcher.stop()

    def _use(self, fetcher: PieceFetcher, count: int, *, streaming: bool = False) -> None:
        """Fetch pieces over ``count`` connections (besides the stream, if ``streaming``).
        Down to one without a stream: the pieces started are finished, then one stream
        goes on (a single connection fetching pieces would wait a round trip for each)."""
        if not streaming and count <= 1:
            count = 0
        fetcher.set_workers(count)
        self.connections = max(self.connections, count + (1 if streaming else 0))

    # -- checks ------------------------------------------------------------------------------
    def _check_deadline(self) -> None:
        if self.deadline is not None and self.deadline.fired:
            self.deadline.fired = False
            raise Transient(
                f"the server trickles data (a read got too little in {self.opt.stall_timeout:g} s)"
            )

    def _check_speed(self, floor: SpeedFloor, n: int) -> None:
        why = floor.add(n)
        if why is not None:
            raise Transient(why)

    def _check_cancel(self) -> None:
        if self.opt.cancel is not None and self.opt.cancel.is_set():
            raise Interrupted(
                f"{self.name}: stopped; {human_size(self.offset)} kept; {self._resume_hint()}",
                path=str(self.part),
            )

    # -- the one place bytes go --------------------------------------------------------------
    def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Append (on the writer's thread), hash and report ``data``; then stop if a cancel
        came (keeping it). ``data`` stays unchanged until the writer and the hasher are done
        with it (the buffers' owners wait for both)."""
        if self.offset == 0 and looks_like_text_error(bytes(data[:64])):
            raise DownloadError(
                f"{self.name}: the server sent an HTML or JSON page instead of the model file"
            )
        if self.total is not None and self.offset + len(data) > self.total:
            raise HashMismatch(
                f"{self.name}: the server sent more than the {self.total:,} bytes it announced"
            )
        if self.total is None and self.offset + len(data) > self.opt.max_unknown_size:
            self.offset = 0  # nothing to resume: _close deletes the part file
            raise unknown_size_error(self.name, self.opt.max_unknown_size, self.part)
        self.writer.put(data)
        self.hasher.update(data)
        self.offset += len(data)
        # Keep the hashing threads and the writer at most a few buffers behind the network.
        if self.hasher.fed > WRITE_AHEAD:
            self.hasher.wait_done(self.hasher.fed - WRITE_AHEAD)
        if self.writer.fed > WRITE_AHEAD:
            self.writer.wait_done(self.writer.fed - WRITE_AHEAD)
        now = time.monotonic()
        if progress_due(self.offset, self.total, self._last_done, now - self._last_emit):
            self._last_emit, self._last_done = now, self.offset
            self.emit(Progress(self.name, self.offset, self.total))
        self._check_cancel()
