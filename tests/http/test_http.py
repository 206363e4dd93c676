"""``build_client``: proxies (incl. socks5h through a real local SOCKS5 server), CA bundle,
timeouts, Retry-After parsing, error translation."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path
from time import time

import httpx2
import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.errors import ConfigError, SourceError
from sdlib.http import (
    USER_AGENT,
    build_client,
    network_errors,
    parse_retry_after,
    translate_error,
)
from sdlib.sources.civitai import CivitaiClient


def _settings(**network: object) -> Settings:
    return replace(Settings(), network=NetworkSettings(**network))  # type: ignore[arg-type]


def test_defaults() -> None:
    with build_client(_settings(connect_timeout=3, read_timeout=9)) as http:
        assert http.headers["User-Agent"] == USER_AGENT
        assert http.timeout.connect == 3 and http.timeout.read == 9
        assert http.follow_redirects is True


@pytest.mark.parametrize("proxy", ["ftp://proxy:21", "proxy:8080", "socks4://p:1"])
def test_bad_proxy_is_a_config_error(proxy: str) -> None:
    with pytest.raises(ConfigError, match=r"network\.proxy"):
        build_client(_settings(proxy=proxy))


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_bundle"):
        build_client(_settings(ca_bundle=str(tmp_path / "nope.pem")))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="ca_bundle"):
        build_client(_settings(ca_bundle=str(bad)))


def test_custom_ca_bundle_is_accepted() -> None:
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    bundle = next((p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)),
                  None)  # fmt: skip
    if bundle is None:
        pytest.skip("this system has no CA bundle file to load")
    with build_client(_settings(ca_bundle=bundle)):
        pass


def test_environment_proxies_are_used_and_no_proxy_respected(
    civitai: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that does not exist: a request through it fails; NO_PROXY bypasses it.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with (
        build_client(_settings(retries=0)) as http,
        pytest.raises(SourceError),
        network_errors(civitai.url),
    ):
        http.get(f"{civitai.url}/api/v1/models/4384")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with build_client(_settings(retries=0)) as http:
        assert http.get(f"{civitai.url}/api/v1/models/4384").status_code == 200


def test_explicit_proxy_ignores_environment(
    civitai: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with _socks5_server() as (port, seen):
        settings = _settings(proxy=f"socks5://127.0.0.1:{port}")
        with build_client(settings) as http:
            assert http.get(f"{civitai.url}/api/v1/models/4384").status_code == 200
        assert seen == [("127.0.0.1", civitai._servers[0].server_address[1])]


def test_socks5h_resolves_names_through_the_proxy(civitai: DemoServer) -> None:
    """The client never resolves the name: the proxy receives it (ATYP 3) and connects."""
    port = civitai._servers[0].server_address[1]
    with _socks5_server(resolve={"civitai.internal": "127.0.0.1"}) as (proxy_port, seen):
        settings = replace(
            _settings(proxy=f"socks5h://127.0.0.1:{proxy_port}", retries=0),
            civitai=CivitaiSettings(base_url=f"http://civitai.internal:{port}"),
        )
        with CivitaiClient.from_settings(settings) as civ:
            assert civ.model(4384).name == "DreamShaper"
    assert seen[0] == ("civitai.internal", port)


def test_download_bodies_use_the_fast_transport_only_without_a_proxy(
    civitai: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdlib.http import FAST_BODY, READINTO

    url = f"{civitai.url}/api/v1/models/4384"
    with (
        build_client(_settings()) as http,
        http.stream("GET", url, extensions={FAST_BODY: True}) as response,
    ):
        assert READINTO in response.extensions
    with _socks5_server() as (port, seen):
        with (
            build_client(_settings(proxy=f"socks5://127.0.0.1:{port}")) as http,
            http.stream("GET", url, extensions={FAST_BODY: True}) as response,
        ):
            assert response.status_code == 200 and READINTO not in response.extensions
        assert seen  # the marked request still went through the proxy
    # An environment proxy that does not exist: the marked request must go to it, and fail.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with (
        build_client(_settings(retries=0)) as http,
        pytest.raises(httpx2.ConnectError),  # direct, it would succeed
    ):
        http.get(url, extensions={FAST_BODY: True})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), (None, None), ("soon", None), ("", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    value = parse_retry_after(formatdate(time() + 30, usegmt=True))
    assert value is not None and 25 < value <= 31


def test_translate_error_messages() -> None:
    request = httpx2.Request("GET", "https://civitai.com/api/v1/models")
    cases = {
        httpx2.ConnectTimeout("x", request=request): "timed out connecting to civitai.com",
        httpx2.ProxyError("bad gateway", request=request): "proxy failed",
        httpx2.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=request): "ca_bundle",
        httpx2.RemoteProtocolError("peer closed", request=request): "connection to civitai.com",
        httpx2.TooManyRedirects("loop", request=request): "too many redirects",
    }
    for exc, words in cases.items():
        err = translate_error(exc)
        assert words in str(err) and err.exit_code == 7
        assert err.url == "https://civitai.com/api/v1/models"


# --- a minimal SOCKS5 server (no auth, CONNECT only) -----------------------------------------


class _Socks5(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    resolve: dict[str, str]
    seen: list[tuple[str, int]]


class _Socks5Handler(socketserver.BaseRequestHandler):
    server: _Socks5

    def handle(self) -> None:
        sock: socket.socket = self.request
        _ver, n = sock.recv(2)
        sock.recv(n)
        sock.sendall(b"\x05\x00")  # no authentication
        _ver, _cmd, _rsv, atyp = sock.recv(4)
        if atyp == 1:
            host = socket.inet_ntoa(sock.recv(4))
        elif atyp == 3:
            host = sock.recv(sock.recv(1)[0]).decode()
        else:
            sock.sendall(b"\x05\x08\x00\x01" + bytes(6))
            return
        (port,) = struct.unpack(">H", sock.recv(2))
        self.server.seen.append((host, port))
        target = self.server.resolve.get(host, host)
        try:
            upstream = socket.create_connection((target, port), timeout=5)
        except OSError:
            sock.sendall(b"\x05\x04\x00\x01" + bytes(6))
            return
        sock.sendall(b"\x05\x00\x00\x01" + bytes(6))
        _pipe(sock, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    t = threading.Thread(target=copy, args=(b, a), daemon=True)
    t.start()
    copy(a, b)
    t.join(timeout=5)
    b.close()


class _Ctx:
    def __init__(self, resolve: dict[str, str]) -> None:
        self.server = _Socks5(("127.0.0.1", 0), _Socks5Handler)
        self.server.resolve = resolve
        self.server.seen = []

    def __enter__(self) -> tuple[int, list[tuple[str, int]]]:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1], self.server.seen

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _socks5_server(resolve: dict[str, str] | None = None) -> _Ctx:
    return _Ctx(resolve or {})
