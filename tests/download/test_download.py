"""The download engine against the local Civitai-compatible server (real HTTP, real sockets).

Every failure must leave the target folder as it was, plus at most a resumable part file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.catalogue import LARGE_VERSION_ID
from sdlib.demo.server import DemoServer
from sdlib.download import (
    DownloadEvent,
    DownloadOptions,
    DownloadSpec,
    Retrying,
    download,
    part_path,
)
from sdlib.errors import (
    AccessDenied,
    DiskFull,
    DownloadError,
    HashMismatch,
    Interrupted,
    SdlibError,
)
from sdlib.hashing import hash_file
from sdlib.http import build_client
from sdlib.sources.civitai import CivitaiClient, raise_for_status
from sdlib.taxonomy import Container

LARGE = 24 << 20  # big enough for several pieces, small enough for CI


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=LARGE) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


def _settings(server: DemoServer, tmp_path: Path) -> Settings:
    return replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=server.url, token="demo-token"),
        network=NetworkSettings(retries=3, backoff_max=0.01, read_timeout=5),
    )


@pytest.fixture
def env(
    server: DemoServer, tmp_path: Path
) -> Iterator[tuple[httpx2.Client, CivitaiClient, Settings]]:
    settings = _settings(server, tmp_path)
    http = build_client(settings, sleep=lambda _s: None)
    with http:
        yield http, CivitaiClient(http, base_url=server.url), settings


def _options(settings: Settings, **kw: object) -> DownloadOptions:
    # These download from Civitai's endpoint: its error mapping is the caller's to pass.
    base = DownloadOptions.from_settings(
        settings, sleep=lambda _s: None, stall_timeout=2.0, raise_for_status=raise_for_status
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _spec(civ: CivitaiClient, version: int, dest_dir: Path, **kw: object) -> DownloadSpec:
    target = civ.resolve_download(version)
    spec = DownloadSpec(
        url=target.url,
        dest=dest_dir / target.file_name,
        size=target.size,
        hashes=target.hashes,
        container=Container.SAFETENSORS if target.format == "SafeTensor" else None,
        refresh=lambda: civ.resolve_download(version).url,
    )
    return replace(spec, **kw)  # type: ignore[arg-type]


def _folder(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_download_lands_verified_and_leaves_nothing_else(env, tmp_path: Path) -> None:
    http, civ, settings = env
    dest = tmp_path / "models"
    spec = _spec(civ, 128713, dest)
    events: list[DownloadEvent] = []
    result = download(http, spec, _options(settings), events.append)
    assert result.path == spec.dest and result.path.is_file()
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    assert hash_file(result.path) == result.hashes
    assert _folder(dest) == [spec.dest.name]
    assert not list((tmp_path / "cache").rglob("*.json"))  # resume state cleaned up
    assert type(events[-1]).__name__ == "Finished"


def test_token_never_reaches_the_storage_host(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    download(http, _spec(civ, 128713, tmp_path), _options(settings))
    api = [r for r in server.requests if r.server == "api" and "/download/" in r.path]
    storage = [r for r in server.requests if r.server == "storage"]
    assert api and all(r.authorization for r in api)
    assert storage and not any(r.authorization for r in storage)
    assert not any("token" in r.path for r in server.requests)


def test_resume_after_drop_refetches_nothing_twice(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("drop", after_bytes=5 << 20, times=1)
    events: list[DownloadEvent] = []
    result = download(http, spec, _options(settings, connections=1), events.append)
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    assert any(isinstance(e, Retrying) for e in events)
    ranges = [r.header("Range") for r in server.requests if r.server == "storage"]
    assert ranges[0] is None
    # The retry asked for exactly what was missing: no byte fetched twice.
    received = int(ranges[1].split("=")[1].rstrip("-"))  # type: ignore[union-attr]
    assert 0 < received <= 5 << 20
    assert received >= (5 << 20) - (1 << 20)


def test_interrupted_download_resumes_in_a_later_run(
    env, server: DemoServer, tmp_path: Path
) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("drop", after_bytes=7 << 20)  # every attempt dies
    with pytest.raises(DownloadError, match="resume"):
        download(http, spec, _options(settings, connections=1, retries=0))
    part = part_path(spec.dest)
    assert _folder(tmp_path) == sorted([part.name, "cache"])
    kept = part.stat().st_size
    assert kept > 0
    server.reset()
    result = download(http, spec, _options(settings, connections=1))
    assert result.resumed_from == kept
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    first = next(r for r in server.requests if r.server == "storage")
    assert first.header("Range") == f"bytes={kept}-" and first.header("If-Range")


def test_multi_connection_download_verifies(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    result = download(
        http,
        spec,
        _options(
            settings, connections=4, adaptive=False, split_threshold=1 << 20, piece_size=2 << 20
        ),
    )
    assert result.connections == 4
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    ranged = [r for r in server.requests if r.server == "storage" and r.header("Range")]
    # The first GET's body carries the first piece (none of it thrown away); the rest in
    # ranged pieces of 2 MiB.
    assert len(ranged) >= (LARGE - (2 << 20)) // (2 << 20)


def test_multi_connection_survives_drops(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("drop", after_bytes=300_000, times=3)
    result = download(
        http,
        spec,
        _options(
            settings, connections=3, adaptive=False, split_threshold=1 << 20, piece_size=4 << 20
        ),
    )
    assert result.hashes.sha256 == spec.hashes["SHA256"]


def test_range_ignored_restarts_cleanly(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("drop", after_bytes=3 << 20, times=1)
    server.add_fault("range-ignored")
    result = download(http, spec, _options(settings, connections=1))
    assert result.hashes.sha256 == spec.hashes["SHA256"]


def test_complete_part_file_gets_416_and_finishes(
    env, server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdlib.download._engine as dl

    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)

    # A first run killed after writing every byte but before verifying and renaming.
    def killed(self: object, hashes: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dl._Download, "_verify", killed)
    with pytest.raises(Interrupted):
        download(http, spec, _options(settings))
    monkeypatch.undo()
    assert part_path(spec.dest).stat().st_size == spec.size
    server.clear_requests()
    result = download(http, spec, _options(settings))
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    storage = [r for r in server.requests if r.server == "storage"]
    assert [r.header("Range") for r in storage] == [f"bytes={spec.size}-"]


def test_expired_signed_url_is_resolved_again(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    server.add_fault("expired", times=1)
    result = download(http, spec, _options(settings))
    assert result.hashes.sha256 == spec.hashes["SHA256"]


def test_hash_mismatch_discards_everything(env, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path / "m")
    bad = replace(spec, hashes={**spec.hashes, "SHA256": "0" * 64})
    with pytest.raises(HashMismatch) as info:
        download(http, bad, _options(settings))
    assert info.value.exit_code == 4
    assert not (tmp_path / "m").exists() or _folder(tmp_path / "m") == []


def test_accept_mismatch_keeps_what_the_source_serves(env, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path / "m")
    bad = replace(spec, hashes={**spec.hashes, "SHA256": "0" * 64})
    result = download(http, bad, _options(settings, accept_mismatch=True))
    assert hash_file(result.path).sha256 == spec.hashes["SHA256"]  # the bytes served
    v = result.verification
    assert v is not None and v.status == "unverified" and v.accepted_mismatch
    assert [(d.hash, d.published) for d in v.disagreements] == [("SHA256", "0" * 64)]


def test_accept_mismatch_takes_another_size_too(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path / "m")
    server.add_fault("wrong-length", delta=512)  # the server sends 512 bytes more
    result = download(http, spec, _options(settings, accept_mismatch=True, connections=1))
    assert result.path.stat().st_size == spec.size + 512
    v = result.verification
    assert v is not None and v.size_matches is False and v.accepted_mismatch
    assert not v.verified and "size" in (v.warning() or "")


def test_pieces_over_httpx_own_transport(env, tmp_path: Path) -> None:
    """Behind a proxy, bodies come as httpx2's chunks, larger or smaller than each read."""
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    storage = http.get(spec.url, follow_redirects=False).headers["Location"]
    opts = _options(
        settings, connections=3, adaptive=False, split_threshold=1 << 20, piece_size=1 << 20
    )
    with httpx2.Client(timeout=5) as plain:
        result = download(plain, replace(spec, url=storage, refresh=None), opts)
    assert result.connections == 3
    assert hash_file(result.path).sha256 == spec.hashes["SHA256"]


