"""The fast-body transport against the local storage server (real sockets)."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from sdlib.demo.catalogue import LARGE_FILE_ID
from sdlib.demo.server import DemoServer
from sdlib.http import FAST_BODY, READINTO, FastBodyTransport
from sdlib.http import _fastbody as fastbody

SIZE = 6 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=SIZE) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


@pytest.fixture
def url(server: DemoServer) -> str:
    return server.signed_url(server.files[LARGE_FILE_ID])


def _inner_marker(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=b"inner transport")


def _client(inner: httpx2.BaseTransport | None = None, read: float = 5.0) -> httpx2.Client:
    transport = FastBodyTransport(inner or httpx2.HTTPTransport())
    return httpx2.Client(transport=transport, timeout=httpx2.Timeout(read, connect=2.0))


def _expected(url: str) -> bytes:
    with httpx2.Client() as plain:
        return plain.get(url).content


def _read_all(response: httpx2.Response, size: int = 1 << 20) -> bytes:
    readinto = response.extensions[READINTO]
    out = bytearray()
    buf = bytearray(size)
    while n := readinto(buf):
        out += buf[:n]
    return bytes(out)


def test_marked_gets_expose_readinto_and_match_httpx(url: str) -> None:
    with _client() as client, client.stream("GET", url, extensions={FAST_BODY: True}) as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(SIZE)
        body = _read_all(r)
    assert body == _expected(url)


def test_iterating_a_fast_body_works_too(url: str) -> None:
    with _client() as client:
        response = client.get(url, extensions={FAST_BODY: True})
    assert response.content == _expected(url)


def test_unmarked_requests_and_other_methods_go_to_the_inner_transport(url: str) -> None:
    with _client(httpx2.MockTransport(_inner_marker)) as client:
        assert client.get(url).content == b"inner transport"
        assert client.head(url, extensions={FAST_BODY: True}).content == b"inner transport"
        fast = client.get(url, extensions={FAST_BODY: True})
        assert fast.content != b"inner transport" and len(fast.content) == SIZE


def test_ranged_request_and_keep_alive(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connects = _count_connects(monkeypatch)
    whole = _expected(url)
    with _client() as client:
        for start in (0, 1000, SIZE - 10):
            headers = {"Range": f"bytes={start}-"}
            with client.stream("GET", url, headers=headers, extensions={FAST_BODY: True}) as r:
                assert r.status_code == 206
                assert _read_all(r) == whole[start:]
    assert connects == [1]  # each body read to its end keeps the connection for the next


def test_dropped_connection_is_a_remote_protocol_error(server: DemoServer, url: str) -> None:
    server.add_fault("drop", after_bytes=1 << 20, times=1)
    with (
        _client() as client,
        client.stream("GET", url, extensions={FAST_BODY: True}) as r,
        pytest.raises(httpx2.RemoteProtocolError),
    ):
        _read_all(r)


def test_bytes_before_a_drop_are_delivered_then_the_error(server: DemoServer, url: str) -> None:
    whole = _expected(url)
    server.add_fault("drop", after_bytes=(1 << 20) + 123, times=1)
    got = bytearray()
    buf = bytearray(4 << 20)  # larger than what arrives before the drop
    with _client() as client, client.stream("GET", url, extensions={FAST_BODY: True}) as r:
        readinto = r.extensions[READINTO]
        with pytest.raises(httpx2.RemoteProtocolError):
            while n := readinto(buf):
                got += buf[:n]
    assert bytes(got) == whole[: (1 << 20) + 123]


def test_stall_is_a_read_timeout(server: DemoServer, url: str) -> None:
    server.add_fault("stall", after_bytes=100_000, seconds=3, times=1)
    with (
        _client(read=0.3) as client,
        client.stream("GET", url, extensions={FAST_BODY: True}) as r,
        pytest.raises(httpx2.ReadTimeout),
    ):
        _read_all(r)


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    with _client() as client, pytest.raises(httpx2.ConnectError):
        client.get(f"http://127.0.0.1:{port}/x", extensions={FAST_BODY: True})


def test_a_stale_kept_alive_connection_is_replaced(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _expected(url)
    with _client() as client:
        assert client.get(url, extensions={FAST_BODY: True}).content == whole
        real_send = fastbody._send
        calls = 0

        def hung_up_once(conn: http.client.HTTPConnection, request: httpx2.Request) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise http.client.RemoteDisconnected("closed by the server while idle")
            return real_send(conn, request)

        monkeypatch.setattr(fastbody, "_send", hung_up_once)
        assert client.get(url, extensions={FAST_BODY: True}).content == whole
        assert calls == 2


def test_a_failed_tls_handshake_is_a_connect_error(url: str) -> None:
    # The storage server speaks plain HTTP, so the TLS handshake cannot succeed.
    with _client() as client, pytest.raises(httpx2.ConnectError):
        client.get(url.replace("http://", "https://", 1), extensions={FAST_BODY: True})


@pytest.mark.parametrize("size", [777, 64 << 10, 1 << 20])
def test_a_sized_body_is_read_from_the_socket_into_the_callers_buffer(
    url: str, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # Reads of any size, smaller than what http.client read ahead with the headers too;
    # past those bytes, each lands in the caller's buffer from the socket itself, not
    # through http.client's buffered reader (which read at unaligned offsets).
    through_http_client = 0
    real = http.client.HTTPResponse.readinto

    def counting(self: http.client.HTTPResponse, b: object) -> int:
        nonlocal through_http_client
        through_http_client += 1
        return real(self, b)  # type: ignore[arg-type]

    monkeypatch.setattr(http.client.HTTPResponse, "readinto", counting)
    whole = _expected(url)
    with _client() as client, client.stream("GET", url, extensions={FAST_BODY: True}) as r:
        assert _read_all(r, size) == whole
    assert through_http_client == 0


class _OddBodies(BaseHTTPRequestHandler):
    """A chunked body, an empty one, and a body sent until the connection closes."""

    protocol_version = "HTTP/1.1"
    BODY = bytes(range(256)) * 4099

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for at in range(0, len(self.BODY), 100_003):
                part = self.BODY[at : at + 100_003]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/empty":
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(self.BODY)
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def odd_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OddBodies)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.mark.parametrize("path", ["/chunked", "/until-close"])
def test_bodies_without_a_length_still_come_through_http_client(odd_server: str, path: str) -> None:
    with (
        _client() as client,
        client.stream("GET", odd_server + path, extensions={FAST_BODY: True}) as r,
    ):
        assert _read_all(r, 65_537) == _OddBodies.BODY


def test_an_empty_body_reads_nothing_and_keeps_the_connection(
    odd_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects = _count_connects(monkeypatch)
    with _client() as client:
        for _ in range(2):  # a read that waited for bytes that never come would time out
            with client.stream("GET", odd_server + "/empty", extensions={FAST_BODY: True}) as r:
                assert _read_all(r) == b""
    assert connects == [1]


def _count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the TCP connections http.client opens from now on."""
    connects = [0]
    real_connect = http.client.HTTPConnection.connect

    def counting(self: http.client.HTTPConnection) -> None:
        connects[0] += 1
        real_connect(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting)
    return connects
