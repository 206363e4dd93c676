"""The one HTTP client sdlib uses, and the one place httpx2 exceptions become sdlib errors.

``build_client(settings)`` returns an ``httpx2.Client`` configured from ``Settings``:

* a non-browser User-Agent naming sdlib (Civitai answers JSON errors, not login pages,
  to non-browser agents);
* connect/read timeouts, a custom CA bundle, an explicit proxy (``http://``, ``https://``,
  ``socks5://`` or ``socks5h://``; the last resolves host names through the proxy) or, when
  none is configured, the standard ``*_PROXY`` variables (httpx2 ``trust_env``);
* download bodies read without h11's copies when no proxy is in the way
  (``sdlib.http._fastbody``);
* retries with exponential backoff for 429, 502, 503, 504 and connection failures,
  honouring ``Retry-After`` (capped at ``network.backoff_max``), for GET and HEAD only;
  each wait is announced to an optional ``on_retry`` callback (a ``RetryNotice``) before
  it starts, so a front end can say "127.0.0.1:9 refused; retry 1 of 4 in 1 s" at once
  instead of staying silent through the back-off;
* the Civitai token as ``Authorization: Bearer ...``, sent only to the configured Civitai
  origin (scheme, host and port), never to a redirect target, never in a URL; the Hugging
  Face token likewise only to the configured Hub endpoint's origin.

Nothing above ``sdlib.sources`` and ``sdlib.download`` catches ``httpx2.*``: call sites wrap
requests in ``network_errors(url)``, which translates transport failures into ``SourceError``.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import ssl
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2

from sdlib._version import __version__
from sdlib.errors import BadResponse, ConfigError, SourceError

if TYPE_CHECKING:
    from sdlib.config import Settings

__all__ = [
    "RETRY_STATUSES",
    "USER_AGENT",
    "RetryNotice",
    "RetryTransport",
    "ScopedTokenAuth",
    "build_client",
    "network_errors",
    "origin_of",
    "parse_ratelimit_reset",
    "translate_error",
]

log = logging.getLogger(__name__)

USER_AGENT = f"sdlib/{__version__} (+https://github.com/sdlib)"

#: Statuses worth retrying: rate limits and a busy or restarting server.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str | httpx2.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in, for origin comparisons."""
    u = httpx2.URL(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, u.host.lower(), port)


class ScopedTokenAuth(httpx2.Auth):
    """Bearer token for one origin only.

    httpx2 applies ``Auth`` to the first request of a ``send`` and drops ``Authorization``
    on cross-origin redirects itself; ``strip_foreign`` (a request hook installed by
    ``build_client``) also removes it from same-origin redirects and from any request this
    auth did not sign, so the token reaches exactly the requests we addressed to Civitai.
    """

    def __init__(self, token: str, origin: str, *, more: Mapping[str, str] | None = None) -> None:
        # ``more``: other origins with their own tokens (the Hub's beside Civitai's); the
        # first token named for an origin wins.
        self._tokens: dict[tuple[str, str, int | None], str] = {origin_of(origin): token}
        for other, other_token in (more or {}).items():
            self._tokens.setdefault(origin_of(other), other_token)
        self._origin = origin_of(origin)
        self._signed: weakref.WeakSet[httpx2.Request] = weakref.WeakSet()

    def __repr__(self) -> str:  # never show the token, even in a debugger
        return f"ScopedTokenAuth(origins={list(self._tokens)!r})"

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        token = self._tokens.get(origin_of(request.url))
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
            self._signed.add(request)
        yield request

    def strip_foreign(self, request: httpx2.Request) -> None:
        if "authorization" in request.headers and request not in self._signed:
            del request.headers["authorization"]


@dataclass(frozen=True)
class RetryNotice:
    """One retry about to wait: told to ``on_retry`` before the back-off starts."""

    #: ``host`` or ``host:port`` when the port is not the scheme's default.
    host: str
    #: Why: ``refused``, ``timed out connecting``, ``closed the connection``, ``HTTP 503``...
    reason: str
    #: This retry's number (1 for the first) and how many retries there may be.
    attempt: int
    of: int
    #: Seconds until it is made.
    delay: float

    def __str__(self) -> str:
        return f"{self.host} {self.reason}; retry {self.attempt} of {self.of} in {self.delay:.0f} s"


