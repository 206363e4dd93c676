"""``Mirror``: one object for an S3 bucket or a plain HTTP mirror.

Reads go over sdlib's own HTTP client wherever they can (an HTTP mirror, a public-read
bucket, a presigned URL), so the download engine streams a mirror object exactly as any
other URL: ranges, resume, every hash verified. Writes (``push``) need the S3 client.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sdlib.errors import FormatError, HashMismatch, NotFound, UsageError
from sdlib.hashing import FileHashes, Hasher
from sdlib.mirror._config import MirrorConfig
from sdlib.mirror._layout import (
    MirrorMeta,
    check_sha256,
    meta_key,
    object_key,
    sha256_of_key,
)
from sdlib.mirror._s3 import S3, AlreadyExists, has_obstore

if TYPE_CHECKING:
    import httpx2

    from sdlib.config import NetworkSettings, Settings
    from sdlib.hashcache import HashCache

__all__ = ["Mirror", "MirrorEntry", "Progress", "PushResult", "open_mirror"]

#: Files up to this size are one conditional PUT (obstore holds a conditional put in memory);
#: larger ones go up in parts to a staging key and are copied into place conditionally.
SINGLE_PUT_MAX = 64 << 20
PART_SIZE = 16 << 20
#: S3 copies at most 5 GiB in one part, and obstore's conditional copy is one part: past
#: this, parts go straight to the object's key (no condition). Safe because the key is the
#: content's SHA256 and the bytes were verified: a racing writer writes the same bytes, and
#: a multipart object appears only whole. Both racers then say "created".
COPY_MAX = 5 << 30
#: A sidecar larger than this is not one.
META_LIMIT = 1 << 20
READ_CHUNK = 1 << 20

#: ``progress(done_bytes, total_bytes)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PushResult:
    sha256: str
    size: int
    #: "created": these bytes made the object; "exists": it was there already (another
    #: machine won the race, or an earlier push).
    status: Literal["created", "exists"]
    key: str


@dataclass(frozen=True)
class MirrorEntry:
    sha256: str
    size: int


class Mirror:
    """A content-addressed mirror: ``PREFIX/sha256/<aa>/<64 hex>`` + ``PREFIX/meta/<64 hex>.json``.

    Errors are sdlib's: an unreachable mirror is ``SourceError`` (exit 7), refused
    credentials ``AuthRequired``/``AccessDenied`` (6), a bad configuration ``ConfigError``
    (2). Mirror-first callers treat any of them as a miss and go upstream.
    """

    def __init__(
        self, config: MirrorConfig, http: httpx2.Client, *,
        network: NetworkSettings | None = None, hashes: HashCache | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self._http = http
        self._hashes = hashes
        self._s3 = S3(config, network) if config.is_s3 else None

    def __repr__(self) -> str:
        return f"Mirror({self.config.url!r})"

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def kind(self) -> Literal["s3", "http"]:
        return "s3" if self.config.is_s3 else "http"

    @property
    def _s3_api(self) -> S3 | None:
        """The S3 client, when this is a bucket and obstore is installed."""
        return self._s3 if self._s3 is not None and has_obstore() else None

    @property
    def can_publish(self) -> bool:
        return self.config.is_s3 and self.config.publish and has_obstore()

    # -- reading ---------------------------------------------------------------------------------
    def object_url(self, sha256: str) -> str:
        """A URL any HTTP client can GET (with Range) for the object: the mirror's public URL,
        or for a bucket with credentials a presigned GET valid for some hours."""
        key = object_key(sha256)
        s3 = self._s3_api
        if s3 is not None and self.config.credentials is not None:
            return s3.sign_get(key)
        return self.config.base_url() + key

    def headers(self) -> dict[str, str]:
        """Extra request headers for :meth:`object_url` (none: URLs carry their access)."""
        return {}

    def stat(self, sha256: str) -> int | None:
        """The object's size, None if the mirror has no such object."""
        key = object_key(sha256)
        s3 = self._s3_api
        if s3 is not None:
            return s3.head(key)
        from sdlib.http import network_errors, raise_for_status

        url = self.config.base_url() + key
        with network_errors(url):
            response = self._http.head(url, headers=self.headers())
        if response.status_code in (404, 410):
            return None
        raise_for_status(response)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def meta(self, sha256: str) -> MirrorMeta | None:
        """The object's sidecar, None when there is none or it is not a sidecar."""
        raw = self._get_small(meta_key(sha256))
        if raw is None:
            return None
        from sdlib.http import HostileJSON, loads_bounded

        try:
            meta = MirrorMeta.from_dict(loads_bounded(raw))
        except (HostileJSON, ValueError, UnicodeDecodeError):
            return None
        if meta is None or meta.sha256 != check_sha256(sha256):
            return None
        return meta

    def _get_small(self, key: str) -> bytes | None:
        s3 = self._s3_api
        if s3 is not None:
            return s3.get_bytes(key, META_LIMIT)
        from sdlib.http import network_errors, raise_for_status, read_capped

        url = self.config.base_url() + key
        with network_errors(url), self._http.stream("GET", url, headers=self.headers()) as r:
            if r.status_code in (404, 410):
                return None
            raise_for_status(r)
            body, complete = read_capped(r, META_LIMIT)
        return body if complete else None

    def entries(self) -> Iterator[MirrorEntry]:
        """Every object in the mirror (S3 only: a plain HTTP server cannot be listed)."""
        s3 = self._s3
        if s3 is None:
            raise UsageError(
                f"the HTTP mirror {self.url} cannot be listed: ls needs an s3:// mirror"
            )
        for key, size in s3.iter_keys("sha256/"):
            sha = sha256_of_key(key)
            if sha is not None:
                yield MirrorEntry(sha, size)

    def hash_object(self, sha256: str, progress: Progress | None = None) -> FileHashes:
        """Stream the object and hash it (all six hashes). NotFound if it is missing."""
        from sdlib.http import network_errors, raise_for_status

        url = self.object_url(sha256)
        with network_errors(url), self._http.stream("GET", url, headers=self.headers()) as r:
            if r.status_code in (404, 410):
                raise NotFound(f"mirror {self.url} has no {sha256}")
            raise_for_status(r)
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else 0
            hasher = Hasher(total or None)
            done = 0
            for chunk in r.iter_bytes(READ_CHUNK):
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        return hasher.result()

    # -- one fetch from upstream for many machines (used by sdlib._mirrorfirst) ----------------
    def claim(self, sha256: str, seconds: float) -> bool | None:
        """Mark "this machine is fetching it from upstream" for ``seconds`` (a conditional
        create of ``PREFIX/claims/<64 hex>.json``). True: ours (fetch, push, then
        :meth:`release`); False: another machine's, still fresh (wait for the object);
        None: this mirror takes no claims (read-only, or not publishing)."""
        s3 = self._s3_api
        if s3 is None or not self.can_publish:
            return None
        import json
        import time

        key = f"claims/{check_sha256(sha256)}.json"
        now = time.time()
        body = json.dumps({"by": _who(), "at": now, "until": now + seconds}).encode()
        with contextlib.suppress(AlreadyExists):
            s3.create(key, body)
            return True
        raw = s3.get_bytes(key, 4096)
        try:
            until = float(json.loads(raw)["until"]) if raw is not None else 0.0
        except (ValueError, KeyError, TypeError):
            until = 0.0
        if until >= now:
            return False
        if raw is not None:  # a claim its machine never released (it died): take it over
            s3.delete(key)
        with contextlib.suppress(AlreadyExists):
            s3.create(key, body)
            return True
        return False

    def release(self, sha256: str) -> None:
        """End this machine's :meth:`claim` (whether the fetch worked or not)."""
        s3 = self._s3_api
        if s3 is not None:
            s3.delete(f"claims/{check_sha256(sha256)}.json")

    # -- writing ---------------------------------------------------------------------------------
    def push(
        self, path: str | os.PathLike[str], hashes: FileHashes, meta: MirrorMeta | None = None,
        progress: Progress | None = None,
    ) -> PushResult:  # fmt: skip
        """Upload ``path`` as the object for ``hashes.sha256`` (a conditional create: the
        first writer wins; "already exists" is success) and its sidecar.

        The file is re-hashed (through the hash cache when there is one) and refused with
        ``HashMismatch`` if its SHA256 is not the one claimed; the bytes sent are hashed
        again as they go, so a file changed mid-upload never becomes the object."""
        s3 = self._writable()
        path = Path(path)
        sha = check_sha256(hashes.sha256)
        actual = self._hashes.get(path)[0] if self._hashes is not None else _hash_file(path)
        if actual.sha256.lower() != sha:
            raise HashMismatch(
                f"its SHA256 is {actual.sha256.lower()}, not the {sha} claimed: not pushed",
                path=str(path), expected=sha, actual=actual.sha256.lower(),
            )  # fmt: skip
        size = actual.size
        key = object_key(sha)
        status: Literal["created", "exists"]
        existing = s3.head(key)
        if existing is not None:
            if existing != size:
                raise HashMismatch(
                    f"mirror object {key} is {existing} bytes, the file {size}: "
                    "run sdlib mirror verify", expected=str(size), actual=str(existing),
                )  # fmt: skip
            status = "exists"
        else:
            status = self._upload(s3, path, key, sha, size, progress)
        if meta is None:
            meta = MirrorMeta(hashes=actual, names=(path.name,))
        meta = replace(meta, hashes=actual, pushed_by=meta.pushed_by or _who(),
                       pushed_at=meta.pushed_at or _now())  # fmt: skip
        with contextlib.suppress(AlreadyExists):  # the first pusher's sidecar stands
            s3.create(meta_key(sha), meta.to_json())
        return PushResult(sha256=sha, size=size, status=status, key=key)

    def _writable(self) -> S3:
        if self._s3 is None:
            raise UsageError(f"the HTTP mirror {self.url} is read-only: push needs an s3:// url")
        self._s3.store()  # ConfigError naming the extra when obstore is missing
        return self._s3

    def _upload(
        self, s3: S3, path: Path, key: str, sha: str, size: int, progress: Progress | None
    ) -> Literal["created", "exists"]:
        if size <= SINGLE_PUT_MAX:
            data = _read_all(path, size)
            if hashlib.sha256(data).hexdigest() != sha:
                raise FormatError("changed while it was being pushed: not pushed", path=str(path))
            try:
                s3.create(key, data)
            except AlreadyExists:
                return "exists"
            if progress is not None:
                progress(size, size)
            return "created"
        # Parts go to a staging key (invisible under sha256/); the object appears only when
        # the conditional copy completes. A crash leaves at most an incoming/ object or an
        # incomplete multipart upload, which a bucket lifecycle rule removes.
        if size > COPY_MAX:
            s3.put(key, _chunks(path, sha, size, progress), use_multipart=True,
                   chunk_size=PART_SIZE, max_concurrency=4)  # fmt: skip
            return "created"
        staging = f"incoming/{sha}.{uuid.uuid4().hex}"
        try:
            s3.put(staging, _chunks(path, sha, size, progress), use_multipart=True,
                   chunk_size=PART_SIZE, max_concurrency=4)  # fmt: skip
            try:
                s3.copy_create(staging, key)
            except AlreadyExists:
                return "exists"
            return "created"
        finally:
            s3.delete(staging)


def _chunks(path: Path, sha: str, size: int, progress: Progress | None) -> Iterator[bytes]:
    """The file in parts, hashed as they are read: a mismatch at the end raises before the
    upload completes, so the parts are discarded."""
    digest = hashlib.sha256()
    done = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(PART_SIZE):
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, size)
                yield chunk
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if done != size or digest.hexdigest() != sha:
        raise FormatError("changed while it was being pushed: not pushed", path=str(path))


def _read_all(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(size + 1)
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if len(data) != size:
        raise FormatError("changed while it was being pushed: not pushed", path=str(path))
    return data


def _hash_file(path: Path) -> FileHashes:
    from sdlib.hashing import hash_file

    return hash_file(path)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def open_mirror(
    settings: Settings, http: httpx2.Client, *, hashes: HashCache | None = None
) -> Mirror | None:
    """The configured mirror, or None when ``[mirror] url`` (``SDLIB_MIRROR_URL``) is unset.
    ConfigError for a malformed one. Nothing is contacted until a method is called."""
    config = MirrorConfig.from_settings(settings)
    if config is None:
        return None
    return Mirror(config, http, network=settings.network, hashes=hashes)
