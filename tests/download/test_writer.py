"""The part file is written on a thread of its own (``sdlib.download._writer``): what the
receiving thread hands over lands in order, a failed write (a full disk, EIO) is the error
reported, and after a Ctrl-C, a cancel or a failure only bytes really written count as
kept (the record, the part file and the next run's ``Range`` agree on them)."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.catalogue import LARGE_VERSION_ID, LargeFile
from sdlib.demo.server import DemoServer
from sdlib.download import (
    DownloadEvent,
    DownloadOptions,
    DownloadSpec,
    Progress,
    Retrying,
    download,
    part_path,
)
from sdlib.download import _writer as writer_module
from sdlib.download._writer import FileWriter
from sdlib.errors import DiskFull, DownloadError, Interrupted
from sdlib.http import build_client
from sdlib.sources.civitai import CivitaiClient, raise_for_status
from sdlib.taxonomy import Container

LARGE = 24 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=LARGE) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


@pytest.fixture
def env(
    server: DemoServer, tmp_path: Path
) -> Iterator[tuple[httpx2.Client, Settings, DownloadSpec]]:
    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=server.url, token="demo-token"),
        network=NetworkSettings(retries=2, backoff_max=0.01, read_timeout=5),
    )
    with build_client(settings, sleep=lambda _s: None) as http:
        civ = CivitaiClient(http, base_url=server.url)
        target = civ.resolve_download(LARGE_VERSION_ID)
        spec = DownloadSpec(
            url=target.url, dest=tmp_path / "models" / target.file_name, size=target.size,
            hashes=target.hashes, container=Container.SAFETENSORS,
            refresh=lambda: civ.resolve_download(LARGE_VERSION_ID).url,
        )  # fmt: skip
        yield http, settings, spec


def _options(settings: Settings, **kw: object) -> DownloadOptions:
    base = DownloadOptions.from_settings(
        settings, sleep=lambda _s: None, stall_timeout=5.0, raise_for_status=raise_for_status
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _served_prefix(n: int) -> bytes:
    """The first ``n`` bytes of the file the demo server serves, from its own generator."""
    with LargeFile(LARGE).open() as fh:
        data = fh.read(n)
    assert isinstance(data, bytes)
    return data


def _record(settings: Settings) -> dict[str, object]:
    (path,) = (settings.cache_dir / "partials").glob("*.json")
    state: dict[str, object] = json.loads(path.read_text())
    return state


def _fake_os(write: Callable[[int, memoryview], int]) -> types.SimpleNamespace:
    return types.SimpleNamespace(write=write)


def _disk_filling_after(limit: int, error: int = errno.ENOSPC) -> Callable[[int, memoryview], int]:
    """``os.write`` on a disk that takes ``limit`` bytes in all, then fails with ``error``
    (the last write that fits is a short one, as on a real full disk)."""
    written = 0

    def write(fd: int, data: memoryview) -> int:
        nonlocal written
        room = limit - written
        if room <= 0:
            raise OSError(error, os.strerror(error))
        n = os.write(fd, data[:room])
        written += n
        return n

    return write


def _slow_write(seconds: float) -> Callable[[int, memoryview], int]:
    """``os.write`` on a disk that takes ``seconds`` per call: the writer falls behind."""

    def write(fd: int, data: memoryview) -> int:
        time.sleep(seconds)
        return os.write(fd, data)

    return write


# --- the writer alone -------------------------------------------------------------------------


def _resumes_from(offset: int, env: tuple[httpx2.Client, Settings, DownloadSpec],
                  server: DemoServer) -> None:  # fmt: skip
    """The next run asks the file's host for the rest from ``offset`` and lands it whole."""
    http, settings, spec = env
    server.clear_requests()
    result = download(http, spec, _options(settings, connections=1))
    assert result.resumed_from == offset
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    first = next(r for r in server.requests if r.server == "storage")
    assert first.header("Range") == f"bytes={offset}-"


