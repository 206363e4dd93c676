"""The download engine against a hostile or broken server (a tiny http.server on 127.0.0.1):
non-HTTP redirects, redirect loops, trickling bodies, endless bodies, tiny files on a
nearly full disk, and file names that shadow sdlib's own part files."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx2
import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.download import DownloadOptions, DownloadSpec, download, part_path
from sdlib.download._transfer import SpeedFloor
from sdlib.errors import DiskFull, DownloadError, SdlibError
from sdlib.http import build_client
from sdlib.library.placement import choose_name
from sdlib.names import safe_filename
from tests.support.quiet_server import QuietServer

SMALL = bytes(range(256)) * 96  # 24 KiB


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict[str, int]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        hits = self.server.hits  # type: ignore[attr-defined]
        hits[self.path] = hits.get(self.path, 0) + 1
        if self.path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/small":
            self._head(200, len(SMALL))
            self.wfile.write(SMALL)
        elif self.path == "/trickle":
            self._head(200, 1 << 20)
            self._trickle()
        elif self.path == "/slow":
            self._head(200, len(SMALL))
            for i in range(0, len(SMALL), 2048):  # 20 KiB/s: slow, but steady
                self.wfile.write(SMALL[i : i + 2048])
                self.wfile.flush()
                time.sleep(0.1)
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self._endless()
        else:
            self._head(404, 0)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _trickle(self) -> None:
        # A byte every 50 ms: never silent long enough for a read timeout.
        try:
            for _ in range(400):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass
        self.close_connection = True

    def _endless(self) -> None:
        chunk = bytes(64 << 10)
        try:
            for _ in range(1 << 14):  # 1 GiB at most, should the client never stop
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True


@pytest.fixture(scope="module")
def origin() -> Iterator[tuple[str, dict[str, int]]]:
    server = QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    hits: dict[str, int] = {}
    server.hits = hits  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def http(tmp_path: Path) -> Iterator[httpx2.Client]:
    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        network=NetworkSettings(retries=1, backoff_max=0.01, read_timeout=5, connect_timeout=2),
    )
    with build_client(settings, sleep=lambda _s: None) as client:
        yield client


def options(**kw: object) -> DownloadOptions:
    base = DownloadOptions(retries=4, sleep=lambda _s: None, stall_timeout=5.0, connections=1)
    return replace(base, **kw)  # type: ignore[arg-type]


def nothing_left(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_a_redirect_to_a_file_url_is_refused_at_once(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path
) -> None:
    url, hits = origin
    spec = DownloadSpec(url=f"{url}/to-file", dest=tmp_path / "m" / "x.safetensors")
    with pytest.raises(DownloadError) as info:
        download(http, spec, options())
    assert info.value.exit_code == 7
    message = str(info.value)
    assert "file:" in message and "not an HTTP(S)" in message and "\n" not in message
    assert hits["/to-file"] == 1  # not retried
    assert nothing_left(tmp_path / "m")


def test_a_redirect_loop_ends_in_one_network_error(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path
) -> None:
    url, hits = origin
    before = hits.get("/loop", 0)
    spec = DownloadSpec(url=f"{url}/loop", dest=tmp_path / "m" / "x.safetensors")
    with pytest.raises(DownloadError) as info:
        download(http, spec, options())
    assert info.value.exit_code == 7 and "loop" in str(info.value)
    assert hits["/loop"] - before <= http.max_redirects + 1  # one round, no retries
    assert nothing_left(tmp_path / "m")


@pytest.mark.parametrize("transport", ["fast", "httpx2"])
def test_a_trickling_body_is_cut(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path, transport: str
) -> None:
    url, _ = origin
    plain = httpx2.Client(timeout=5)  # httpx2's own transport, as behind a proxy
    spec = DownloadSpec(url=f"{url}/trickle", dest=tmp_path / "x.bin", size=1 << 20)
    start = time.monotonic()
    with plain, pytest.raises(DownloadError, match="trickles") as info:
        client = plain if transport == "httpx2" else http
        download(client, spec, options(stall_timeout=0.4, min_speed=4096, retries=1))
    assert time.monotonic() - start < 5  # two attempts of about one window each
    assert info.value.exit_code == 7
    assert not spec.dest.exists()


def test_a_slow_but_steady_link_is_not_cut(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path
) -> None:
    url, hits = origin
    spec = DownloadSpec(url=f"{url}/slow", dest=tmp_path / "x.bin", size=len(SMALL))
    # The same floor as the trickle above; 20 KiB/s is five times above it.
    result = download(http, spec, options(stall_timeout=1.0, min_speed=4096, retries=0))
    assert result.path.read_bytes() == SMALL and hits["/slow"] == 1


def test_the_speed_floor_counts_per_window() -> None:
    now = [0.0]
    floor = SpeedFloor(window=10, min_bytes=100, clock=lambda: now[0])
    for t, n in ((1, 60), (9, 30), (10.5, 20)):  # 110 bytes in the first window: fine
        now[0] = t
        assert floor.add(n) is None
    now[0] = 21  # the second window got 5 bytes
    assert floor.add(5) is not None
    assert SpeedFloor(window=10, min_bytes=0).add(1) is None  # switched off


def test_a_body_of_unknown_size_stops_at_the_ceiling(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path
) -> None:
    url, _ = origin
    folder = tmp_path / "m"
    spec = DownloadSpec(url=f"{url}/endless", dest=folder / "x.bin")
    with pytest.raises(SdlibError, match="max_unknown_size_gib") as info:
        download(http, spec, options(max_unknown_size=2 << 20))
    assert info.value.exit_code == 1
    assert nothing_left(folder)  # the part file was discarded


def test_the_ceiling_comes_from_the_settings() -> None:
    settings = Settings()
    assert DownloadOptions.from_settings(settings).max_unknown_size == 64 << 30
    small = replace(settings, download=replace(settings.download, max_unknown_size_gib=2))
    assert DownloadOptions.from_settings(small).max_unknown_size == 2 << 30


def test_a_tiny_file_fits_where_little_space_is_free(
    origin: tuple[str, dict[str, int]],
    http: httpx2.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = origin
    free = [1 << 20]  # 1 MiB free: far below the 64 MiB reserve for large files
    usage = shutil._ntuple_diskusage  # type: ignore[attr-defined]
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(1 << 30, 1 << 30, free[0]))
    spec = DownloadSpec(url=f"{url}/small", dest=tmp_path / "a" / "emb.pt", size=len(SMALL))
    assert download(http, spec, options()).path.read_bytes() == SMALL
    free[0] = 10 << 10  # 10 KiB free: the 24 KiB file does not fit
    spec = replace(spec, dest=tmp_path / "b" / "emb.pt")
    with pytest.raises(DiskFull) as info:
        download(http, spec, options())
    assert "24 KiB" in str(info.value) or "24.0 KiB" in str(info.value)
    assert "0 MiB" not in str(info.value)
    assert nothing_left(tmp_path / "b")


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("x.safetensors.part", "x.safetensors"),
        ("x.safetensors.PART", "x.safetensors"),
        ("x.safetensors.part.part", "x.safetensors"),
        ("x.ckpt.sdlib-part", "x.ckpt"),
        ("x.pt.tmp", "x.pt"),
        ("x.safetensors.downloading", "x.safetensors"),
        ("x.part.safetensors", "x.part.safetensors"),  # only the ending matters
    ],
)
def test_names_never_end_like_our_temporary_files(given: str, safe: str) -> None:
    assert safe_filename(given) == safe


def test_a_part_named_model_cannot_shadow_a_later_download(tmp_path: Path) -> None:
    first = choose_name(tmp_path, "x.safetensors.part", tags=("1",), sha256="A" * 64,
                        sha256_of=lambda _p: None)  # fmt: skip
    assert first.path.name == "x.safetensors"
    first.path.write_bytes(b"first model")
    # The second file of that name gets a tagged name; the first is untouched.
    second = choose_name(tmp_path, "x.safetensors", tags=("2",), sha256="B" * 64,
                         sha256_of=lambda _p: "A" * 64)  # fmt: skip
    assert second.path.name == "x_2.safetensors" and not second.identical
    assert part_path(second.path).name != first.path.name


def test_the_engine_refuses_a_reserved_final_name(
    origin: tuple[str, dict[str, int]], http: httpx2.Client, tmp_path: Path
) -> None:
    url, _ = origin
    spec = DownloadSpec(url=f"{url}/small", dest=tmp_path / "m" / "x.safetensors.part")
    with pytest.raises(SdlibError, match="temporary files") as info:
        download(http, spec, options())
    assert info.value.exit_code == 1
    assert nothing_left(tmp_path / "m")
