"""Ranged pieces go into a few reused buffers, each written again only once it is hashed;
the threads a download starts beside its reads end with it at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.catalogue import LARGE_FILE_ID
from sdlib.demo.server import DemoServer
from sdlib.download import DownloadOptions, DownloadSpec, download
from sdlib.download import _transfer as transfer
from sdlib.hashing import Hasher
from sdlib.http import build_client

SIZE = 24 << 20
PIECE = 1 << 20
CHECKPOINT = 11011  # sd-v1-4.ckpt in the demo catalogue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=SIZE) as srv:
        yield srv


def _download(
    server: DemoServer, tmp_path: Path, connections: int = 4, file_id: int = LARGE_FILE_ID,
    piece: int = PIECE,
) -> str:  # fmt: skip
    """Download a file in ``piece``-sized pieces; its SHA256 as computed while streaming."""
    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=server.url),
        network=NetworkSettings(retries=1, backoff_max=0.01, read_timeout=5),
    )
    served = server.files[file_id]
    spec = DownloadSpec(
        url=server.signed_url(served),
        dest=tmp_path / "out" / served.spec.name,
        size=served.size,
        hashes=server.published_hashes(file_id),
    )
    options = replace(
        DownloadOptions.from_settings(settings, sleep=lambda _s: None),
        connections=connections, adaptive=False, split_threshold=1 << 20, piece_size=piece,
    )  # fmt: skip
    with build_client(settings) as client:
        result = download(client, spec, options)
    assert result.connections == connections
    assert result.verification is not None and result.verification.verified
    return result.hashes.sha256


def test_pieces_reuse_a_few_buffers(
    server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = 0
    real_take = transfer.PieceBuffers.take

    def counting(self: transfer.PieceBuffers) -> object:
        nonlocal made
        with self._lock:
            fresh = not self._free
        made += fresh
        return real_take(self)

    monkeypatch.setattr(transfer.PieceBuffers, "take", counting)
    sha = _download(server, tmp_path)
    assert sha == server.published_hashes(LARGE_FILE_ID)["SHA256"]
    pieces = SIZE // PIECE - 1  # the first GET's body carries the first MiB
    # At most the pieces four connections may hold ahead of the writer (2 per connection)
    # plus the one being written: 9 buffers for 23 pieces, not one each.
    assert 0 < made <= 9 < pieces


def test_a_buffer_is_not_refilled_before_it_is_hashed(
    server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SHA256 falls behind: the writer runs up to 8 buffers ahead of it, while two
    # connections cycle through 5 piece buffers (4 ahead of the writer and the one being
    # written), so a buffer comes round again before its bytes are hashed. The file is a
    # pickle checkpoint, 10 MiB that are not all zeros (the large file's pieces are), in
    # 40 pieces of 256 KiB.
    real = Hasher._sha_update

    def slow(self: Hasher, chunk: object) -> None:
        time.sleep(0.03)
        real(self, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(Hasher, "_sha_update", slow)
    sha = _download(server, tmp_path, connections=2, file_id=CHECKPOINT, piece=256 << 10)
    assert sha == server.published_hashes(CHECKPOINT)["SHA256"]  # not a refilled buffer's


def test_stopping_the_cancel_watch_returns_at_once() -> None:
    # Every download stops its watch at the end; it used to wait out a 0.2 s poll first.
    took = []
    for _ in range(3):
        watch = transfer.CancelWatch(threading.Event())
        time.sleep(0.01)
        began = time.monotonic()
        watch.stop()
        took.append(time.monotonic() - began)
    assert min(took) < 0.1


def test_a_cancel_still_aborts_a_read_in_flight() -> None:
    cancel = threading.Event()
    aborted = threading.Event()
    watch = transfer.CancelWatch(cancel)
    try:
        with watch.reading(aborted.set):
            cancel.set()
            assert aborted.wait(1.0)
    finally:
        watch.stop()
