"""``sdlib.http.open_ranged``: a remote file's first bytes through Range requests, bounded.

Pure client logic against ``httpx2.MockTransport`` servers that count what they send, so the
bytes a misbehaving server would push are measured on the server's side, not sdlib's.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator

import httpx2
import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.errors import BadResponse, FormatError, SdlibError
from sdlib.http import FIRST_READ, NO_RANGES, build_client, open_ranged

FILE = bytes(range(256)) * 1024  # 256 KiB with every offset's byte known: offset % 256
URL = "https://files.example/models/a.safetensors"
Handler = Callable[[httpx2.Request], httpx2.Response]


def client_for(handler: Handler) -> httpx2.Client:
    settings = Settings(network=NetworkSettings(retries=0, backoff_max=0.0))
    return build_client(settings, httpx2.MockTransport(handler))


def serve_ranges(
    data: bytes, log: list[httpx2.Request] | None = None
) -> Callable[[httpx2.Request], httpx2.Response]:
    """A storage host that honours ``Range: bytes=a-b`` as RFC 9110 says."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if log is not None:
            log.append(request)
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
        if match is None:
            return httpx2.Response(200, content=data)
        start, end = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
        if start >= len(data):
            return httpx2.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
        headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return httpx2.Response(206, content=data[start : end + 1], headers=headers)

    return handler


def spans(log: list[httpx2.Request]) -> list[tuple[int, int]]:
    out = []
    for request in log:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["Range"])
        assert match, request.headers
        out.append((int(match.group(1)), int(match.group(2))))
    return out


def test_reads_become_range_requests_for_only_the_bytes_not_held() -> None:
    log: list[httpx2.Request] = []
    with client_for(serve_ranges(FILE, log)) as client:
        f = open_ranged(client, URL, budget=1 << 20)
        assert f.size == len(FILE)
        assert f.read(64) == FILE[:64]
        f.seek(0)
        assert f.read(8) == FILE[:8]  # going back to the start costs nothing
        f.seek(100_000)
        assert f.read(70_000) == FILE[100_000:170_000]  # one request for the lot
        f.seek(-10, 2)
        assert f.read(100) == FILE[-10:]  # stops at the end of the file
    assert spans(log) == [(0, FIRST_READ - 1), (100_000, 169_999), (len(FILE) - 10, len(FILE) - 1)]
    assert all(r.headers["Accept-Encoding"] == "identity" for r in log)
    assert f.requests == 3
    assert f.bytes_read == FIRST_READ + 70_000 + 10


def test_a_file_smaller_than_the_first_read() -> None:
    small = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "
    with client_for(serve_ranges(small)) as client:
        f = open_ranged(client, URL, budget=1 << 20)
        assert (f.size, f.read(), f.read(5)) == (len(small), small, b"")


def test_an_empty_file_is_416_with_its_size() -> None:
    with client_for(serve_ranges(b"")) as client:
        f = open_ranged(client, URL, budget=1 << 20)
        assert (f.size, f.read(8)) == (0, b"")


def test_credentials_go_to_their_origin_only_and_later_reads_skip_the_redirect() -> None:
    seen: list[tuple[str, str | None, str | None]] = []
    storage = serve_ranges(FILE)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.host, request.headers.get("Authorization"),
                     request.headers.get("Cookie")))  # fmt: skip
        if request.url.host == "hub.example":
            return httpx2.Response(302, headers={"Location": "https://cdn.example/blob?sig=1"})
        return storage(request)

    secret = {"Authorization": "Bearer hf_secret", "Cookie": "session=1"}
    with client_for(handler) as client:
        f = open_ranged(client, "https://hub.example/org/repo/resolve/main/a.safetensors",
                        headers=secret, budget=1 << 20)  # fmt: skip
        f.seek(200_000)
        assert f.read(10) == FILE[200_000:200_010]
    assert seen[0] == ("hub.example", "Bearer hf_secret", "session=1")
    assert [host for host, _, _ in seen] == ["hub.example", "cdn.example", "cdn.example"]
    assert all(auth is None and cookie is None for _, auth, cookie in seen[1:])


