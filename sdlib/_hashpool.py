"""A few threads running several ordered hash streams over one sequence of buffers.

Each *stage* (SHA256, BLAKE3+CRC32, AutoV3's second SHA256) must see the buffers in order,
but any thread may run any stage: a free thread takes the stage that is furthest behind.
So the work spreads over the cores whatever the mix (one long SHA256 stream for most
files, two for safetensors), with no thread per stage time-sliced against the others.
The hash libraries release the GIL for the whole of a large ``update``; Python only runs
between buffers (a few microseconds per 8 MiB).

Buffers come either from ``put`` (the downloader, as bytes arrive) or from a *source* run
by the same threads (``hash_stream``'s reads), which then stays at most ``window`` buffers
ahead of the slowest stage so that its buffers can be reused.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: A batch of small buffers is hashed in one task up to about this many bytes.
_BATCH_BYTES = 4 << 20
#: Chunks a source keeps read ahead of the leading stage (within the window).
READ_AHEAD = 3
#: How far (in chunks) a thread may keep its stage ahead of the one furthest behind.
STAY = 1


@dataclass(frozen=True, slots=True)
class Chunk:
    """One buffer of the file, in order, and where AutoV3's body starts in it (-1: nowhere)."""

    view: memoryview
    v3_from: int = -1


Stage = Callable[[Chunk], None]
#: Reads the next buffer into slot ``i`` of the caller's pool; None at the end of the input.
Source = Callable[[int], "Chunk | None"]


_spare: list[mmap.mmap] = []
_spare_lock = threading.Lock()
#: Read buffers kept for the next file (6 x 4 MiB by default).
_SPARE_MAX = 6


def _after_fork_in_child() -> None:
    # A fork taken while another thread held the lock would leave the child's copy held.
    global _spare_lock
    _spare_lock = threading.Lock()
    _spare.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def take_buffer(size: int) -> mmap.mmap:
    """A read buffer of ``size`` bytes: one a previous call gave back, or a new one.

    Reused because a new buffer costs a page fault per 4 KiB the first time it is filled
    (about 1 ms per MiB on a virtual machine: 30 ms of a 1 s hash for 32 MiB of buffers). A
    new one is an anonymous map, not a bytearray, so that nothing zeroes it while holding
    the GIL: its pages are faulted in by the first read, with the GIL released.
    """
    with _spare_lock:
        for i, buf in enumerate(_spare):
            if len(buf) == size:
                return _spare.pop(i)
    return mmap.mmap(-1, size)


def give_back(buffers: Sequence[mmap.mmap | None]) -> None:
    """Keep a few buffers for ``take_buffer``; the rest are unmapped when dropped."""
    with _spare_lock:
        for buf in buffers:
            if buf is None:
                continue
            if _spare and len(_spare[0]) != len(buf):
                _spare.clear()  # keep one size only: the one in use now
            if len(_spare) < _SPARE_MAX:
                _spare.append(buf)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # Windows, macOS
        return os.cpu_count() or 1


