"""A few bytes of a remote file without downloading it: HTTP Range requests behind a file.

``open_ranged(client, url)`` asks for the file's first bytes (``Range: bytes=0-16383``),
learns its size from ``Content-Range`` and returns a ``RangedFile``: a read-only, seekable
raw file whose reads become further Range requests only for bytes it does not hold yet.
Readers written for local files (a safetensors or GGUF header reader) read it as they
read a file on disk, so a 7 GB checkpoint is judged from a few KiB.

What it guarantees, whatever the server does:

* it never reads more than ``budget`` body bytes in all (the caller's cap: the local
  readers' header limit), and never more than it asked for in one answer;
* a server that ignores ``Range`` (a 200 with the whole body) costs at most the bytes that
  were asked for: the answer is cut there and reported as "the server does not support
  ranges; download the file to inspect it" (an ``SdlibError``, exit 1), unless the whole
  file fitted in what was asked;
* redirects are followed for the bytes (Civitai's download endpoint sends the client to a
  storage host), and later reads go straight to where the first one landed, so the API is
  asked once; the caller's ``headers`` (a source's ``Authorization``) go only to the
  origin they were given for, never to a redirect target on another host;
* bytes are asked for uncompressed (``Accept-Encoding: identity``): a range of a gzipped
  body is not a range of the file;
* a failed status goes to the caller's ``raise_for_status`` (a source knows its error
  bodies), else to ``sdlib.http.raise_for_status``; transport failures become
  ``SourceError`` through ``network_errors``.

``bytes_read`` and ``requests`` count what it cost.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx2

from sdlib.errors import BadResponse, FormatError, SdlibError
from sdlib.http._client import network_errors, origin_of
from sdlib.http._status import raise_for_status as _default_raise_for_status

__all__ = ["FIRST_READ", "NO_RANGES", "RangedFile", "open_ranged"]

#: The first request's size: the sniffed head and, for most LoRAs and embeddings, the whole
#: safetensors header in one round trip (a checkpoint's header takes a second one).
FIRST_READ = 16 << 10
#: A later read asks for at least this much (a GGUF reader reads a few bytes at a time).
MIN_READ = 16 << 10
#: What a server that ignores Range is told, word for word.
NO_RANGES = "the server does not support ranges; download the file to inspect it"

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
#: Headers that carry credentials: kept for the origin they were handed over for only.
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


class RangedFile(io.RawIOBase):
    """A remote file read through Range requests (see the module docstring).

    Use ``open_ranged`` to make one. Unlike a plain raw file, ``read(n)`` returns ``n``
    bytes unless the file ends (what a header reader expects of a file), fetching what it
    lacks in one request: hand it to readers as a ``BinaryIO``.
    """

    def __init__(
        self,
        client: httpx2.Client,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        raise_for_status: Callable[[httpx2.Response], None] | None = None,
        budget: int,
    ) -> None:
        super().__init__()
        self._client = client
        #: The URL the caller gave (messages name it, without its query).
        self.url = url
        self._where = url
        self._headers = dict(headers or {})
        self._raise = raise_for_status or _default_raise_for_status
        self._budget = budget
        #: Every byte read from 0 on, while reads run on from the end (a header reader's
        #: way), so going back (a sniff, then the header from 0) costs no request.
        self._prefix = bytearray()
        self._buf = b""
        self._buf_start = 0
        self._pos = 0
        #: The file's size, known after the first answer.
        self.size = 0
        #: Body bytes received, over every request.
        self.bytes_read = 0
        #: Requests made (a redirect inside one is not counted).
        self.requests = 0

    # -- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (fewer only at the end of the file), in one request at most."""
        if size is None or size < 0:
            size = max(0, self.size - self._pos)
        out = bytearray()
        while len(out) < size:
            chunk = bytearray(size - len(out))
            n = self.readinto(chunk)
            if not n:
                break
            out += chunk[:n]
        return bytes(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.size - self._pos)
        if want <= 0:
            return 0
        held = self._held(self._pos, want)
        if not held:
            self._fetch(self._pos, want)
            held = self._held(self._pos, want)
            if not held:  # the server sent nothing for a range inside the file
                raise BadResponse(f"{_host(self.url)} sent no bytes for a range of the file")
        view[: len(held)] = held
        self._pos += len(held)
        return len(held)

    def _held(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos`` that are already here (none: b"")."""
        if pos < len(self._prefix):
            return bytes(self._prefix[pos : pos + n])
        offset = pos - self._buf_start
        if 0 <= offset < len(self._buf):
            return self._buf[offset : offset + n]
        return b""

    # -- HTTP -----------------------------------------------------------------------------

    def _fetch(self, start: int, need: int, *, first: bool = False) -> None:
        """Fetch ``need`` bytes from ``start``: more (up to ``MIN_READ``) when the budget
        and the file allow, since a header reader's next read usually follows on."""
        left = self._budget - self.bytes_read
        count = need if first else min(max(need, MIN_READ), self.size - start, left)
        if need > left:
            raise SdlibError(
                f"reading this file's header would take more than {self._budget:,} bytes; "
                "download the file to inspect it",
                path=_shown(self.url),
            )
        headers = {
            **self._headers,
            "Range": f"bytes={start}-{start + count - 1}",
            # A range of a compressed body is not a range of the file.
            "Accept-Encoding": "identity",
            "Accept": "*/*",
        }
        with network_errors(_shown(self.url)):
            request = self._client.build_request("GET", self._where, headers=headers)
            response = self._client.send(request, stream=True)
            try:
                self.requests += 1
                data = self._answer(response, start, count, first)
            finally:
                response.close()
        if first:
            self._settle(response)
        if start == len(self._prefix):
            self._prefix += data
        else:
            self._buf, self._buf_start = data, start

    def _answer(self, response: httpx2.Response, start: int, count: int, first: bool) -> bytes:
        status = response.status_code
        if status == 416:
            total = _total_of(response.headers.get("Content-Range"))
            if first and total == 0:
                self.size = 0
                return b""
            raise FormatError(
                "truncated: the server says the file ends before the bytes its header names",
                path=_shown(self.url),
            )
        if status >= 400:
            self._raise(response)
            raise BadResponse(f"{_host(self.url)} answered HTTP {status}", url=_shown(self.url))
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise BadResponse(
                f"{_host(self.url)} compressed a range of the file ({encoding}); "
                "download the file to inspect it",
                url=_shown(self.url),
            )
        if status == 206:
            return self._partial(response, start, count, first)
        if status == 200:
            return self._whole(response, start, count, first)
        raise BadResponse(
            f"{_host(self.url)} answered HTTP {status} to a request for bytes of the file",
            url=_shown(self.url),
        )

    def _partial(self, response: httpx2.Response, start: int, count: int, first: bool) -> bytes:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None:
            raise BadResponse(
                f"{_host(self.url)} sent part of the file without a valid Content-Range",
                url=_shown(self.url),
            )
        begin, end, total_text = match.groups()
        first_byte, last_byte = int(begin), int(end)
        if first_byte != start or last_byte < first_byte or last_byte >= start + count:
            raise BadResponse(
                f"{_host(self.url)} sent bytes {first_byte}-{last_byte} when asked for "
                f"{start}-{start + count - 1}",
                url=_shown(self.url),
            )
        if first:
            if total_text == "*":
                raise BadResponse(
                    f"{_host(self.url)} does not say how large the file is; "
                    "download the file to inspect it",
                    url=_shown(self.url),
                )
            self.size = int(total_text)
            if last_byte >= self.size:
                raise BadResponse(
                    f"{_host(self.url)} sent bytes past the end of the file it describes",
                    url=_shown(self.url),
                )
        length = last_byte - first_byte + 1
        data = self._read_body(response, length)
        if len(data) != length:
            raise SdlibError(
                f"{_host(self.url)} sent {len(data)} bytes of a {length}-byte range "
                "(the connection ended early)",
                path=_shown(self.url),
            )
        return data

    def _whole(self, response: httpx2.Response, start: int, count: int, first: bool) -> bytes:
        if "html" in response.headers.get("Content-Type", "").lower():
            raise FormatError(
                "a web page, not a model file (use the file's download link)",
                path=_shown(self.url),
            )
        # Range ignored: the body is the whole file. Read no more than was asked for (plus
        # one byte, to tell a small file that fits from a large one that does not).
        data = self._read_body(response, count + 1)
        if first and start == 0 and len(data) <= count:
            self.size = len(data)
            return data
        raise SdlibError(NO_RANGES, path=_shown(self.url))

    def _read_body(self, response: httpx2.Response, limit: int) -> bytes:
        out = bytearray()
        for chunk in _raw(response):
            take = chunk[: limit - len(out)]
            out += take
            self.bytes_read += len(take)
            if len(out) >= limit:
                break
        return bytes(out)

    def _settle(self, response: httpx2.Response) -> None:
        """Later reads go where the first landed; credentials only to their own origin."""
        landed = str(response.url)
        if origin_of(landed) != origin_of(self.url):
            self._headers = {
                k: v for k, v in self._headers.items() if k.lower() not in _CREDENTIALS
            }
        self._where = landed


def open_ranged(
    client: httpx2.Client,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    raise_for_status: Callable[[httpx2.Response], None] | None = None,
    budget: int,
    first: int = FIRST_READ,
) -> RangedFile:
    """A ``RangedFile`` for ``url`` whose first ``first`` bytes are already read (so its
    ``size`` is known). ``budget`` caps the body bytes read over its whole life."""
    ranged = RangedFile(
        client, url, headers=headers, raise_for_status=raise_for_status, budget=budget
    )
    ranged._fetch(0, min(first, budget), first=True)
    return ranged


def _raw(response: httpx2.Response) -> Iterator[bytes]:
    if hasattr(response, "_content"):  # already read (a transport that is not streaming)
        yield response.content
        return
    # Undecoded: Accept-Encoding was identity and an encoded answer was refused above.
    yield from response.iter_raw()


def _total_of(content_range: str | None) -> int | None:
    match = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", content_range or "", re.IGNORECASE)
    return int(match.group(1)) if match else None


def _shown(url: str) -> str:
    """``url`` without its query: a signed storage URL keeps its signature there."""
    try:
        return str(httpx2.URL(url).copy_with(query=None, fragment=None))
    except httpx2.InvalidURL:
        return url


def _host(url: str) -> str:
    try:
        return httpx2.URL(url).host or "the server"
    except httpx2.InvalidURL:
        return "the server"
