"""The threaded hash pass: same hashes as independent implementations, page-aligned reads,
no more hashing threads than cores, errors and interrupts that leave no thread behind."""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import struct
import threading
import zlib
from pathlib import Path

import pytest
from blake3 import blake3

from sdlib import _hashpool, hashing
from sdlib._hashpool import Chunk, ChunkPool
from sdlib.hashing import FileHashes, Hasher, hash_file, hash_stream
from tests.support.paths import PUBLISHED


def oracle(data: bytes, body_from: int | None = None) -> dict[str, str | None]:
    """The six hashes computed directly with hashlib, blake3 and zlib."""
    sha = hashlib.sha256(data).hexdigest().upper()
    v1 = hashlib.sha256(data[1 << 20 : (1 << 20) + 65536]).hexdigest().upper()[:8]
    v3 = None if body_from is None else hashlib.sha256(data[body_from:]).hexdigest().upper()
    return {
        "sha256": sha,
        "autov1": v1 if len(data) >= 2 << 20 else None,
        "autov2": sha[:10],
        "autov3": None if v3 is None else v3[:12],
        "crc32": zlib.crc32(data).to_bytes(4, "little").hex().upper(),
        "blake3": blake3(data).hexdigest().upper(),
    }


def six(h: FileHashes) -> dict[str, str | None]:
    out = h.to_dict()
    del out["size"]
    return out


def safetensors_bytes(header_len: int, body: bytes) -> bytes:
    header = b"{" + b" " * (header_len - 2) + b"}"
    return struct.pack("<Q", header_len) + header + body


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Read in 4 KiB pieces, so that small files take the threaded path over many buffers."""
    monkeypatch.setattr(hashing, "CHUNK", 4096)
    return 4096


@pytest.mark.parametrize("cores", [1, 2, 4])
@pytest.mark.parametrize("header_len", [2, 4087, 4088, 4089, 10_000])
def test_threaded_safetensors_equal_independent_hashes(
    tmp_path: Path, tiny_chunks: int, monkeypatch: pytest.MonkeyPatch, cores: int, header_len: int
) -> None:
    # The body starts just before, at and after a read boundary (8 + 4088 = 4096).
    monkeypatch.setattr(hashing, "usable_cores", lambda: cores, raising=False)
    data = safetensors_bytes(header_len, os.urandom(300_000 + header_len))
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    h = hash_file(path)
    assert h.size == len(data)
    assert six(h) == oracle(data, 8 + header_len)
    assert h.autov3_full == hashlib.sha256(data[8 + header_len :]).hexdigest().upper()


@pytest.mark.parametrize("size", [4 * 4096 + 1, 100_000, (2 << 20) + 12_345])
def test_threaded_plain_files_equal_independent_hashes(
    tmp_path: Path, tiny_chunks: int, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "m.ckpt"
    path.write_bytes(data)
    assert six(hash_file(path)) == oracle(data)


def _published() -> list[dict[str, str]]:
    import csv

    tsv = PUBLISHED / "published.tsv"
    if not tsv.is_file():
        return []
    with open(tsv, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.skipif(not _published(), reason="civitai-published corpus not present")
@pytest.mark.parametrize("row", _published(), ids=lambda r: r["file"])
def test_threaded_pass_equals_what_civitai_published(tiny_chunks: int, row: dict[str, str]) -> None:
    """Real files through the threaded path in 4 KiB buffers: every hash civitai.com
    published for them still comes out."""
    h = hash_file(PUBLISHED / row["file"])
    assert h.size == int(row["bytes"])
    for name in ("SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3"):
        if row[name]:
            assert h.get(name) == row[name].upper(), name


class _Recorder(io.BytesIO):
    """A readable that notes the address of every buffer it is asked to fill."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.addresses: list[int] = []

    def readinto(self, buffer: object) -> int:
        view = memoryview(buffer)  # type: ignore[arg-type]
        holder = (ctypes.c_char * len(view)).from_buffer(view)
        self.addresses.append(ctypes.addressof(holder))
        del holder
        view.release()
        return super().readinto(buffer)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [100_000, 5 * (4 << 20) + 7])
def test_reads_land_in_page_aligned_buffers(size: int) -> None:
    # The kernel copies a file into a buffer 3-5x slower on AMD CPUs when the buffer is not
    # 64-byte aligned, and a bytearray's data starts 16 bytes into its malloc block.
    data = os.urandom(size)
    fh = _Recorder(data)
    assert six(hash_stream(fh, size)) == oracle(data)
    assert fh.addresses
    assert all(address % 4096 == 0 for address in fh.addresses)


