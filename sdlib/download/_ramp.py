"""How many connections a download uses: one, plus more only while each new one pays.

A single connection is the fastest way to fetch from a server that is not capped per
connection (loopback, a LAN mirror, a CDN edge with bandwidth to spare): splitting only adds
requests, server work and, for the first full GET, a body thrown away. A server that caps
each connection (many CDNs, Civitai's storage at times) is the opposite: four connections
fetch four times as fast. Which one a server is shows only by trying, so ``Ramp`` starts
with one connection, measures what arrives over a window, tries one more (two more when the
last step scaled almost linearly) and goes on while the total rises by most of what one
connection carried; a step that adds little is kept and ends the trying, one that adds
about nothing (two windows in a row) is undone, and the count settles.

Pure logic with an injected clock: the engine reports bytes as they arrive (from any
thread) and asks ``decide`` between reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Ramp"]

#: Seconds over which the arrival rate is measured before each decision.
WINDOW = 0.3
#: Seconds after a change during which arrivals are not counted (new connections connect,
#: send their request and get through TCP slow start; the old count's last bytes drain).
SETTLE = 0.1
#: The longest wait, after a step, for its new connections' first bytes before measuring
#: (a connection that takes longer counts as not paying).
JOIN_WAIT = 2.0
#: A step is kept when the total rose by at least this share of what one connection
#: carried before it (a new connection on a capped server adds about 1.0 of it; on a link
#: that is already full, about 0).
KEEP = 0.6
#: A step that added less than this share is undone (a link already full adds about 0);
#: between this and ``KEEP`` it is kept, and no further step is tried.
DROP = 0.25
#: A step that added at least this share per connection doubles the count next time.
LINEAR = 0.75
#: Trying a step costs about two windows; not worth it when less than this many seconds
#: of transfer are left at the current rate.
WORTH = 4 * WINDOW


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
        self._start = clock()
        self._ignore_until = self._start
        #: (count, bytes/s) measured before the step being tried.
        self._base: tuple[int, float] | None = None
        #: The last window said the step did not pay (a second one decides).
        self._doubt = False
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

    def joined(self) -> None:
        """A connection added by the last step delivered its first bytes."""
        with self._lock:
            self._waiting = max(0, self._waiting - 1)

    def restart(self) -> None:
        """Measure afresh (a retry, a new request): what came before says nothing."""
        now = self._clock()
        with self._lock:
            self._bytes = 0
        self._start = now
        self._ignore_until = now + self._settle

    def decide(self, left: int) -> int | None:
        """The new connection count when one is due, else None. ``left``: bytes to go."""
        if self.settled:
            return None
        now = self._clock()
        if now < self._ignore_until or (self._waiting and now < self._ignore_until + JOIN_WAIT):
            with self._lock:
                self._bytes = 0
            self._start = now
            return None
        elapsed = now - self._start
        if elapsed < self._window:
            return None
        with self._lock:
            got, self._bytes = self._bytes, 0
        self._start = now
        rate = got / elapsed
        if self._base is None:
            return self._first_step(rate, left)
        base_count, base_rate = self._base
        added = self.count - base_count
        per_connection = base_rate / base_count
        gain = rate - base_rate
        if gain < DROP * per_connection * added:
            if not self._doubt:
                # One more window first: a new connection may have been slow to start
                # (a TLS handshake, a busy server), and undoing a step is for good.
                self._doubt = True
                return None
            # The step did not pay: back to what we had, for the rest of this download.
            self.settled = True
            return self._set(base_count, now)
        self._doubt = False
        self._base = (self.count, rate)
        if gain < KEEP * per_connection * added:
            # It helped, if less than a capped server's connections do: keep it, stop here.
            self.settled = True
            return None
        if self.count >= self.most or not self._worth(rate, left):
            self.settled = True
            return None
        step = self.count if gain >= LINEAR * per_connection * added else 1
        return self._set(min(self.most, self.count + step), now)

    def _first_step(self, rate: float, left: int) -> int | None:
        if not self._worth(rate, left):
            return None  # measure again: a slower link may make it worth it later
        self._base = (1, rate)
        return self._set(2, self._clock())

    def _worth(self, rate: float, left: int) -> bool:
        return rate > 0 and left / rate >= WORTH

    def _set(self, count: int, now: float) -> int:
        self._doubt = False
        with self._lock:  # the window starts once the new connections deliver
            self._waiting = max(0, count - self.count)
        self.count = count
        self.peak = max(self.peak, count)
        with self._lock:
            self._bytes = 0
        self._start = now
        self._ignore_until = now + self._settle
        return count
