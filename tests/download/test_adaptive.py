"""The adaptive connection count: one connection, more only while each new one raises the total.

``Ramp``'s decisions with a fake clock, then real downloads over sockets on 127.0.0.1: a
server capping each connection (four connections must be at least three times as fast as
the cap allows one) and a server whose whole link is full with one connection (splitting
must be tried at most once, undone, and not slow the download down).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx2
import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.download import DownloadOptions, DownloadSpec, download
from sdlib.download._ramp import FAST, READS, SETTLE, WINDOW, Ramp
from sdlib.download._transfer import RAMP_READ, next_read_size
from sdlib.http import build_client
from tests.support.large_file import large_url, served_sha256
from tests.support.quiet_server import QuietServer

MIB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(ramp: Ramp, clock: Clock, rate_of: dict[int, float], left: int) -> list[int]:
    """Feed ``ramp`` what ``rate_of[count]`` bytes/s would deliver; the counts it chose."""
    chosen = []
    for _ in range(80):
        step = 0.05
        clock.now += step
        ramp.arrived(int(rate_of[ramp.count] * step))
        before = ramp.count
        if (count := ramp.decide(left)) is not None:
            chosen.append(count)
            for _ in range(count - before):
                ramp.joined()  # each new connection delivers its first bytes at once
    return chosen


def test_capped_connections_ramp_up_to_the_most() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    # Each connection capped at 10 MB/s, far below the link: linear scaling.
    chosen = _run(ramp, clock, {n: n * 10e6 for n in range(1, 5)}, left=1 << 40)
    assert chosen == [2, 4]  # doubled after a step that scaled linearly
    assert ramp.count == 4 and ramp.settled and ramp.peak == 4


def test_a_full_link_goes_back_to_one_connection() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    chosen = _run(ramp, clock, {1: 100e6, 2: 104e6, 3: 100e6, 4: 100e6}, left=1 << 40)
    assert chosen == [2, 1]  # tried once, undone
    assert ramp.count == 1 and ramp.settled and ramp.peak == 2


def test_a_connection_already_fast_is_not_split() -> None:
    """At FAST and above no second connection is tried: caps sit far below it, and a second
    connection's bytes only queue behind the hashing (they looked like a gain on loopback)."""
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    # What a CPU-bound loopback showed: the second connection's bytes arrive faster for a
    # while (into piece buffers), so the step would be judged a partial gain and kept.
    chosen = _run(ramp, clock, {1: FAST * 1.5, 2: FAST * 2.2, 3: FAST * 2.2, 4: FAST * 2.2},
                  left=1 << 40)  # fmt: skip
    assert chosen == []
    assert ramp.count == 1 and ramp.settled and ramp.peak == 1


def test_a_step_that_pays_partly_is_kept_and_the_next_is_one_more() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    # The second connection adds 65% of one: kept; the third adds 10%: undone.
    chosen = _run(ramp, clock, {1: 10e6, 2: 16.5e6, 3: 17.5e6, 4: 17.5e6}, left=1 << 40)
    assert chosen == [2, 3, 2]
    assert ramp.count == 2 and ramp.settled


def test_a_step_that_adds_a_little_is_kept_and_the_next_is_one_more() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    # Each connection adds 40% of one: each step is kept, and followed by one more.
    chosen = _run(ramp, clock, {1: 10e6, 2: 14e6, 3: 18e6, 4: 22e6}, left=1 << 40)
    assert chosen == [2, 3, 4]
    assert ramp.count == 4 and ramp.settled


def test_no_step_when_the_rest_would_take_less_than_the_trial() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    # At 100 MB/s, 50 MB left is half a second: trying a second connection cannot pay.
    assert _run(ramp, clock, {1: 100e6}, left=50_000_000) == []
    assert ramp.count == 1


def test_decisions_wait_for_a_settled_window() -> None:
    clock = Clock()
    ramp = Ramp(4, clock=clock)
    ramp.restart()
    ramp.arrived(10**12)  # the response's first bytes: not counted
    clock.now += SETTLE
    assert ramp.decide(1 << 40) is None  # the first window starts with this read
    for _ in range(READS):
        ramp.arrived(10**6)
    clock.now += WINDOW * 0.51
    assert ramp.decide(1 << 40) is None  # half a window
    clock.now += WINDOW * 0.51
    assert ramp.decide(1 << 40) == 2
    ramp.arrived(10**12)  # arrivals while the new connection settles are not counted
    clock.now += SETTLE + WINDOW
    assert ramp.decide(1 << 40) is None  # nor before it delivered its first bytes
    ramp.joined()  # it took SETTLE + WINDOW: as long again before anything counts
    clock.now += (SETTLE + WINDOW) * 0.99
    assert ramp.decide(1 << 40) is None
    clock.now += (SETTLE + WINDOW) * 0.02
    assert ramp.decide(1 << 40) is None  # the window starts with this read
    for _ in range(2):  # 1/10 of the first window's rate: the step did not pay
        for _ in range(2 * READS):
            ramp.arrived(10**6 // 20)
        clock.now += WINDOW * 1.01
        if ramp.decide(1 << 40) is None:
            continue  # a second window decides
        break
    assert ramp.count == 1 and ramp.settled


def test_fixed_count_never_changes() -> None:
    clock = Clock()
    ramp = Ramp.fixed(3)
    assert ramp.count == 3 and ramp.settled
    assert _run(ramp, clock, {3: 1e6}, left=1 << 40) == []


# --- real sockets -----------------------------------------------------------------------------


def _client(tmp_path: Path) -> httpx2.Client:
    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        network=NetworkSettings(retries=2, backoff_max=0.01, read_timeout=10),
    )
    return build_client(settings, sleep=lambda _s: None)