def test_no_more_hashing_threads_than_cores(
    tmp_path: Path, tiny_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread per hash plus a reader (four busy threads on two cores) time-slices the
    # SHA256 stream that sets the pace; the pool runs one thread per usable core.
    monkeypatch.setattr(hashing, "usable_cores", lambda: 2, raising=False)
    data = safetensors_bytes(100, os.urandom(400_000))
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    seen: list[int] = []
    caller = threading.current_thread()
    before = set(threading.enumerate())  # (pytest-xdist runs threads of its own)

    def progress(n: int) -> None:
        assert threading.current_thread() is caller
        seen.append(n)
        workers = [t for t in threading.enumerate() if t not in before]
        assert len(workers) <= 2, [t.name for t in workers]

    assert six(hash_file(path, progress)) == oracle(data, 108)
    assert sum(seen) == len(data)
    assert set(threading.enumerate()) <= before  # every worker has ended


def test_a_read_error_is_a_format_error_and_stops_the_threads(tiny_chunks: int) -> None:
    class Failing(io.BytesIO):
        def readinto(self, buffer: object) -> int:
            if self.tell() >= 50_000:
                raise OSError(5, "Input/output error")
            return super().readinto(buffer)  # type: ignore[arg-type]

    before = set(threading.enumerate())
    with pytest.raises(OSError, match="Input/output"):
        hash_stream(Failing(os.urandom(100_000)), 100_000)
    assert set(threading.enumerate()) <= before


def test_an_interrupt_in_the_progress_callback_stops_the_threads(tiny_chunks: int) -> None:
    def progress(n: int) -> None:
        raise KeyboardInterrupt

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        hash_stream(io.BytesIO(os.urandom(200_000)), 200_000, progress)
    assert set(threading.enumerate()) <= before


def test_many_files_hashed_at_once_each_get_their_own_hashes(
    tmp_path: Path, tiny_chunks: int
) -> None:
    files = []
    for i in range(6):
        data = safetensors_bytes(50 + i, os.urandom(60_000 + 997 * i))
        path = tmp_path / f"m{i}.safetensors"
        path.write_bytes(data)
        files.append((path, oracle(data, 58 + i)))
    results: dict[Path, dict[str, str | None]] = {}

    def work(path: Path) -> None:
        results[path] = six(hash_file(path))

    threads = [threading.Thread(target=work, args=(p,)) for p, _ in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {p: expected for p, expected in files}


def test_streaming_hasher_in_many_small_pieces_across_threads() -> None:
    # The downloader's use: many small buffers, then wait_done before each buffer is reused.
    data = safetensors_bytes(1000, os.urandom(3 << 20))
    h = Hasher(len(data), threads=True)
    pos = 0
    step = 1
    while pos < len(data):
        h.update(data[pos : pos + step])
        pos += step
        step = step * 3 % 70_001 + 1
        if h.fed % 16 == 0:
            h.wait_done(h.fed)
    assert six(h.result()) == oracle(data, 1008)


def test_pool_runs_every_stage_over_every_chunk_in_order() -> None:
    seen: list[list[int]] = [[], [], []]

    def stage(i: int) -> object:
        def run(chunk: Chunk) -> None:
            seen[i].append(chunk.view[0])

        return run

    pool = ChunkPool([stage(i) for i in range(3)], workers=2).start()  # type: ignore[misc]
    for n in range(200):
        pool.put(Chunk(memoryview(bytes([n % 256]))))
    pool.finish()
    assert seen == [[n % 256 for n in range(200)]] * 3


def test_pool_raises_a_stage_error_in_the_caller_and_ends_its_threads() -> None:
    def bad(chunk: Chunk) -> None:
        raise ValueError("stage broke")

    before = set(threading.enumerate())
    pool = ChunkPool([lambda c: None, bad], workers=2).start()
    pool.put(Chunk(memoryview(b"x")))
    pool.wait_done(1)  # returns on the error instead of hanging
    with pytest.raises(ValueError, match="stage broke"):
        pool.finish()
    assert set(threading.enumerate()) <= before


def test_buffers_are_reused_between_files(tmp_path: Path) -> None:
    data = os.urandom(5 * hashing.CHUNK + 1)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    hash_file(path)
    kept = list(_hashpool._spare)
    assert kept and all(len(b) == hashing.CHUNK for b in kept)
    assert six(hash_file(path)) == oracle(data)
    assert {id(b) for b in _hashpool._spare} & {id(b) for b in kept}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_child_forked_while_the_buffer_lock_was_held_can_still_hash() -> None:
    # A scan may fork workers while another thread is hashing: the child must not inherit
    # the buffer cache's lock held (it would block on its first hash forever).
    import signal
    import time

    with _hashpool._spare_lock:
        pid = os.fork()
        if pid == 0:  # the child: hash something, exit 0 if it matched
            ok = False
            try:
                data = b"x" * 100_000
                ok = six(hash_stream(io.BytesIO(data), len(data))) == oracle(data)
            finally:
                os._exit(0 if ok else 1)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the buffer cache's lock")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
