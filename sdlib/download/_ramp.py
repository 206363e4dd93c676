"""How many connections a download uses: one, plus more only while each new one pays.

A single connection is the fastest way to fetch from a server that is not capped per
connection (loopback, a LAN mirror, a CDN edge with bandwidth to spare): splitting only adds
requests, server work and, for the first full GET, a body thrown away. A server that caps
each connection (many CDNs, Civitai's storage at times) is the opposite: four connections
fetch four times as fast. Which one a server is shows only by trying, so ``Ramp`` starts
with one connection, measures what arrives over a window, tries a second, and doubles the
count while each step scales almost linearly (a capped server: 1, 2, 4 within about half a
second). A step that adds less is kept and followed by one more connection; one that adds
about nothing is undone and the count settles. A step that does not look linear gets a
second window before its verdict (a connection slow to start, a busy machine's lumpy counts).
A connection that already carries ``FAST`` is not split at all.

A window starts with a read (the engine asks between reads), lasts at least ``WINDOW`` and
holds a few reads per connection; after a step, it starts once the new connections have
delivered their first bytes and as long again has passed (a distant server's fresh
connections are in slow start for a few round trips; on loopback that is milliseconds).
``cut`` lays the file out in pieces that shrink toward its end, so connections that joined
at different times still finish together instead of leaving the last piece to one of them.

Pure logic with an injected clock: the engine reports bytes as they arrive (from any
thread) and asks ``decide`` between reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Ramp", "cut"]

#: Seconds over which the arrival rate is measured before each decision. Long enough for a
#: few reads of every connection at a capped server's speed (1 MiB at 16 MiB/s is 60 ms).
WINDOW = 0.15
#: Reads a window holds at least, per connection, on average: a window's count is off by
#: up to one read of each connection, and a slow connection's reads each take a tenth of a
#: second or more.
READS = 3
#: Seconds after the first response, and at least as long after a step's new connections
#: delivered their first bytes, during which arrivals are not counted (TCP slow start; the
#: old count's last bytes drain).
SETTLE = 0.03
#: The longest wait, after a step, for its new connections' first bytes before measuring
#: (a connection that takes longer counts as not paying).
JOIN_WAIT = 2.0
#: A step is undone when each new connection added less than this share of what one
#: carried before it (on a link that is already full they add about 0; on a capped
#: server about 1.0); otherwise it is kept and the next step tried.
DROP = 0.25
#: A step that added at least this share per connection doubles the count next time;
#: one that added less (on a busy machine, a window's count may be off by a fifth) adds
#: one connection next time.
LINEAR = 0.7
#: Trying a step costs about two windows; not worth it when less than this many seconds
#: of transfer are left at the current rate.
WORTH = 4 * WINDOW
#: Bytes/s at which one connection is not split: per-connection caps sit far below it (a
#: few to a few tens of MB/s), and at this speed the six hashes and the disk are near what
#: the machine takes: a second connection then only competes with them for the CPU. On a
#: 2-core machine's loopback, a second connection's bytes arrived faster for a while (they
#: wait in piece buffers) and the step looked like a gain that the download never saw.
FAST = 100 << 20
#: The smallest piece ``cut`` shrinks to, as a share of the full piece size (smaller
#: pieces mean more requests, each a round trip during which its connection idles).
LEAST_PIECE = 4


def cut(start: int, total: int, size: int, connections: int) -> list[tuple[int, int]]:
    """``[start, total)`` as ``(begin, end)`` pieces of ``size`` bytes, except near the end:
    once less than ``connections`` full pieces are left, each piece is an equal share of
    what is left (at least a quarter of ``size``). Connections take pieces in turn; they
    joined at different times, so with equal pieces the last one would run alone for up to
    a piece's time while the others idle."""
    least = max(1, size // LEAST_PIECE)
    share = max(1, connections)
    pieces = []
    at = start
    while at < total:
        # An equal share of what is left, from full size down to the least.
        end = min(total, at + min(size, max(least, -(-(total - at) // share))))
        pieces.append((at, end))
        at = end
    return pieces


class Ramp:
    """The connection count of one download (see the module docstring).

    ``Ramp(most)`` adapts between 1 and ``most``; ``Ramp.fixed(n)`` always says ``n`` (the
    user's ``--connections N``).
    """

    def __init__(
        self,
        most: int,
        *,
        window: float = WINDOW,
        settle: float = SETTLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most = max(1, most)
        self.count = 1
        #: No more changes: the count found (or a fixed one).
        self.settled = self.most == 1
        #: The most connections used at once so far.
        self.peak = 1
        self._window = window
        self._settle = settle
        self._clock = clock
        self._lock = threading.Lock()
        self._bytes = 0
        self._reads = 0
        self._start = clock()
        self._ignore_until = self._start
        #: When the count last changed (a step's new connections are timed from here).
        self._changed = self._start
        #: (count, bytes/s) measured before the step being tried.
        self._base: tuple[int, float] | None = None
        #: (bytes, seconds) of the step's first window, when it was not clearly linear (a
        #: second one decides).
        self._held: tuple[int, float] | None = None
        #: Connections added by the last step that have not delivered a byte yet.
        self._waiting = 0

    @classmethod
    def fixed(cls, count: int) -> Ramp:
        ramp = cls(count)
        ramp.count = ramp.peak = ramp.most
        ramp.settled = True
        return ramp

    def arrived(self, n: int) -> None:
        """``n`` bytes came in (on any connection, from any thread)."""
        with self._lock:
            self._bytes += n
            self._reads += 1

    def joined(self) -> None:
        """A connection added by the last step delivered its first bytes."""
        now = self._clock()
        with self._lock:
            if not self._waiting:
                return
            self._waiting -= 1
            if not self._waiting:
                # All of them deliver: measure after one more of their start-up times (at
                # least ``settle``), in which a distant server's connections leave slow start.
                took = now - self._changed
                settle = min(JOIN_WAIT / 2, max(self._settle, took))
                self._ignore_until = max(self._ignore_until, now + settle)

    def restart(self) -> None:
        """Measure afresh (a retry, a new request): what came before says nothing."""
        now = self._clock()
        with self._lock:
            self._bytes = self._reads = 0
        self._start = now
        self._ignore_until = now + self._settle

    def decide(self, left: int) -> int | None:
        """The new connection count when one is due, else None. ``left``: bytes to go."""
        if self.settled:
            return None
        now = self._clock()
        if (
            now < self._ignore_until
            or self._start < self._ignore_until  # a window starts with a read, not between
            or (self._waiting and now < self._changed + JOIN_WAIT)
        ):
            with self._lock:
                self._bytes = self._reads = 0
            self._start = now
            return None
        elapsed = now - self._start
        if elapsed < self._window or self._reads < READS * self.count:
            return None
        with self._lock:
            got, self._bytes, self._reads = self._bytes, 0, 0
        self._start = now
        if self._base is None:
            return self._first_step(got / elapsed, left)
        rate = got / elapsed
        if self._held is not None:
            # The better of this window and both together: a new connection may have been
            # slow to start (the first window low), or a busy machine made one lumpy.
            rate = max(rate, (got + self._held[0]) / (elapsed + self._held[1]))
        base_count, base_rate = self._base
        # What each new connection added, as a share of what one carried before.
        share = (rate - base_rate) / (base_rate / base_count * (self.count - base_count))
        if share < LINEAR and self._held is None:
            # Not clearly linear: one more window before a verdict that holds for good.
            self._held = (got, elapsed)
            return None
        self._held = None
        if share < DROP:
            # The step did not pay: back to what we had, for the rest of this download.
            self.settled = True
            return self._set(base_count, now)
        self._base = (self.count, rate)
        if self.count >= self.most or not self._worth(rate, left):
            self.settled = True
            return None
        step = self.count if share >= LINEAR else 1
        return self._set(min(self.most, self.count + step), now)

    def _first_step(self, rate: float, left: int) -> int | None:
        if rate >= FAST:
            self.settled = True  # one connection is already as fast as it gets here
            return None
        if not self._worth(rate, left):
            return None  # measure again: a slower link may make it worth it later
        self._base = (1, rate)
        return self._set(2, self._clock())

    def _worth(self, rate: float, left: int) -> bool:
        return rate > 0 and left / rate >= WORTH

    def _set(self, count: int, now: float) -> int:
        self._held = None
        with self._lock:  # the window starts once the new connections deliver
            self._waiting = max(0, count - self.count)
        self.count = count
        self.peak = max(self.peak, count)
        with self._lock:
            self._bytes = self._reads = 0
        self._start = self._changed = now
        self._ignore_until = now + self._settle
        return count
