"""A real S3 API server on 127.0.0.1 for the mirror's tests: moto's ``ThreadedMotoServer``.

Reusable by any test package: import the fixtures into a ``conftest.py``::

    from tests.support.s3_server import s3_bucket, s3_server  # noqa: F401

``s3_server`` (session) is one server; ``s3_bucket`` (per test) is a fresh bucket on it with
fake credentials in the environment, and knows the settings, environment and config text
that point sdlib at ``s3://<bucket>/models``. moto ignores the credentials' values but the
S3 client signs with them, as it would against a real server. The server binds 127.0.0.1
only (moto's default is 0.0.0.0).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.config import MirrorSettings, Settings

__all__ = ["FAKE_CREDENTIALS", "S3Bucket", "S3Server", "s3_bucket", "s3_server", "write_blob"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sdlib-test-key",
    "AWS_SECRET_ACCESS_KEY": "sdlib-test-secret",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """``with S3Server() as s3: s3.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        # werkzeug logs every request at INFO on stderr: noise in every test's output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = _atomic_conditional_server()
        self.endpoint = ""

    def __enter__(self) -> S3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        assert host == "127.0.0.1"
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def create_bucket(self, name: str) -> None:
        # moto's server takes an unsigned CreateBucket (obstore has no create-bucket call).
        response = httpx2.put(f"{self.endpoint}/{name}", timeout=10)
        response.raise_for_status()


def _atomic_conditional_server() -> Any:
    """moto's threaded server, with conditional writes made atomic.

    moto answers ``If-None-Match: *`` (on PutObject and CompleteMultipartUpload) by looking
    for the key and then writing it, with no lock in between: two racing writers can both
    "win", where AWS S3, SeaweedFS or Ceph let exactly one. Serializing the requests that
    carry the header gives the tests the real servers' semantics; everything else stays
    concurrent."""
    import threading

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    lock = threading.Lock()

    class AtomicConditional:
        def __init__(self, app: Any) -> None:
            self.app = app

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            if "HTTP_IF_NONE_MATCH" not in environ:
                return self.app(environ, start_response)
            with lock:
                return list(self.app(environ, start_response))

    class Server(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            from moto.moto_server.threaded_moto_server import MotoRequestHandler

            app = AtomicConditional(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=MotoRequestHandler)  # fmt: skip
            self._server_ready_event.set()
            self._server.serve_forever()

    # Never moto's default 0.0.0.0.
    return Server(ip_address="127.0.0.1", port=0, verbose=False)


@dataclass(frozen=True)
class S3Bucket:
    """One test's bucket, and sdlib's mirror settings for ``s3://<name>/<prefix>``."""

    endpoint: str
    name: str
    prefix: str = "models"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def env(self, **extra: str) -> dict[str, str]:
        """Variables that point a subprocess's sdlib at this bucket."""
        return {**FAKE_CREDENTIALS, "SDLIB_MIRROR_URL": self.url,
                "AWS_ENDPOINT_URL": self.endpoint, **extra}  # fmt: skip

    def config_toml(self, *, publish: bool = True) -> str:
        return (
            f'[mirror]\nurl = "{self.url}"\nendpoint_url = "{self.endpoint}"\n'
            f"publish = {'true' if publish else 'false'}\n"
        )

    def settings(self, base: Settings | None = None, *, publish: bool = True) -> Settings:
        base = base or Settings()
        mirror = MirrorSettings(url=self.url, endpoint_url=self.endpoint, publish=publish)
        return replace(base, mirror=mirror)

    def store(self) -> Any:
        """An obstore ``S3Store`` on the whole bucket (keys include the prefix), for a test
        to plant or inspect objects behind sdlib's back."""
        from obstore.store import S3Store

        return S3Store(
            self.name, endpoint=self.endpoint, region="us-east-1",
            access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            client_options={"allow_http": True},
        )  # fmt: skip

    def keys(self) -> list[str]:
        import obstore

        return sorted(str(m["path"]) for batch in obstore.list(self.store()) for m in batch)

    def read(self, key: str) -> bytes:
        import obstore

        return bytes(obstore.get(self.store(), key).bytes())

    def plant(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store(), key, data)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket; the fake credentials and region are in this process's environment."""
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = f"sdlib-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return S3Bucket(endpoint=s3_server.endpoint, name=name)


def write_blob(path: Path, size: int, seed: int = 0) -> bytes:
    """A file of ``size`` deterministic pseudo-random bytes."""
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data