@pytest.mark.slow
def test_a_server_capping_each_connection_gets_four_and_three_times_the_speed(
    tmp_path: Path,
) -> None:
    size, cap = 96 * MIB, 4 * MIB  # one connection: 24 s
    with DemoServer(tmp_path / "files", large_size=size, catalogue=()) as server:
        server.rate_limit = cap
        url = large_url(server)
        options = DownloadOptions(piece_size=2 * MIB, split_threshold=16 * MIB, retries=2,
                                  sleep=lambda _s: None)  # fmt: skip
        with _client(tmp_path) as http:
            began = time.monotonic()
            result = download(http, DownloadSpec(url, tmp_path / "out.safetensors", size=size),
                              options)  # fmt: skip
            elapsed = time.monotonic() - began
    assert result.connections == 4
    assert result.hashes.sha256 == served_sha256(size)
    assert elapsed * 3 <= size / cap, f"{elapsed:.1f} s, one connection takes {size / cap:.0f} s"


class _SharedLink:
    """A server whose link carries ``rate`` bytes/s in total, however many connections."""

    def __init__(self, data: bytes, rate: int) -> None:
        self.data = data
        self.rate = rate
        self.lock = threading.Lock()
        self.sent = 0
        self.began = time.monotonic()
        self.ranges: list[str | None] = []

    def take(self, n: int) -> None:
        with self.lock:
            self.sent += n
            due = self.began + self.sent / self.rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)


@pytest.fixture
def shared_link() -> Iterator[tuple[str, _SharedLink]]:
    data = bytes(range(256)) * (40 * MIB // 256)
    link = _SharedLink(data, rate=8 * MIB)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("Range")
            link.ranges.append(asked)
            start, end = 0, len(data)
            if asked:
                first, _, last = asked.removeprefix("bytes=").partition("-")
                start, end = int(first), (int(last) + 1 if last else len(data))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            for at in range(start, end, 64 << 10):
                chunk = data[at : min(end, at + (64 << 10))]
                link.take(len(chunk))
                self.wfile.write(chunk)

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/blob.bin", link
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_full_link_is_not_slowed_by_splitting(
    tmp_path: Path, shared_link: tuple[str, _SharedLink]
) -> None:
    url, link = shared_link
    size = len(link.data)
    options = DownloadOptions(piece_size=2 * MIB, split_threshold=16 * MIB, retries=2,
                              sleep=lambda _s: None)  # fmt: skip
    with _client(tmp_path) as http:
        began = time.monotonic()
        result = download(http, DownloadSpec(url, tmp_path / "blob.bin", size=size), options)
        elapsed = time.monotonic() - began
    assert result.hashes.sha256 == hashlib.sha256(link.data).hexdigest().upper()
    # A second connection was tried once (it added nothing) and undone: the rest came over
    # one open-ended stream again, not piece by piece.
    assert result.connections <= 2
    assert link.ranges[0] is None
    last = link.ranges[-1]
    assert last is not None and last.endswith("-"), link.ranges
    assert elapsed <= 1.15 * size / link.rate + 0.5, f"{elapsed:.1f} s for {size / link.rate} s"


def test_reads_aim_at_a_few_milliseconds_while_the_count_is_open() -> None:
    """``next_read_size`` with ``aim``: at 16 MiB/s (a capped server) reads settle at what
    arrives in about ``RAMP_READ`` seconds, not at the 1 MiB cap (60 ms a read); on a fast
    link they still grow to the cap."""
    rate = 16 * MIB
    step = 64 << 10
    for _ in range(12):
        step = next_read_size(step, step / rate, 60.0, MIB, aim=RAMP_READ)
    assert RAMP_READ / 2 <= step / rate <= RAMP_READ * 2, step
    fast = 64 << 10
    for _ in range(12):
        fast = next_read_size(fast, fast / (1 << 30), 60.0, MIB, aim=RAMP_READ)
    assert fast == MIB
    # Without an aim, the 16 MiB/s reads grow to the cap as before.
    plain = 64 << 10
    for _ in range(12):
        plain = next_read_size(plain, plain / rate, 60.0, MIB)
    assert plain == MIB


def test_the_stream_reads_small_while_the_count_is_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a server capping each connection at 16 MiB/s, the first stream's reads stay
    near what arrives in ``RAMP_READ`` seconds while the ramp decides (a decision is due
    between two reads: a 1 MiB read made each up to 60 ms late), and four connections are
    reached."""
    from sdlib.http import _fastbody

    asked: list[int] = []
    real = _fastbody._Body.readinto

    def recording(self: _fastbody._Body, buffer: memoryview) -> int:
        if "range" not in self._request.headers:  # the first GET: the stream
            asked.append(len(buffer))
        return real(self, buffer)

    monkeypatch.setattr(_fastbody._Body, "readinto", recording)
    size, cap = 48 * MIB, 16 * MIB
    with DemoServer(tmp_path / "files", large_size=size, catalogue=()) as server:
        url = large_url(server)
        server.rate_limit = cap
        options = DownloadOptions(piece_size=4 * MIB, split_threshold=16 * MIB, retries=2,
                                  sleep=lambda _s: None)  # fmt: skip
        with _client(tmp_path) as http:
            result = download(http, DownloadSpec(url, tmp_path / "out.safetensors", size=size),
                              options)  # fmt: skip
    assert result.connections == 4
    assert result.hashes.sha256 == served_sha256(size)
    settled = asked[6:]  # the first reads grow from FIRST_READ
    assert settled, asked
    # RAMP_READ at 16 MiB/s is ~200 KiB; one doubling above it at most (a busy machine
    # makes reads slower, so smaller, never larger).
    assert max(settled) <= 512 << 10, asked