def test_wrong_length_is_refused(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path / "m")
    server.add_fault("wrong-length", delta=-1024)
    with pytest.raises(SdlibError):
        download(http, spec, _options(settings, retries=1))
    assert not spec.dest.exists()


def test_html_page_instead_of_model(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path / "m", hashes={}, size=None)
    server.add_fault("html", match="/files/")
    with pytest.raises(DownloadError, match="HTML"):
        download(http, spec, _options(settings))
    assert not spec.dest.exists() and not part_path(spec.dest).exists()


def test_stall_is_retried(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    server.add_fault("stall", after_bytes=10_000, seconds=5, times=1)
    result = download(http, spec, _options(settings, stall_timeout=0.5))
    assert result.hashes.sha256 == spec.hashes["SHA256"]


def test_early_access_error_comes_through(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    server.add_fault("403-early", match="/api/download/", deadline="2031-05-01T00:00:00.000Z")
    with pytest.raises(AccessDenied, match="2031-05-01"):
        download(http, spec, _options(settings))
    assert _folder(tmp_path) == []


def test_rate_limit_with_retry_after_is_waited_out(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    server.add_fault("429", match="/api/download/", retry_after=0.01, times=2)
    assert download(http, spec, _options(settings)).path.is_file()


def test_two_concurrent_downloads_of_the_same_file(env, server: DemoServer, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.rate_limit = 8 << 20  # slow enough that the two overlap
    results: list[object] = []

    def run() -> None:
        try:
            results.append(download(http, spec, _options(settings, connections=1)))
        except SdlibError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, SdlibError)]
    assert len(errors) == 1 and "another sdlib process" in str(errors[0])
    assert hash_file(spec.dest).sha256 == spec.hashes["SHA256"]


def test_full_disk_is_refused_before_writing(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, civ, settings = env
    import shutil

    spec = _spec(civ, 128713, tmp_path / "m")
    (tmp_path / "m").mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 0))  # type: ignore[attr-defined]
    with pytest.raises(DiskFull, match="free space"):
        download(http, spec, _options(settings))
    assert _folder(tmp_path / "m") == []


def test_existing_target_is_never_overwritten(env, tmp_path: Path) -> None:
    http, civ, settings = env
    spec = _spec(civ, 128713, tmp_path)
    spec.dest.write_bytes(b"precious")
    with pytest.raises(DownloadError, match="already exists"):
        download(http, spec, _options(settings))
    assert spec.dest.read_bytes() == b"precious"


@pytest.mark.parametrize("connections", [1, 4])
def test_bodies_are_read_straight_into_buffers(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    from sdlib.http import _fastbody as fastbody

    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    read = 0
    real = fastbody._Body.readinto

    def counting(self: fastbody._Body, buffer: object) -> int:
        nonlocal read
        n = real(self, buffer)
        read += n
        return n

    monkeypatch.setattr(fastbody._Body, "readinto", counting)
    options = _options(settings, connections=connections, adaptive=False, split_threshold=1 << 20)
    result = download(http, spec, options)
    assert result.connections == connections
    assert result.hashes.sha256 == spec.hashes["SHA256"]
    assert read == LARGE  # every byte came through readinto, none through h11


@pytest.mark.parametrize("connections", [1, 3])
def test_a_link_that_keeps_dropping_but_delivering_is_not_given_up(
    env, server: DemoServer, tmp_path: Path, connections: int
) -> None:
    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("drop", after_bytes=3 << 20)  # every response, for good
    options = _options(settings, connections=connections, adaptive=False, split_threshold=1 << 20,
                       piece_size=8 << 20, retries=1)  # fmt: skip
    result = download(http, spec, options)
    assert result.hashes.sha256 == spec.hashes["SHA256"]


@pytest.mark.parametrize("connections", [1, 3])
def test_a_cancel_does_not_wait_for_a_silent_server(
    env, server: DemoServer, tmp_path: Path, connections: int
) -> None:
    import time

    http, civ, settings = env
    spec = _spec(civ, LARGE_VERSION_ID, tmp_path)
    server.add_fault("stall", after_bytes=2 << 20, seconds=20)  # every response goes silent
    cancel = threading.Event()
    options = _options(settings, connections=connections, adaptive=False, split_threshold=1 << 20,
                       piece_size=4 << 20, stall_timeout=15.0, cancel=cancel)  # fmt: skip
    threading.Timer(1.0, cancel.set).start()  # the user presses pause once it is silent
    started = time.monotonic()
    with pytest.raises(Interrupted):
        download(http, spec, options)
    assert time.monotonic() - started < 4  # not the 15 s stall timeout
    assert not spec.dest.exists()
    if connections == 1:  # what arrived before the silence is kept for resuming
        assert part_path(spec.dest).stat().st_size == 2 << 20
