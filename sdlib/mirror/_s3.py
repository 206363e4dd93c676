"""The S3 side of a mirror, through obstore (the optional ``sdlib[s3]`` extra).

obstore is imported on first use only; without it an ``s3://`` mirror still serves reads
as plain HTTP (a public-read bucket), and writes say which extra to install. Every obstore
exception is translated here, once, into an sdlib error with a one-line message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    ConfigError,
    NotFound,
    SdlibError,
    SourceError,
)
from sdlib.mirror._config import MirrorConfig

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Store

    from sdlib.config import NetworkSettings

__all__ = ["S3", "AlreadyExists", "has_obstore"]

#: Presigned GET URLs live this long: long enough for a slow 6 GB download; a resume after
#: that asks for a fresh URL.
URL_LIFETIME = timedelta(hours=6)


class AlreadyExists(Exception):
    """A conditional create found the key taken (the normal end of a race)."""


def has_obstore() -> bool:
    try:
        import obstore  # noqa: F401
    except ImportError:
        return False
    return True


def _need_obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise ConfigError(
            "an s3:// mirror needs the S3 client for this: pip install 'sdlib[s3]'"
        ) from None
    return obstore


class S3:
    """One bucket and prefix, with obstore stores built on first use."""

    def __init__(self, config: MirrorConfig, network: NetworkSettings | None = None) -> None:
        self.config = config
        self._network = network
        self._stores: dict[bool, S3Store] = {}

    def store(self, *, copy_if_not_exists: bool = False) -> S3Store:
        if copy_if_not_exists not in self._stores:
            obstore = _need_obstore()
            from obstore.store import S3Store

            c = self.config
            kwargs: dict[str, Any] = {"region": c.region or "us-east-1"}
            if c.prefix:
                kwargs["prefix"] = c.prefix
            if c.endpoint_url:
                kwargs["endpoint"] = c.endpoint_url
            if c.credentials is not None:
                kwargs["access_key_id"] = c.credentials.access_key_id
                kwargs["secret_access_key"] = c.credentials.secret_access_key
                if c.credentials.session_token:
                    kwargs["session_token"] = c.credentials.session_token
            else:
                kwargs["skip_signature"] = True
            if copy_if_not_exists:
                # A copy that completes its multipart upload with If-None-Match: *, so the
                # final key appears whole and only once.
                kwargs["copy_if_not_exists"] = "multipart"
            client: ClientConfig = {
                "allow_http": c.allow_http,
                "connect_timeout": timedelta(seconds=5),
                "timeout": timedelta(minutes=10),
            }
            net = self._network
            if net is not None and net.proxy:
                client["proxy_url"] = net.proxy
            if net is not None and net.ca_bundle:
                with contextlib.suppress(OSError), open(net.ca_bundle, "rb") as fh:
                    client["root_certificate"] = fh.read()
            retry: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=20)}
            try:
                self._stores[copy_if_not_exists] = S3Store(
                    c.bucket, client_options=client, retry_config=retry, **kwargs
                )
            except obstore.exceptions.BaseError as exc:
                raise ConfigError(f"mirror {c.url}: {_first_line(exc)}") from None
        return self._stores[copy_if_not_exists]

    # -- operations (each raises sdlib errors only) --------------------------------------------
    def sign_get(self, key: str) -> str:
        obstore = _need_obstore()
        with self.errors(key):
            url: str = obstore.sign(self.store(), "GET", key, URL_LIFETIME)
        return url

    def head(self, key: str) -> int | None:
        """The object's size, None if there is none."""
        obstore = _need_obstore()
        try:
            with self.errors(key):
                meta = obstore.head(self.store(), key)
        except NotFound:
            return None
        return int(meta["size"])

    def get_bytes(self, key: str, limit: int) -> bytes | None:
        """A small object's bytes (at most ``limit``), None if there is none."""
        obstore = _need_obstore()
        try:
            with self.errors(key):
                result = obstore.get(self.store(), key)
                if result.meta["size"] > limit:
                    return None
                return bytes(result.bytes())
        except NotFound:
            return None

    def iter_keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key below the mirror prefix, size)`` for every object under ``prefix``."""
        obstore = _need_obstore()
        with self.errors(prefix):
            for batch in obstore.list(self.store(), prefix, chunk_size=1000):
                for meta in batch:
                    yield str(meta["path"]), int(meta["size"])

    def create(self, key: str, data: bytes | Iterable[bytes] | Any, **options: Any) -> None:
        """Put ``data`` at ``key`` only if nothing is there (If-None-Match: *); AlreadyExists
        if something is."""
        obstore = _need_obstore()
        try:
            with self.errors(key):
                obstore.put(self.store(), key, data, mode="create", **options)
        except _AlreadyExistsWrapper:
            raise AlreadyExists(key) from None

    def put(self, key: str, data: Any, **options: Any) -> None:
        obstore = _need_obstore()
        with self.errors(key):
            obstore.put(self.store(), key, data, **options)

    def copy_create(self, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` unless ``dst`` exists (AlreadyExists then)."""
        obstore = _need_obstore()
        try:
            with self.errors(dst):
                obstore.copy(self.store(copy_if_not_exists=True), src, dst, overwrite=False)
        except _AlreadyExistsWrapper:
            raise AlreadyExists(dst) from None

    def delete(self, key: str) -> None:
        obstore = _need_obstore()
        with contextlib.suppress(SdlibError), self.errors(key):
            obstore.delete(self.store(), key)

    @contextlib.contextmanager
    def errors(self, key: str) -> Iterator[None]:
        """obstore's exceptions as sdlib errors naming the mirror and the key."""
        obstore = _need_obstore()
        ex = obstore.exceptions
        where = f"mirror {self.config.url}"
        try:
            yield
        except (ex.AlreadyExistsError, ex.PreconditionError, FileExistsError):
            raise _AlreadyExistsWrapper() from None
        except (ex.NotFoundError, FileNotFoundError) as exc:  # obstore raises either
            if "NoSuchBucket" in str(exc):
                raise NotFound(f"{where}: there is no bucket {self.config.bucket!r}") from None
            raise NotFound(f"{where}: no {key}") from None
        except ex.UnauthenticatedError:
            raise AuthRequired(
                f"{where}: the credentials were refused (AWS_ACCESS_KEY_ID / AWS_PROFILE)"
            ) from None
        except (ex.PermissionDeniedError, PermissionError):
            raise AccessDenied(f"{where}: access denied to {key}") from None
        except ex.BaseError as exc:
            if "NoSuchBucket" in str(exc):
                raise NotFound(f"{where}: there is no bucket {self.config.bucket!r}") from None
            raise SourceError(f"{where}: {_first_line(exc)}") from None


class _AlreadyExistsWrapper(Exception):
    pass


def _first_line(exc: BaseException) -> str:
    """obstore's message in one line: the S3 error code and HTTP status when the server
    answered, without the debug dump, the XML body or a signed URL's query."""
    full = str(exc)
    text = full.strip().splitlines()[0] if full.strip() else type(exc).__name__
    if "error sending request" in text or "Connect" in text:
        return "unreachable (connection failed)"
    status = re.search(r"status code: (\d{3}[A-Za-z ]*)", full)
    code = re.search(r"<Code>([^<]{1,64})</Code>", full)
    if status or code:
        said = f"HTTP {status.group(1).strip()}" if status else "an error"
        return f"the server answered {said}" + (f" ({code.group(1)})" if code else "")
    words = [w.split("?", 1)[0] if w.startswith("http") else w for w in text.split()]
    return " ".join(words)[:300]
