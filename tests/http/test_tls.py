"""``build_client``'s TLS context: the CA certificates are loaded only when an https
connection needs them, and once for both the API path and the download-body path."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.demo.catalogue import LARGE_FILE_ID, LARGE_VERSION_ID
from sdlib.demo.server import DemoServer
from sdlib.http import FAST_BODY, READINTO, build_client

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="elsewhere httpx2 verifies through the OS (truststore)"
)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every load of CA certificates into a TLS context, from any thread."""
    seen: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        seen.append(args or kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    return seen


def _settings() -> Settings:
    return replace(Settings(), network=NetworkSettings(retries=0, connect_timeout=5))


@pytest.fixture
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_env_proxies")
def test_plain_http_loads_no_certificates(tmp_path: Path, loads: list[object]) -> None:
    """An API request and a download body over plain http: both answered in full, and no
    CA certificate was loaded for them (before: once, when the client was built)."""
    with (
        DemoServer(tmp_path / "files", large_size=3 << 20) as server,
        build_client(_settings()) as client,
    ):
        api = client.get(f"{server.url}/api/v1/model-versions/{LARGE_VERSION_ID}")
        assert api.status_code == 200
        assert api.json()["id"] == LARGE_VERSION_ID
        url = f"{server.url}/api/download/models/{LARGE_VERSION_ID}?fileId={LARGE_FILE_ID}"
        with client.stream("GET", url, extensions={FAST_BODY: True}) as body:
            assert body.status_code == 200
            readinto = body.extensions[READINTO]
            buffer = memoryview(bytearray(1 << 20))
            got = 0
            while n := readinto(buffer):
                got += n
        assert got == 3 << 20
    assert loads == []


@contextlib.contextmanager
def _not_tls_server() -> Iterator[int]:
    """A port whose server accepts each connection and closes it at once (every TLS
    handshake with it fails, after the client has set up its context)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            socket.create_connection(listener.getsockname(), timeout=1).close()
        thread.join(5)
        listener.close()


@pytest.mark.usefixtures("no_env_proxies")
def test_https_loads_certificates_once_for_api_and_download(loads: list[object]) -> None:
    """An https API request and an https download body (both refused by a server that
    speaks no TLS): the CA certificates were loaded once for the two (before: twice, the
    download path loading its own)."""
    with _not_tls_server() as port, build_client(_settings()) as client:
        url = f"https://127.0.0.1:{port}/file.bin"
        with pytest.raises(httpx2.ConnectError):
            client.get(url)
        assert len(loads) == 1
        with pytest.raises(httpx2.TransportError):
            client.get(url, extensions={FAST_BODY: True})
    assert len(loads) == 1


@pytest.mark.usefixtures("no_env_proxies")
def test_unreadable_cert_file_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SSL_CERT_FILE naming a file that holds no certificates: the first https request
    says so as a config error (exit 2), not as a network failure."""
    from sdlib.errors import ConfigError

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    with (
        _not_tls_server() as port,
        build_client(_settings()) as client,
        pytest.raises(ConfigError, match="TLS certificates"),
    ):
        client.get(f"https://127.0.0.1:{port}/")
