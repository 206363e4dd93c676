"""An httpx2 transport that reads large download bodies straight into the caller's buffers.

httpx2 parses every body through h11 in 64 KiB steps with several copies per step: about
two seconds of CPU per GiB on a small machine, more than hashing the file costs. For the
requests the downloader marks (``extensions={FAST_BODY: True}``, plain GETs only) this
transport speaks HTTP/1.1 through the standard library's ``http.client`` instead and
exposes the body as a ``readinto`` callable in the response's extensions
(``response.extensions[READINTO]``): one kernel copy into a buffer that is then written
and hashed. Every other request goes to the wrapped transport unchanged.

Only the wire changes: the request still passes through httpx2 (auth, the token scoping
hook, redirects, retries, timeouts), so the same headers reach the same hosts. Failures
are raised as the httpx2 exceptions the rest of sdlib already handles. ``build_client``
installs it only when no proxy is configured; proxied requests keep httpx2's transports.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

__all__ = ["ABORT", "FAST_BODY", "READINTO", "FastBodyTransport"]

#: Request extension: set it to True to ask for the fast path.
FAST_BODY = "sdlib.fast_body"
#: Response extension: ``readinto(buffer) -> int`` fills ``buffer`` from the body.
READINTO = "sdlib.readinto"
#: Response extension: ``abort()``, callable from any thread, ends a read that is waiting on
#: a silent server at once (the read then fails as a broken connection).
ABORT = "sdlib.abort"

_Key = tuple[str, str, int]
_IDLE_PER_HOST = 8


class FastBodyTransport(httpx2.BaseTransport):
    """``http.client`` for marked GETs (see the module docstring), ``inner`` for the rest."""

    def __init__(
        self,
        inner: httpx2.BaseTransport,
        *,
        verify: ssl.SSLContext | bool = True,
        tls: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self._inner = inner
        self._verify = verify
        #: The default context shared with ``inner`` (``sdlib.http._tls``), when verifying
        #: with the default trust: one load of the CA certificates, not one per transport.
        #: Sharing it is safe: httpx2 here speaks HTTP/1.1 only (ALPN "http/1.1", as here).
        self._tls = tls
        self._context = verify if isinstance(verify, ssl.SSLContext) else None
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if (
            not request.extensions.get(FAST_BODY)
            or request.method != "GET"
            or url.scheme not in ("http", "https")
        ):
            return self._inner.handle_request(request)
        port = url.port or (443 if url.scheme == "https" else 80)
        key: _Key = (url.scheme, url.raw_host.decode("ascii"), port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        for reused in (True, False):
            conn, was_idle = self._checkout(key, timeouts, request, reuse=reused)
            # The socket itself: http.client lets go of it when a response says "close".
            sock = conn.sock
            try:
                response = _send(conn, request)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if was_idle:
                    continue  # a kept-alive connection the server had closed: once more, fresh
                raise httpx2.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            except BaseException as exc:
                conn.close()
                raise _translate(exc, request, reading=True) from None
            body = _Body(response, conn, self, key, request, sock)
            return httpx2.Response(
                response.status,
                headers=[
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()
                ],
                stream=body,
                extensions={
                    "http_version": b"HTTP/1.1",
                    "reason_phrase": response.reason.encode("latin-1", "replace"),
                    READINTO: body.readinto,
                    ABORT: body.abort,
                },
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- connections -------------------------------------------------------------------------
    def _checkout(
        self, key: _Key, timeouts: dict[str, float | None], request: httpx2.Request, reuse: bool
    ) -> tuple[http.client.HTTPConnection, bool]:
        read_timeout = timeouts.get("read")
        if reuse:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is not None:
                if conn.sock is not None:
                    conn.sock.settimeout(read_timeout)
                return conn, True
        scheme, host, port = key
        connect_timeout = timeouts.get("connect")
        conn = (
            http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._ssl_context()
            )
            if scheme == "https"
            else http.client.HTTPConnection(host, port, timeout=connect_timeout)
        )
        try:
            conn.connect()
        except BaseException as exc:
            conn.close()
            raise _translate(exc, request, reading=False) from None
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout)
        return conn, False

    def _checkin(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            if self._verify is not False and self._tls is not None:
                context = self._tls()
            elif self._verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context = httpx2.create_ssl_context()  # what httpx2 itself trusts
            self._context = context
        return self._context

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
        self._inner.close()


def _send(conn: http.client.HTTPConnection, request: httpx2.Request) -> http.client.HTTPResponse:
    conn.putrequest(
        "GET", request.url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True
    )
    for name, value in request.headers.raw:
        conn.putheader(name, value)
    conn.endheaders()
    return conn.getresponse()


class _Body(httpx2.SyncByteStream):
    """The response body: ``readinto`` for the downloader, iteration for everyone else."""

    def __init__(
        self,
        response: http.client.HTTPResponse,
        conn: http.client.HTTPConnection,
        pool: FastBodyTransport,
        key: _Key,
        request: httpx2.Request,
        sock: socket.socket | None,
    ) -> None:
        self._response = response
        self._sock = sock
        self._conn: http.client.HTTPConnection | None = conn
        self._pool = pool
        self._key = key
        self._request = request
        self._left = response.length  # None: chunked or read-until-close
        #: A body of known length is read from the socket itself once the bytes http.client
        #: read ahead with the headers are handed out (``_ahead``: how many it still holds;
        #: None until looked at). Chunked and read-until-close bodies go through http.client.
        self._direct = sock if response.length is not None and not response.chunked else None
        self._ahead: int | None = None
        #: A failure met after some bytes arrived: raised by the next ``readinto``.
        self._error: BaseException | None = None

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the body; fewer bytes only at its end, 0 once it is over.

        When the connection breaks mid-fill, the bytes that did arrive are returned first
        and the error is raised by the next call, so a caller never loses them.
        """
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        view = memoryview(buffer).cast("B")
        if self._left is not None and len(view) > self._left:
            view = view[: self._left]  # never into the next response on a kept-alive socket
        got = 0
        failure: BaseException | None = None
        try:
            if self._direct is not None:
                got = self._read_direct(view, self._direct)
            else:
                while got < len(view):
                    n = self._response.readinto(view[got:])
                    if not n:
                        break
                    got += n
        except BaseException as exc:
            self._drop()
            failure = _translate(exc, self._request, reading=True)
            if not isinstance(failure, httpx2.TransportError):
                raise failure from None  # Ctrl-C and the like: at once
        if self._left is not None:
            self._left -= got
            if self._direct is not None and not self._left and failure is None:
                self._response.close()  # read to its end: the connection may be reused
            if failure is None and got < len(view) and self._left > 0:
                self._drop()
                failure = httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=self._request,
                )
        if failure is not None:
            if not got:
                raise failure
            self._error = failure
        return got

    def _read_direct(self, view: memoryview, sock: socket.socket) -> int:
        """Fill ``view`` with ``recv_into`` on the socket: one kernel copy straight into the
        caller's buffer, from its start. http.client's buffered reader would read each
        call's last few KiB into its own buffer and copy them over (and start the next
        call with them, at an offset that is no multiple of 64 bytes), with its Python
        frames around every read: 0.29 against 0.26 s of CPU per GiB on loopback. Only
        the bytes it read ahead with the headers are taken from it, once."""
        if not view:
            return 0
        fp = self._response.fp
        if self._ahead is None:  # the first read: what is left in http.client's buffer
            self._ahead = len(fp.peek()) if fp is not None else 0
        got = 0
        if self._ahead and fp is not None:
            got = min(len(view), self._ahead)
            view[:got] = fp.read(got)  # served from its buffer, no read from the socket
            self._ahead -= got
        while got < len(view):
            n = sock.recv_into(view[got:])
            if not n:
                break
            got += n
        return got

    def abort(self) -> None:
        """Shut the socket down under a read blocked in another thread."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __iter__(self) -> Iterator[bytes]:
        buf = bytearray(64 << 10)
        while n := self.readinto(buf):
            yield bytes(buf[:n])

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._response.isclosed() and not self._response.will_close:
            self._pool._checkin(self._key, conn)  # read to its end: keep it alive
        else:
            self._response.close()
            conn.close()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._response.close()
        if conn is not None:
            conn.close()


def _translate(exc: BaseException, request: httpx2.Request, *, reading: bool) -> BaseException:
    """The httpx2 exception httpx2 itself would raise for ``exc`` (others pass through)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (TimeoutError, socket.timeout)):
        if reading:
            return httpx2.ReadTimeout(text, request=request)
        return httpx2.ConnectTimeout(text, request=request)
    if isinstance(exc, http.client.HTTPException):
        return httpx2.RemoteProtocolError(text, request=request)
    if isinstance(exc, OSError):
        if reading:
            return httpx2.ReadError(text, request=request)
        return httpx2.ConnectError(text, request=request)
    return exc
