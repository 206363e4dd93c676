"""The connection ramp against synthetic arrivals, and how ``cut`` lays pieces out.

A small simulation stands in for the network: each connection delivers whole reads (1 MiB
at a time, as the engine reports them) at its share of the speed, starting at a random
phase; new connections deliver their first bytes a few milliseconds after a step; the ramp
decides after each of the first connection's reads, as the engine does after each read of
its stream. Seeded, on a fake clock: the decisions are the same on any machine, busy or not.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.download import DownloadOptions, DownloadSpec, download
from sdlib.download._ramp import READS, Ramp, cut
from sdlib.http import build_client
from tests.support.large_file import large_url, served_sha256

MIB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """What the ramp chose: ``(seconds since the start, count)`` for each change."""

    changes: list[tuple[float, int]] = field(default_factory=list)
    ramp: Ramp | None = None

    def first_at(self, count: int) -> float | None:
        return next((t for t, c in self.changes if c == count), None)


def simulate(
    speed: Callable[[int], float],
    *,
    seed: int,
    read: int = MIB,
    seconds: float = 3.0,
    stalls: float = 0.0,
) -> Run:
    """``speed(n)``: bytes/s each of ``n`` connections gets. ``stalls``: the chance, each
    millisecond, that the client is not scheduled for 10-60 ms (a busy machine); the bytes
    that arrived meanwhile are read in a burst afterwards."""
    rng = random.Random(seed)
    clock = Clock()
    start = clock.now
    ramp = Ramp(4, clock=clock)
    run = Run(ramp=ramp)
    pending = [rng.uniform(0, read)]  # bytes received but not yet read, per connection
    joins: list[float] = []  # when the next new connections deliver their first bytes
    paused_until = 0.0
    ramp.restart()
    dt = 0.001
    t = 0.0
    while t < seconds:
        t += dt
        clock.now = start + t
        share = speed(len(pending)) * dt
        for i in range(len(pending)):
            pending[i] += share
        while joins and joins[0] <= t:
            heapq.heappop(joins)
            pending.append(rng.uniform(0, read))
            ramp.joined()
        if t < paused_until:
            continue
        if stalls and rng.random() < stalls:
            paused_until = t + rng.uniform(0.01, 0.06)
            continue
        stream_read = False
        for i in range(len(pending)):
            while pending[i] >= read:
                pending[i] -= read
                ramp.arrived(read)
                stream_read = stream_read or i == 0
        if not stream_read:
            continue
        before = ramp.count
        count = ramp.decide(1 << 40)
        if count is None:
            continue
        run.changes.append((t, count))
        for _ in range(count - before):
            heapq.heappush(joins, t + rng.uniform(0.005, 0.03))
        del pending[max(1, count) :]
    return run


def capped(per_connection: float, link: float) -> Callable[[int], float]:
    return lambda n: min(per_connection, link / n)


# --- a server capping each connection ----------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_a_capped_server_gets_four_connections_within_two_thirds_of_a_second(seed: int) -> None:
    # 16 MiB/s per connection (bench/download.py (b)): one 1 MiB read every 62 ms, so a
    # window holds only a few reads of each connection.
    run = simulate(capped(16 * MIB, 1000 * MIB), seed=seed)
    assert run.changes and run.changes[-1][1] == 4, run.changes
    at = run.first_at(4)
    assert at is not None and at <= 0.67, run.changes
    counts = [c for _, c in run.changes]
    assert counts == sorted(counts), run.changes  # never a step back on the way up


@pytest.mark.parametrize("seed", range(20))
def test_a_capped_server_on_a_busy_machine_still_gets_four(seed: int) -> None:
    run = simulate(capped(16 * MIB, 1000 * MIB), seed=seed, stalls=0.01)
    assert run.changes and run.changes[-1][1] == 4, run.changes
    at = run.first_at(4)
    assert at is not None and at <= 1.5, run.changes


@pytest.mark.parametrize("seed", range(20))
def test_a_slow_capped_server_gets_four(seed: int) -> None:
    # 2 MiB/s per connection: the engine's reads shrink to about 256 KiB at that speed.
    run = simulate(capped(2 * MIB, 1000 * MIB), seed=seed, read=256 << 10, seconds=4.0)
    assert run.changes and run.changes[-1][1] == 4, run.changes
    at = run.first_at(4)
    assert at is not None and at <= 1.1, run.changes


# --- a link one connection fills ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("stalls", [0.0, 0.01])
def test_a_full_link_goes_back_to_one_within_a_second(seed: int, stalls: float) -> None:
    # A LAN at 60 MiB/s however many connections share it: tried once, undone.
    run = simulate(lambda n: 60 * MIB / n, seed=seed, stalls=stalls, read=256 << 10)
    assert run.ramp is not None and run.ramp.settled
    assert run.ramp.peak == 2 and run.changes[-1][1] == 1, run.changes
    assert run.changes[-1][0] <= 1.0, run.changes


@pytest.mark.parametrize("seed", range(5))
def test_loopback_is_never_split(seed: int) -> None:
    # 400 MiB/s on one connection (over FAST): no second one is tried, even where a second
    # connection's bytes would seem to raise the total (they queue behind the hashing).
    run = simulate(lambda n: 400 * MIB * (1 + 0.5 * (n > 1)) / n, seed=seed)
    assert run.ramp is not None and run.ramp.settled
    assert run.ramp.peak == 1 and run.changes == [], run.changes


def test_a_link_two_connections_fill_keeps_two() -> None:
    # Each connection capped at 10 MiB/s, the link at 15: a second one adds half of one
    # (kept), more add nothing.
    run = simulate(capped(10 * MIB, 15 * MIB), seed=1, read=512 << 10)
    assert run.ramp is not None and run.ramp.settled
    assert run.ramp.count == 2, run.changes


# --- when a window starts --------------------------------------------------------------------


def _first_step(ramp: Ramp, clock: Clock) -> None:
    """One connection at 15 MiB/s for a window (after the settle time): a second is tried."""
    ramp.restart()
    clock.now += 0.05
    assert ramp.decide(1 << 40) is None  # settled: the window starts with this read
    for _ in range(READS):
        ramp.arrived(MIB)
    clock.now += 0.2
    assert ramp.decide(1 << 40) == 2


def test_a_step_is_measured_from_one_more_start_up_time_after_its_connections_join() -> None:
    clock = Clock()
    ramp = Ramp(4, window=0.2, settle=0.05, clock=clock)
    _first_step(ramp, clock)
    # The new connection takes 0.4 s to deliver (a distant server: connect, TLS, request).
    clock.now += 0.4
    ramp.joined()
    # For the next 0.4 s (its start-up time again: slow start), arrivals are not counted...
    for _ in range(7):
        clock.now += 0.05
        ramp.arrived(MIB // 4)  # far less than the first connection alone
        assert ramp.decide(1 << 40) is None
    clock.now += 0.06
    assert ramp.decide(1 << 40) is None  # the window starts with this read
    # ...then both deliver at full speed: linear, so two more.
    for _ in range(2 * READS):
        ramp.arrived(MIB)
    clock.now += 0.2
    assert ramp.decide(1 << 40) == 4


def test_a_quick_join_is_measured_after_the_settle_time() -> None:
    clock = Clock()
    ramp = Ramp(4, window=0.2, settle=0.05, clock=clock)
    _first_step(ramp, clock)
    clock.now += 0.004  # loopback: first bytes after 4 ms
    ramp.joined()
    clock.now += 0.04
    ramp.arrived(10**12)  # still settling: not counted
    assert ramp.decide(1 << 40) is None
    clock.now += 0.02
    assert ramp.decide(1 << 40) is None  # settled: the window starts with this read
    for _ in range(2 * READS):
        ramp.arrived(MIB)
    clock.now += 0.2
    assert ramp.decide(1 << 40) == 4


def test_a_window_holds_a_few_reads_of_each_connection() -> None:
    clock = Clock()
    ramp = Ramp(4, window=0.2, settle=0.05, clock=clock)
    _first_step(ramp, clock)
    clock.now += 0.01
    ramp.joined()
    clock.now += 0.05
    assert ramp.decide(1 << 40) is None  # the window starts
    # Slow reads: after 0.2 s, only 2 of the 6 a two-connection window needs.
    for _ in range(2):
        clock.now += 0.1
        ramp.arrived(3 * MIB)
        assert ramp.decide(1 << 40) is None
    for _ in range(2 * READS - 2):
        clock.now += 0.1
        ramp.arrived(3 * MIB)
    assert ramp.decide(1 << 40) == 4


# --- how the rest of the file is cut -------------------------------------------------------


def test_pieces_shrink_to_shares_of_what_is_left_near_the_end() -> None:
    assert cut(0, 100, 10, 4) == [
        (0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 70),
        # 30 left, less than four full pieces: a quarter of what is left each time,
        (70, 78), (78, 84), (84, 88), (88, 91), (91, 94),
        # never less than a quarter of a full piece, but the very last bytes.
        (94, 96), (96, 98), (98, 100),
    ]  # fmt: skip


def test_pieces_with_one_connection_or_a_short_rest() -> None:
    assert cut(5, 30, 10, 1) == [(5, 15), (15, 25), (25, 30)]
    assert cut(0, 3, 10, 4) == [(0, 2), (2, 3)]
    assert cut(7, 7, 10, 4) == []


def _finish_times(pieces: list[tuple[int, int]], joined: list[float], speed: float) -> list[float]:
    """When each connection runs out of work: connections take the next piece when free."""
    free = [(t, i) for i, t in enumerate(joined)]
    heapq.heapify(free)
    done = list(joined)
    for begin, end in pieces:
        t, i = heapq.heappop(free)
        done[i] = t + (end - begin) / speed
        heapq.heappush(free, (done[i], i))
    return done


def test_connections_that_joined_at_different_times_finish_together() -> None:
    rng = random.Random(7)
    size, speed = 8 * MIB, 16 * MIB  # a piece takes each connection half a second
    spreads = []
    for _ in range(20):
        joined = sorted(rng.uniform(0, 0.5) for _ in range(4))
        done = _finish_times(cut(14 * MIB, 192 * MIB, size, 4), joined, speed)
        spreads.append(max(done) - min(done))
    # Within about the time of the smallest piece, a quarter of a full one (0.125 s); with
    # equal pieces one connection fetches the last alone for up to half a second (0.4 s
    # for these joining times).
    assert max(spreads) <= 0.15, spreads


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_capping_each_connection_at_16_mib_s_is_fetched_over_four(
    tmp_path: Path,
) -> None:
    """bench/download.py (b) in small, with the default options: four connections, and the
    last pieces shorter than the others. Wall time with a wide margin (a busy machine):
    at most 60% of what one connection takes at the cap; four ideally take a quarter (the
    decisions themselves are asserted above, on a fake clock)."""
    size, cap = 128 * MIB, 16 * MIB  # one connection: 8 s
    with DemoServer(tmp_path / "files", large_size=size, catalogue=()) as server:
        server.rate_limit = cap
        url = large_url(server)
        server.clear_requests()
        options = DownloadOptions(retries=2, sleep=lambda _s: None)
        settings = replace(
            Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
            network=NetworkSettings(retries=2, backoff_max=0.01, read_timeout=10),
        )
        with build_client(settings, sleep=lambda _s: None) as http:
            began = time.monotonic()
            result = download(http, DownloadSpec(url, tmp_path / "out.safetensors", size=size),
                              options)  # fmt: skip
            elapsed = time.monotonic() - began
        ranges = [r.header("Range") for r in server.requests if r.server == "storage"]
    assert result.hashes.sha256 == served_sha256(size)
    assert result.connections == 4, f"{elapsed:.1f} s, {ranges}"
    # By offset: requests from different connections reach the server in either order.
    spans = sorted({_span(r) for r in ranges if r is not None})
    full = options.piece_size
    assert spans and spans[-1][1] == size - 1, ranges
    assert max(b - a + 1 for a, b in spans[-4:]) < full, ranges  # the tail, cut finer
    assert elapsed <= size / cap * 0.6, f"{elapsed:.1f} s; one connection takes {size / cap:.0f} s"


def _span(header: str) -> tuple[int, int]:
    first, _, last = header.removeprefix("bytes=").partition("-")
    return int(first), int(last)