class RetryTransport(httpx2.BaseTransport):
    """Retry idempotent requests on 429/502/503/504 and connection failures.

    The wait is ``Retry-After`` when the server sends one, else exponential (1 s, 2 s, 4 s...)
    with a little jitter; either way at most ``backoff_max`` seconds. After the last attempt the
    final response is returned (or the last error raised) for the caller to translate.
    ``on_retry`` hears of each wait before it starts (an exception it raises is ignored).
    """

    def __init__(
        self,
        inner: httpx2.BaseTransport,
        *,
        retries: int = 4,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self._inner = inner
        self._retries = max(0, retries)
        self._backoff_max = max(0.0, backoff_max)
        self._sleep = sleep
        self._on_retry = on_retry

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.RemoteProtocolError) as exc:
                # RemoteProtocolError here means the server closed before any response.
                if request.method not in _IDEMPOTENT or attempt >= self._retries:
                    raise
                reason = _failure_reason(exc)
            else:
                if (
                    response.status_code not in RETRY_STATUSES
                    or request.method not in _IDEMPOTENT
                    or attempt >= self._retries
                ):
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is None:
                    retry_after = parse_ratelimit_reset(response.headers.get("RateLimit"))
                reason = f"answered HTTP {response.status_code}"
                response.close()
            delay = self.delay(attempt, retry_after)
            log.debug("retrying %s %s in %.2fs", request.method, request.url.path, delay)
            self._announce(request, reason, attempt, delay)
            self._sleep(delay)
            attempt += 1

    def _announce(self, request: httpx2.Request, reason: str, attempt: int, delay: float) -> None:
        if self._on_retry is None:
            return
        notice = RetryNotice(_host_port(request.url), reason, attempt + 1, self._retries, delay)
        try:
            self._on_retry(notice)
        except Exception:  # a notice must never break the request it is about
            log.debug("on_retry failed", exc_info=True)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._backoff_max)
        base = min(self._backoff_max, 2.0**attempt)
        return min(self._backoff_max, base * (1 + random.uniform(0, 0.1)))

    def close(self) -> None:
        self._inner.close()


def _failure_reason(exc: httpx2.HTTPError) -> str:
    """A few words for a connection that failed before any answer."""
    if isinstance(exc, httpx2.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "closed the connection"
    text = str(exc).lower()
    if "refused" in text:
        return "refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "not found (DNS)"
    return "unreachable"


def _host_port(url: httpx2.URL) -> str:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.host if url.port in (None, default) else f"{url.host}:{url.port}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_ratelimit_reset(value: str | None) -> float | None:
    """Seconds until an exhausted quota resets, from an IETF-draft ``RateLimit`` header
    (``"api";r=0;t=89``, as the Hugging Face Hub sends): ``t + 1`` when ``r`` is 0, else
    None (quota left, or no such header)."""
    if not value:
        return None
    params: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    try:
        if int(params.get("r", "")) > 0:
            return None
        return max(0.0, float(params["t"])) + 1.0
    except (KeyError, ValueError):
        return None


def build_client(
    settings: Settings,
    transport: httpx2.BaseTransport | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> httpx2.Client:
    """An ``httpx2.Client`` set up from ``settings`` (see the module docstring).

    ``transport`` replaces the network (``httpx2.MockTransport`` in tests); retries still
    wrap it. ``on_retry`` hears of every retry before its wait. The caller owns the client
    and closes it (it is a context manager).
    """
    net = settings.network
    timeout = httpx2.Timeout(net.read_timeout, connect=net.connect_timeout)
    verify: ssl.SSLContext | bool = True
    if net.ca_bundle:
        verify = _ssl_context(net.ca_bundle)
    mounts: dict[str, httpx2.BaseTransport | None] | None = None
    if transport is None:
        proxy = _proxy(net.proxy)
        base: httpx2.BaseTransport
        if net.proxy is None:
            # Large download bodies skip h11 (see sdlib.http._fastbody); requests that a
            # *_PROXY variable routes elsewhere go to the mounts below instead. The default
            # TLS context is loaded once, when first needed, for both (sdlib.http._tls).
            from sdlib.http._fastbody import FastBodyTransport
            from sdlib.http._tls import SchemeTransport, SharedContext

            tls = SharedContext() if verify is True else None
            if tls is not None:
                base = SchemeTransport(
                    tls, lambda ctx: _http_transport(verify=ctx, proxy=None, trust_env=True)
                )
            else:
                base = _http_transport(verify=verify, proxy=None, trust_env=True)
            base = FastBodyTransport(base, verify=verify, tls=tls)
        else:
            base = _http_transport(verify=verify, proxy=proxy, trust_env=False)
        transport = base
        if net.proxy is None:
            # trust_env proxies are applied through mounts; wrap each in retries too.
            env_mounts = _env_mounts(verify)
            if env_mounts:
                mounts = {
                    k: RetryTransport(v, retries=net.retries, backoff_max=net.backoff_max,
                                      sleep=sleep, on_retry=on_retry) if v is not None else None
                    for k, v in env_mounts.items()
                }  # fmt: skip
    wrapped = RetryTransport(
        transport, retries=net.retries, backoff_max=net.backoff_max, sleep=sleep,
        on_retry=on_retry,
    )  # fmt: skip

    auth: ScopedTokenAuth | None = None
    hooks: dict[str, list[Callable[..., object]]] = {"request": [], "response": []}
    tokens = {settings.civitai.base_url: settings.civitai.token,
              settings.huggingface.endpoint: settings.huggingface.token}  # fmt: skip
    scoped = {origin: token for origin, token in tokens.items() if token}
    if scoped:
        (origin, token), *more = scoped.items()
        auth = ScopedTokenAuth(token, origin, more=dict(more))
        hooks["request"].append(auth.strip_foreign)
    return httpx2.Client(
        auth=auth,
        # Only encodings sdlib.http._bodies inflates with a cap (httpx2 would add br/zstd
        # when their packages happen to be installed).
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        },
        timeout=timeout,
        follow_redirects=True,
        max_redirects=10,
        transport=wrapped,
        mounts=mounts,
        # Environment proxies are resolved above into ``mounts``; the client must not build
        # its own (unwrapped) ones.
        trust_env=False,
        event_hooks=hooks,
    )


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    path = os.path.expanduser(ca_bundle)
    if not os.path.isfile(path):
        raise ConfigError(f"network.ca_bundle: no such file: {ca_bundle}")
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"network.ca_bundle: cannot load {ca_bundle}: {exc}") from None