def endless(counter: list[int], chunk: int = 64 << 10) -> Iterator[bytes]:
    """A body that never ends; ``counter[0]`` is how many bytes were taken from it."""
    block = b"\0" * chunk
    while True:
        counter[0] += chunk
        yield block


def test_a_server_ignoring_range_is_cut_off_at_what_was_asked_for() -> None:
    taken = [0]

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["Range"] == f"bytes=0-{FIRST_READ - 1}"
        return httpx2.Response(200, content=endless(taken))  # 200: the whole (endless) file

    with client_for(handler) as client, pytest.raises(SdlibError) as info:
        open_ranged(client, URL, budget=100 << 20)
    assert NO_RANGES in str(info.value)
    assert info.value.exit_code == 1
    assert taken[0] <= FIRST_READ + (64 << 10)  # one chunk past the cut, never the file


def test_a_later_range_ignored_fails_the_same_way() -> None:
    taken = [0]
    ranged = serve_ranges(FILE)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.headers["Range"].startswith("bytes=0-"):
            return ranged(request)
        return httpx2.Response(200, content=endless(taken))

    with client_for(handler) as client:
        f = open_ranged(client, URL, budget=100 << 20)
        f.seek(50_000)
        with pytest.raises(SdlibError, match="does not support ranges"):
            f.read(20_000)
    assert taken[0] <= 20_000 + (64 << 10)


def test_the_budget_caps_every_byte_read() -> None:
    with client_for(serve_ranges(FILE)) as client:
        f = open_ranged(client, URL, budget=FIRST_READ + 1000)
        f.seek(FIRST_READ)
        assert len(f.read(1000)) == 1000
        with pytest.raises(SdlibError, match="download the file to inspect it"):
            f.read(1)
        assert f.bytes_read == FIRST_READ + 1000


@pytest.mark.parametrize(
    ("status", "headers", "content", "error", "words"),
    [
        (206, {"Content-Range": "bytes 5-20/300000"}, b"x" * 16, BadResponse, "sent bytes 5-20"),
        (206, {}, b"x" * 16, BadResponse, "without a valid Content-Range"),
        (206, {"Content-Range": f"bytes 0-{FIRST_READ - 1}/*"}, b"x" * FIRST_READ, BadResponse,
         "does not say how large"),
        (206, {"Content-Range": "bytes 0-99/300000", "Content-Encoding": "gzip"},
         gzip.compress(b"x" * 100, mtime=0), BadResponse, "compressed a range"),
        (200, {"Content-Type": "text/html"}, b"<!doctype html>" * 5000, FormatError, "a web page"),
        (404, {}, b"", SdlibError, "not found"),
    ],
)  # fmt: skip
def test_answers_that_are_not_the_asked_bytes(
    status: int, headers: dict[str, str], content: bytes, error: type[Exception], words: str
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, content=content)

    with client_for(handler) as client, pytest.raises(error, match=words):
        open_ranged(client, URL, budget=1 << 20)


def test_a_body_shorter_than_its_content_range_is_an_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        # Says 16 KiB, sends 10 bytes (a proxy that cut the body).
        body = httpx2.ByteStream(b"0123456789")
        return httpx2.Response(
            206, headers={"Content-Range": f"bytes 0-{FIRST_READ - 1}/300000"}, stream=body
        )

    with client_for(handler) as client, pytest.raises(SdlibError, match="ended early"):
        open_ranged(client, URL, budget=1 << 20)


def test_a_callers_error_mapper_hears_a_failed_status() -> None:
    heard: list[int] = []

    def mapper(response: httpx2.Response) -> None:
        heard.append(response.status_code)
        raise SdlibError("mapped")

    with (
        client_for(lambda r: httpx2.Response(401)) as client,
        pytest.raises(SdlibError, match="mapped"),
    ):
        open_ranged(client, URL, budget=1 << 20, raise_for_status=mapper)
    assert heard == [401]
