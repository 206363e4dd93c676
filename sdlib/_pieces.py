"""Parallel ranged fetching that still yields the file's bytes strictly in order.

Workers take fixed-size pieces in increasing order and fetch each over its own ranged
request (keep-alive connections from the shared client pool). The consumer receives
pieces in file order, so the part file stays a contiguous prefix and the hashers see
the bytes exactly once. A window bounds memory: no worker runs more than ``window``
pieces ahead of the consumer.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from sdlib.download import DownloadOptions


class PieceError(Exception):
    """A piece could not be fetched after retries; the caller retries from its offset."""


class PieceFetcher:
    def __init__(
        self,
        client: httpx.Client,
        url: str,
        start: int,
        total: int,
        options: DownloadOptions,
        validator: str | None,
        throttle: Any,
    ) -> None:
        self.client = client
        self.url = url
        self.opt = options
        self.validator = validator
        self.throttle = throttle
        size = options.piece_size
        self.pieces = [(a, min(a + size, total)) for a in range(start, total, size)]
        self.window = max(2, options.connections * 2)
        self._cond = threading.Condition()
        self._next = 0  # next piece a worker may take
        self._consumed = 0  # pieces handed to the consumer
        self._done: dict[int, bytearray] = {}
        self._error: str | None = None
        self._stop = False

    def in_order(self) -> Iterator[bytearray]:
        workers = [
            threading.Thread(target=self._work, daemon=True, name=f"sdlib-piece-{i}")
            for i in range(min(self.opt.connections, len(self.pieces)))
        ]
        for w in workers:
            w.start()
        try:
            for index in range(len(self.pieces)):
                with self._cond:
                    self._cond.wait_for(functools.partial(self._ready, index))
                    if index not in self._done:
                        raise PieceError(self._error or "piece failed")
                    data = self._done.pop(index)
                    self._consumed = index + 1
                    self._cond.notify_all()
                yield data
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            for w in workers:
                w.join(timeout=self.opt.stall_timeout + 5)

    def _ready(self, index: int) -> bool:
        return index in self._done or self._error is not None

    def _take(self) -> int | None:
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stop
                    or self._next >= len(self.pieces)
                    or self._next < self._consumed + self.window
                )
            )
            if self._stop or self._next >= len(self.pieces):
                return None
            index = self._next
            self._next += 1
            return index

    def _work(self) -> None:
        while (index := self._take()) is not None:
            try:
                data = self._fetch(*self.pieces[index])
            except PieceError as exc:
                with self._cond:
                    self._error = self._error or str(exc)
                    self._stop = True
                    self._cond.notify_all()
                return
            except Exception as exc:  # never let a worker die silently
                with self._cond:
                    self._error = self._error or f"unexpected error: {exc!r}"
                    self._stop = True
                    self._cond.notify_all()
                return
            if data is None:
                return
            with self._cond:
                self._done[index] = data
                self._cond.notify_all()

    def _fetch(self, begin: int, end: int) -> bytearray | None:
        """Bytes [begin, end) with retries that resume inside the piece."""
        buf = bytearray()
        attempt = 0
        while True:
            if self._stop:
                return None
            try:
                self._fetch_into(buf, begin, end)
                return buf
            except (httpx.TransportError, _Retry) as exc:
                if attempt >= self.opt.retries:
                    raise PieceError(f"bytes {begin + len(buf):,}-{end - 1:,}: {exc}") from None
                attempt += 1
                delay = min(self.opt.backoff_max, 2.0**attempt) * random.uniform(0.25, 0.5)
                self.opt.sleep(delay)

    def _fetch_into(self, buf: bytearray, begin: int, end: int) -> None:
        first = begin + len(buf)
        headers = {"Range": f"bytes={first}-{end - 1}", "Accept-Encoding": "identity"}
        if self.validator:
            headers["If-Range"] = self.validator
        timeout = httpx.Timeout(self.opt.stall_timeout, connect=self.opt.connect_timeout)
        with self.client.stream("GET", self.url, headers=headers, timeout=timeout) as response:
            if response.status_code != 206:
                # 200 means the validator changed or ranges stopped working; 403 an expired
                # link. Either way the whole download has to re-resolve and restart here.
                raise PieceError(f"ranged request answered HTTP {response.status_code}")
            for chunk in response.iter_raw(1 << 20):
                if self._stop:
                    return
                if len(buf) + len(chunk) > end - begin:
                    raise PieceError("the server sent more bytes than the range asked for")
                buf += chunk
                self.throttle.take(len(chunk))
        if len(buf) < end - begin:
            raise _Retry(f"connection closed after {begin + len(buf):,} bytes")


class _Retry(Exception):
    pass
