"""Reading many model headers for ``scan``: in this process, and in helper processes when
there are enough of them to pay for starting one.

Parsing a big safetensors header is CPU work, and a first scan may meet thousands. The
helpers are spawned (not forked: portable, and safe beside the threads sqlite and httpx2 may
run); one costs ~0.3 s of CPU to start (an interpreter and the readers' imports), on the
core this process does not use. Meanwhile this process reads too, so no core waits for it.

Work is handed out in batches from one queue, the biggest files first: a file's size is the
best cheap guess of its header's (a checkpoint lists thousands of tensors, an embedding
one), so the costly batches go early and the last ones, taken when the other side may
already be idle, are the cheapest. Sharing from one queue front to back, instead of one
side from each end, keeps both sides on the same rising order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sdlib.library._inspect import BATCH, inspect_batch, inspect_columns, no_gc

__all__ = ["biggest_first", "inspect_here", "inspect_shared"]

#: What a reader gives for one file: the index's content columns.
Columns = dict[str, Any]
#: Told each file as it is done: (path, its columns).
Done = Callable[[str, Columns], None]


def biggest_first(paths: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    """``paths`` from the biggest file to the smallest (ties keep their order)."""
    return sorted(paths, key=lambda p: -sizes.get(p, 0))


def inspect_here(paths: Sequence[str], done: Done) -> None:
    """Read ``paths`` in this process, one after the other."""
    with no_gc():
        for path in paths:
            done(path, inspect_columns(path))


def inspect_shared(
    paths: Sequence[str], helpers: int, done: Done, side: deque[Callable[[], object]] | None = None
) -> None:
    """Share ``paths`` (already in the order to read them) between this process and
    ``helpers`` spawned ones. Each helper has up to two batches queued so that it never
    waits for this process to hand it the next; this process takes the next batch itself
    whenever it has handed out enough. Raises OSError or RuntimeError (a broken pool) when
    processes cannot be used here (a sandbox, a frozen app): files not yet ``done`` are
    then for the caller to read.

    ``side``: small tasks of the scan that need no header (sniffing previews, reading
    sidecars), run here first while the helpers parse: the helpers then take a bigger
    share of the headers instead of idling later while this process does them alone.
    Tasks left in it (the pool broke) are the caller's to run."""
    side = side if side is not None else deque()
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    batches = deque(list(paths[i : i + BATCH]) for i in range(0, len(paths), BATCH))
    running: dict[Future[list[Columns]], list[str]] = {}

    def finish(batch: list[str], contents: list[Columns]) -> None:
        for path, content in zip(batch, contents, strict=True):
            done(path, content)

    pool = ProcessPoolExecutor(helpers, mp_context=context)
    try:
        with no_gc():
            while batches or running or side:
                while len(batches) > 1 and len(running) < 2 * helpers:
                    batch = batches.popleft()
                    running[pool.submit(inspect_batch, batch)] = batch
                if side and (running or not batches):
                    side.popleft()()
                elif batches:
                    batch = batches.popleft()
                    finish(batch, inspect_batch(batch))
                else:
                    wait(running, return_when=FIRST_COMPLETED)
                for future in [f for f in running if f.done()]:
                    finish(running.pop(future), future.result())
    finally:
        # Every batch is in by now (or the pool broke): the helpers exit on their own,
        # and this process goes on with the scan instead of waiting for them to.
        pool.shutdown(wait=False, cancel_futures=True)


def cpu_count() -> int:
    """Cores this process may use (its affinity where the OS tells it), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # Windows and macOS have no sched_getaffinity
        return os.cpu_count() or 1
