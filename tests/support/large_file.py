"""The demo server's generated large file: its signed storage URL and the SHA256 of the
bytes it serves, computed with hashlib from the generator (not from sdlib)."""

from __future__ import annotations

import hashlib

import httpx2

from sdlib.demo.catalogue import LARGE_FILE_ID, LARGE_VERSION_ID, LargeFile
from sdlib.demo.server import DemoServer

MIB = 1 << 20


def large_url(server: DemoServer) -> str:
    """Where the API's download link for the large file redirects (the storage host)."""
    response = httpx2.get(
        f"{server.url}/api/download/models/{LARGE_VERSION_ID}?fileId={LARGE_FILE_ID}",
        headers={"User-Agent": "test"},
        follow_redirects=False,
    )
    return response.headers["Location"]


def served_sha256(size: int) -> str:
    digest = hashlib.sha256()
    with LargeFile(size).open() as fh:
        while chunk := fh.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest().upper()