class ChunkPool:
    """Runs every stage over every chunk, in order per stage, on ``workers`` threads."""

    def __init__(
        self,
        stages: Sequence[Stage],
        workers: int,
        *,
        source: Source | None = None,
        window: int = 4,
    ) -> None:
        self._stages = list(stages)
        self._pos = [0] * len(stages)  # next chunk each stage will hash
        self._busy = [False] * len(stages)
        self._retired = [False] * len(stages)
        self._chunks: dict[int, Chunk] = {}
        self._count = 0  # chunks registered
        self._done = 0  # chunks every stage has hashed
        self._source = source
        self._window = window
        self._reading = False
        self._eof = source is None
        self._stop = False
        self._error: BaseException | None = None
        self._cond = threading.Condition(threading.Lock())
        self._finished_event = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"sdlib-hash-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def start(self) -> ChunkPool:
        for thread in self._threads:
            thread.start()
        return self

    # -- feeding (one feeder thread at a time) --------------------------------------------------
    @property
    def count(self) -> int:
        """Chunks registered so far (put, or read by the source)."""
        return self._count

    def put(self, chunk: Chunk) -> None:
        with self._cond:
            self._chunks[self._count] = chunk
            self._count += 1
            self._cond.notify_all()

    def retire(self, stage: int) -> None:
        """Stage ``stage`` has nothing to hash from now on (AutoV3 of a file that is not
        safetensors): it no longer holds the others back."""
        with self._cond:
            self._retired[stage] = True
            self._advance()
            self._cond.notify_all()

    # -- waiting ---------------------------------------------------------------------------------
    def wait_done(self, count: int) -> None:
        """Block until every stage has hashed the first ``count`` chunks."""
        with self._cond:
            while self._done < count and self._error is None and not self._stop:
                self._cond.wait()

    def wait_finished(self, timeout: float) -> bool:
        """True once every chunk of the source is hashed (or an error stopped the work);
        False if ``timeout`` passed first."""
        return self._finished_event.wait(timeout)

    def _finished(self) -> bool:
        return self._error is not None or (self._eof and self._done >= self._count)

    def finish(self) -> None:
        """Wait for all chunks to be hashed, stop the threads, raise what went wrong."""
        with self._cond:
            while not self._finished() and not self._stop:
                self._cond.wait()
        self.close()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the threads (after the task each is running); chunks not hashed are dropped."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join()

    # -- the workers -----------------------------------------------------------------------------
    def _advance(self) -> None:
        active = [p for p, r in zip(self._pos, self._retired, strict=True) if not r]
        done = min(active) if active else self._count
        while self._done < done:
            self._chunks.pop(self._done, None)  # let go of the buffer
            self._done += 1

    def _pick(self, prev: int | None) -> int | None:
        """The next task: -1 to read, a stage index to hash, None for nothing to do now.

        ``prev`` is the stage this thread just ran: it keeps it while it is at most
        ``STAY`` chunks ahead of the stage furthest behind, so a long stage (SHA256) runs
        on without a hand-off to another thread (a wake-up costs more than a few
        microseconds on a busy machine). Otherwise the stage furthest behind goes first.
        """
        can_read = not self._eof and not self._reading and self._count - self._done < self._window
        best: int | None = None
        lead = self._count - self._done  # chunks read that the leading stage has not begun
        for i, pos in enumerate(self._pos):
            if self._retired[i]:
                continue
            lead = min(lead, self._count - pos)
            if self._busy[i] or pos >= self._count:
                continue
            if best is None or pos < self._pos[best]:
                best = i  # ties go to the earlier stage: the stages come longest first
        stay = (
            prev is not None
            and best is not None
            and not self._busy[prev]
            and self._pos[best] <= self._pos[prev] < min(self._count, self._pos[best] + STAY + 1)
        )
        if stay:
            best = prev
        # Read ahead while the leading stage is near the end of what was read, so that no
        # stage waits for bytes (a thread going on with its stage leaves that to another).
        if can_read and (best is None or (lead < READ_AHEAD and not stay)):
            return -1
        return best

    def _work(self) -> None:
        cond = self._cond
        cond.acquire()
        try:
            prev: int | None = None
            while not self._stop and self._error is None:
                task = self._pick(prev)
                prev = task if task is not None and task >= 0 else None
                if task is None:
                    if self._finished():
                        self._finished_event.set()
                    cond.wait()
                    continue
                if task < 0:
                    self._reading = True
                    slot = self._count % self._window
                    cond.release()
                    try:
                        chunk, error = self._read(slot)
                    finally:
                        cond.acquire()
                    self._reading = False
                    if chunk is not None:
                        self._chunks[self._count] = chunk
                        self._count += 1
                    else:
                        self._eof = True
                        self._error = self._error or error
                else:
                    self._busy[task] = True
                    start = self._pos[task]
                    batch = self._batch(start)
                    cond.release()
                    try:
                        error = self._run(task, batch)
                    finally:
                        cond.acquire()
                    self._error = self._error or error
                    self._busy[task] = False
                    self._pos[task] = start + len(batch)
                    self._advance()
                cond.notify_all()
        finally:
            if self._finished():
                self._finished_event.set()
            cond.notify_all()
            cond.release()

    def _batch(self, start: int) -> list[Chunk]:
        batch = [self._chunks[start]]
        size = len(batch[0].view)
        i = start + 1
        while i < self._count and size < _BATCH_BYTES:
            chunk = self._chunks[i]
            batch.append(chunk)
            size += len(chunk.view)
            i += 1
        return batch

    def _read(self, slot: int) -> tuple[Chunk | None, BaseException | None]:
        assert self._source is not None
        try:
            return self._source(slot), None
        except BaseException as exc:  # raised again by ``finish`` in the caller's thread
            return None, exc

    def _run(self, task: int, batch: list[Chunk]) -> BaseException | None:
        stage = self._stages[task]
        try:
            for chunk in batch:
                stage(chunk)
        except BaseException as exc:
            return exc
        return None
