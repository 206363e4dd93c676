"""The default TLS context, loaded once when first needed, and httpx2's transport per scheme.

Loading the system's CA certificates into a TLS context takes about 45 ms of CPU on Linux
(OpenSSL parses every certificate). Every command that built a client paid it before its
first request, even one that only ever talks plain http (a local server, a LAN mirror),
and a download over https paid it a second time on its way to the first byte
(``sdlib.http._fastbody`` loaded a context of its own). Now ``build_client`` makes one
``SharedContext`` for both, loaded by the first https connection that needs it, and
``SchemeTransport`` builds httpx2's own transport per scheme on first use: https with the
shared context; plain http with a context that has no certificates at all (no TLS happens
on a plain-http connection without a proxy; were one ever attempted with it, it would
refuse every server rather than trust one).

Only without a proxy (``build_client`` keeps the eager path for proxies, which may speak
TLS to the proxy itself) and only for the default trust (a ``network.ca_bundle`` is loaded
at once, so that a bad path is a config error before anything is sent).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

import httpx2

from sdlib.errors import ConfigError

__all__ = ["SchemeTransport", "SharedContext"]


class SharedContext:
    """httpx2's default TLS context (``httpx2.create_ssl_context``), loaded on the first
    call (by whichever thread comes first; the others wait for it) and returned by every
    call after that."""

    def __init__(self, *, trust_env: bool = True) -> None:
        self._trust_env = trust_env
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                try:
                    self._context = httpx2.create_ssl_context(trust_env=self._trust_env)
                except (OSError, ssl.SSLError) as exc:
                    # SSL_CERT_FILE or SSL_CERT_DIR naming something unreadable.
                    raise ConfigError(f"cannot load the TLS certificates: {exc}") from None
            return self._context


def _no_certificates() -> ssl.SSLContext:
    """A client context that verifies and trusts nothing (so refuses every server)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class SchemeTransport(httpx2.BaseTransport):
    """httpx2's ``HTTPTransport``, one per scheme, each built on its first request:
    https with the shared context (``tls``), everything else without one."""

    def __init__(
        self,
        tls: Callable[[], ssl.SSLContext],
        build: Callable[[ssl.SSLContext], httpx2.BaseTransport],
    ) -> None:
        self._tls = tls
        self._build = build
        self._transports: dict[bool, httpx2.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._for(request.url.scheme == "https").handle_request(request)

    def _for(self, secure: bool) -> httpx2.BaseTransport:
        with self._lock:
            transport = self._transports.get(secure)
            if transport is None:
                context = self._tls() if secure else _no_certificates()
                transport = self._transports[secure] = self._build(context)
            return transport

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()
