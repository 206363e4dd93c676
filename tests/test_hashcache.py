"""The hash cache never returns stale hashes and never reads an unchanged file twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sdlib.hashcache as hc
from sdlib.hashcache import HashCache


def test_unchanged_file_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"abc" * 1000)
    with HashCache(tmp_path / "c.sqlite") as cache:
        first, cached = cache.get(path)
        assert not cached
    reads: list[Path] = []
    real = hc.hash_file
    monkeypatch.setattr(hc, "hash_file", lambda p, *a: reads.append(Path(p)) or real(p, *a))
    with HashCache(tmp_path / "c.sqlite") as cache:  # a new process would see the same
        second, cached = cache.get(path)
    assert cached and second == first and reads == []


def test_changed_file_is_hashed_again(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"one")
    with HashCache(tmp_path / "c.sqlite") as cache:
        a, _ = cache.get(path)
        path.write_bytes(b"two")
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        b, cached = cache.get(path)
    assert not cached and a.sha256 != b.sha256


def test_renamed_file_keeps_its_hashes(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"content")
    with HashCache(tmp_path / "c.sqlite") as cache:
        a, _ = cache.get(path)
        moved = path.rename(tmp_path / "renamed.bin")
        b, cached = cache.get(moved)
    assert cached and a == b


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    path = tmp_path / "m.bin"
    path.write_bytes(b"x")
    with HashCache(db) as cache:
        h, cached = cache.get(path)
    assert not cached and h.size == 1


@pytest.mark.skipif(os.name == "nt", reason="POSIX names and FIFOs")
def test_non_utf8_names_are_cached_and_fifos_refused(tmp_path: Path) -> None:
    from sdlib.errors import FormatError

    name = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.bin")
    with open(name, "wb") as fh:
        fh.write(b"abc")
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    with HashCache(tmp_path / "c.sqlite") as cache:
        hashes, cached = cache.get(name)
        # SHA256("abc"), FIPS 180-2 appendix B.1
        assert hashes.sha256.startswith("BA7816BF8F01CFEA") and not cached
        assert cache.get(name) == (hashes, True)  # stored despite the undecodable name
        with pytest.raises(FormatError, match="not a regular file"):
            cache.get(fifo)  # refused at once: opening it would wait for a writer


def test_closing_while_another_thread_stores_is_safe(tmp_path: Path) -> None:
    """A merge's input hasher may still store a result after its caller closed the cache."""
    import threading

    from sdlib.hashing import hash_file

    target = tmp_path / "m.bin"
    target.write_bytes(b"x" * 4096)
    hashes = hash_file(target)
    for _ in range(50):
        cache = HashCache(tmp_path / "cache.sqlite")
        workers = [
            threading.Thread(target=lambda c=cache: [c.store(target, hashes) for _ in range(20)])
            for _ in range(3)
        ]
        for w in workers:
            w.start()
        cache.close()
        for w in workers:
            w.join()
        assert cache.lookup(target) is None  # closed: no answer, no crash


def test_storing_an_entry_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    # WAL with synchronous=NORMAL: a commit is not an fsync (a scan of many small files
    # spent ~11 ms per file syncing the cache, 25x the time to hash one).
    import sqlite3

    path = tmp_path / "m.bin"
    path.write_bytes(b"x" * 100)
    with HashCache(tmp_path / "c.sqlite") as cache:
        cache.get(path)
        db = cache._db
        assert isinstance(db, sqlite3.Connection)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with HashCache(tmp_path / "c.sqlite") as cache:  # and the entry is there for the next run
        assert cache.get(path)[1]