def test_writer_appends_in_order_and_frees_each_buffer_once_written(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with open(path, "ab") as fh:
        writer = FileWriter(fh.fileno())
        chunks = [bytes([i]) * (100_000 + i) for i in range(20)]
        for chunk in chunks:
            writer.put(chunk)
        writer.wait_done(writer.fed)
        assert writer.unwritten == 0
        assert writer.close() == 0
    assert path.read_bytes() == b"".join(chunks)


def test_a_write_failing_stops_the_writer_and_counts_only_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "os", _fake_os(_disk_filling_after(250_000)))
    path = tmp_path / "out.bin"
    with open(path, "ab") as fh:
        writer = FileWriter(fh.fileno())
        for i in range(5):
            writer.put(bytes([i + 1]) * 100_000)
        with pytest.raises(OSError) as caught:
            writer.wait_done(5)
        assert caught.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            writer.put(b"more")  # nothing more is taken once a write failed
        assert writer.close() == 500_000 - 250_000
    data = path.read_bytes()
    assert data == b"\x01" * 100_000 + b"\x02" * 100_000 + b"\x03" * 50_000


# --- the engine -------------------------------------------------------------------------------


@pytest.mark.parametrize("connections", [1, 3])
def test_disk_full_mid_download_keeps_exactly_what_was_written_and_resumes(
    env, server: DemoServer, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    http, settings, spec = env
    limit = (5 << 20) + 12345  # mid-buffer: the last write that fits is a short one
    monkeypatch.setattr(writer_module, "os", _fake_os(_disk_filling_after(limit)))
    events: list[DownloadEvent] = []
    options = _options(settings, connections=connections, adaptive=False,
                       split_threshold=1 << 20, piece_size=4 << 20)  # fmt: skip
    with pytest.raises(DiskFull, match="disk full"):
        download(http, spec, options, events.append)
    assert not any(isinstance(e, Retrying) for e in events)  # not mistaken for the network
    part = part_path(spec.dest)
    assert part.stat().st_size == limit
    assert part.read_bytes() == _served_prefix(limit)
    record = _record(settings)
    assert record["kept"] == limit and record["stopped_by"] == "disk-full"
    assert sorted(p.name for p in spec.dest.parent.iterdir()) == [part.name]

    monkeypatch.undo()  # space freed: the next run goes on from there
    _resumes_from(limit, env, server)


def test_a_write_error_other_than_a_full_disk_is_reported_as_such(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, settings, spec = env
    monkeypatch.setattr(writer_module, "os", _fake_os(_disk_filling_after(3 << 20, errno.EIO)))
    with pytest.raises(DownloadError, match="cannot write") as caught:
        download(http, spec, _options(settings, connections=1))
    assert not isinstance(caught.value, DiskFull)
    part = part_path(spec.dest)
    assert part.read_bytes() == _served_prefix(3 << 20)
    assert _record(settings)["kept"] == 3 << 20
    assert not spec.dest.exists()


@pytest.mark.parametrize("connections", [1, 3])
def test_ctrl_c_while_the_writer_is_behind_keeps_every_byte_that_arrived(
    env, server: DemoServer, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    http, settings, spec = env
    monkeypatch.setattr(writer_module, "os", _fake_os(_slow_write(0.01)))
    arrived = 0

    def on_event(event: DownloadEvent) -> None:
        nonlocal arrived
        if isinstance(event, Progress):
            arrived = event.done
            if event.done >= 6 << 20:
                raise KeyboardInterrupt  # Ctrl-C on the receiving thread

    options = _options(settings, connections=connections, adaptive=False,
                       split_threshold=1 << 20, piece_size=4 << 20)  # fmt: skip
    with pytest.raises(Interrupted, match="kept"):
        download(http, spec, options, on_event)
    part = part_path(spec.dest)
    # Everything handed to the writer before the Ctrl-C was written, and counted.
    assert part.stat().st_size == arrived == _record(settings)["kept"]
    assert part.read_bytes() == _served_prefix(arrived)

    monkeypatch.undo()
    _resumes_from(arrived, env, server)


def test_a_cancel_while_the_writer_is_behind_keeps_what_arrived_and_resumes(
    env, server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, settings, spec = env
    monkeypatch.setattr(writer_module, "os", _fake_os(_slow_write(0.01)))
    cancel = threading.Event()
    arrived = 0

    def on_event(event: DownloadEvent) -> None:
        nonlocal arrived
        if isinstance(event, Progress):
            arrived = event.done
            if event.done >= 4 << 20:
                cancel.set()  # the user presses cancel; the write after it stops

    with pytest.raises(Interrupted, match="stopped"):
        download(http, spec, _options(settings, connections=1, cancel=cancel), on_event)
    part = part_path(spec.dest)
    assert part.stat().st_size == arrived == _record(settings)["kept"]
    assert part.read_bytes() == _served_prefix(arrived)

    monkeypatch.undo()
    result = download(http, spec, _options(settings, connections=1))
    assert result.resumed_from == arrived
    assert result.hashes.sha256 == spec.hashes["SHA256"]


def test_the_receiving_thread_never_writes_the_file(env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy into the page cache runs on the writer's thread, whichever connection
    count; the receiving thread only hands buffers over."""
    http, settings, spec = env
    writers: set[str] = set()

    def write(fd: int, data: memoryview) -> int:
        writers.add(threading.current_thread().name)
        return os.write(fd, data)

    monkeypatch.setattr(writer_module, "os", _fake_os(write))
    main = threading.current_thread().name
    result = download(http, spec, _options(settings, connections=1))
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    assert writers == {"sdlib-writer"} and main not in writers


def test_a_writer_failing_with_an_unexpected_error_stops_the_download(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an OSError (a bug, say): still the download's error, never a thread dying
    quietly while the hashes go on as if its bytes had been written."""
    http, settings, spec = env
    calls = 0

    def write(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise ValueError("boom")
        return os.write(fd, data)

    monkeypatch.setattr(writer_module, "os", _fake_os(write))
    with pytest.raises(DownloadError, match="cannot write"):
        download(http, spec, _options(settings, connections=1))
    assert not spec.dest.exists()
    part = part_path(spec.dest)
    kept = part.stat().st_size
    assert 0 < kept == _record(settings)["kept"]
    assert part.read_bytes() == _served_prefix(kept)


def test_a_part_file_short_of_what_was_hashed_never_takes_the_name(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hashes come from the bytes received, the file from the writes: should a write
    ever claim bytes it did not write, the size check before the rename refuses the file
    (its hashes would match what was published, its content would not)."""
    http, settings, spec = env
    calls = 0

    def write(fd: int, data: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 5:
            return len(data)  # claims the buffer, writes nothing
        return os.write(fd, data)

    monkeypatch.setattr(writer_module, "os", _fake_os(write))
    with pytest.raises(DownloadError, match="part file holds"):
        download(http, spec, _options(settings, connections=1))
    assert not spec.dest.exists()
    assert not part_path(spec.dest).exists()


def test_a_growing_part_file_is_pushed_to_disk_every_8_mib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background flush syncs the part file after every 8 MiB written, so the fsync
    before the rename waits for at most that much (16 MiB before: the end of a 1 GiB
    download waited 32-113 ms for it on a busy machine, 17-76 ms now)."""
    if not hasattr(os, "fdatasync"):
        pytest.skip("no fdatasync here: the final fsync does all the work")
    from sdlib.download._transfer import BackgroundFlush

    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(fd))
    with open(tmp_path / "x.part", "wb") as fh:
        flush = BackgroundFlush.start(fh.fileno())
        assert flush is not None
        for _ in range(32):  # 32 MiB written, 1 MiB at a time
            flush.wrote(1 << 20)
            time.sleep(0.02)
        flush.stop()
    assert len(synced) >= 3, synced  # 4 when the flusher kept up; 2 with 16 MiB