def _proxy(url: str | None) -> httpx2.Proxy | None:
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in {"http", "https", "socks5", "socks5h"}:
        raise ConfigError(
            f"network.proxy must start with http://, https://, socks5:// or socks5h://, not {url!r}"
        )
    if scheme.startswith("socks"):
        try:
            import socksio  # noqa: F401
        except ImportError:
            raise ConfigError(
                "a SOCKS proxy needs the socksio package: pip install 'sdlib[socks]'"
            ) from None
    try:
        return httpx2.Proxy(url)
    except (ValueError, httpx2.InvalidURL) as exc:
        raise ConfigError(f"network.proxy: {exc}") from None


def _http_transport(
    *, verify: ssl.SSLContext | bool, proxy: httpx2.Proxy | None, trust_env: bool
) -> httpx2.HTTPTransport:
    try:
        return httpx2.HTTPTransport(verify=verify, proxy=proxy, trust_env=trust_env)
    except OSError as exc:  # an unreadable or malformed CA bundle
        raise ConfigError(f"network.ca_bundle: cannot load: {exc}") from None


def _env_mounts(verify: ssl.SSLContext | bool) -> dict[str, httpx2.BaseTransport | None]:
    """Transports for the ``*_PROXY`` / ``NO_PROXY`` variables, as httpx2 itself would mount."""
    from httpx2._utils import get_environment_proxies  # stable since 0.18; no public twin

    mounts: dict[str, httpx2.BaseTransport | None] = {}
    for pattern, proxy_url in get_environment_proxies().items():
        if proxy_url is None:
            mounts[pattern] = None  # NO_PROXY: fall back to the default transport
            continue
        mounts[pattern] = _http_transport(verify=verify, proxy=_proxy(proxy_url), trust_env=True)
    return mounts


def translate_error(exc: httpx2.HTTPError, url: str | httpx2.URL | None = None) -> SourceError:
    """The sdlib error for an httpx2 transport error (never includes a token: URLs carry none)."""
    where = str(url) if url is not None else _url_of(exc)
    host = httpx2.URL(where).host if where else "the server"
    text = str(exc) or type(exc).__name__
    err: SourceError
    if isinstance(exc, httpx2.ProxyError):
        err = SourceError(f"proxy failed: {text} (check network.proxy or *_PROXY)", url=where)
    elif isinstance(exc, httpx2.ConnectTimeout):
        err = SourceError(f"timed out connecting to {host}", url=where)
    elif isinstance(exc, httpx2.TimeoutException):
        err = SourceError(f"timed out waiting for {host}", url=where)
    elif isinstance(exc, httpx2.ConnectError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            err = SourceError(
                f"TLS certificate of {host} not trusted (set network.ca_bundle to your "
                "proxy's CA bundle)",
                url=where,
            )
        else:
            err = SourceError(f"cannot connect to {host}: {text}", url=where)
    elif isinstance(exc, httpx2.TooManyRedirects):
        err = BadResponse(f"too many redirects from {host}", url=where)
    elif isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)):
        err = SourceError(f"connection to {host} broke: {text}", url=where)
    elif isinstance(exc, httpx2.DecodingError):
        err = BadResponse(f"undecodable response from {host}: {text}", url=where)
    elif isinstance(exc, (httpx2.UnsupportedProtocol, httpx2.LocalProtocolError)):
        err = SourceError(f"cannot request {where}: {text}", url=where)
    else:
        err = SourceError(f"network error talking to {host}: {text}", url=where)
    return err


def _url_of(exc: httpx2.HTTPError) -> str | None:
    try:
        return str(exc.request.url)
    except RuntimeError:  # .request not set
        return None


@contextmanager
def network_errors(url: str | httpx2.URL | None = None) -> Iterator[None]:
    """Translate httpx2 transport errors raised inside the block into ``SourceError``."""
    try:
        yield
    except httpx2.HTTPStatusError:
        raise  # callers map statuses themselves (civitai.raise_for_status)
    except httpx2.HTTPError as exc:
        raise translate_error(exc, url) from None
    except httpx2.InvalidURL as exc:
        raise SourceError(f"invalid URL {url}: {exc}", url=str(url) if url else None) from None
