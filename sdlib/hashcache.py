"""A persistent cache of file hashes, so an unchanged file is never read twice.

Keyed by (device, inode, size, mtime_ns): a file edited in place, replaced, or touched is
hashed again; a file renamed within its file system is not. Stored in SQLite (stdlib) in
the user cache dir; a damaged or locked cache is ignored, never fatal.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from sdlib.files.opening import check_regular, printable
from sdlib.hashing import FileHashes, ProgressCallback, hash_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL, autov1 TEXT, autov2 TEXT NOT NULL, autov3 TEXT,
    crc32 TEXT NOT NULL, blake3 TEXT NOT NULL,
    PRIMARY KEY (dev, ino, size, mtime_ns)
)
"""
_VERSION = 1


class HashCache:
    """``get(path)`` returns cached hashes or hashes the file (and remembers)."""

    def __init__(self, db_path: str | os.PathLike[str] | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if db_path is None:
            return
        try:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(db_path), timeout=5, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # A commit per stored file without an fsync (11 ms each on a busy disk, against
            # 0.4 ms to hash a small embedding): WAL keeps the database whole, and an entry
            # lost to a power cut is only a file hashed again.
            db.execute("PRAGMA synchronous=NORMAL")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version != _VERSION:
                db.execute("DROP TABLE IF EXISTS hashes")
                db.execute(f"PRAGMA user_version={_VERSION}")
            db.execute(_SCHEMA)
            db.commit()
            self._db = db
        except (OSError, sqlite3.Error):
            self._db = None  # a cache we cannot open is a cache we do without

    @classmethod
    def default(cls) -> HashCache:
        from sdlib.config import load_settings

        return cls(load_settings().cache_dir / "hashes.sqlite")

    def close(self) -> None:
        # Under the lock: a worker thread (a merge's input hasher, say) may still be storing a
        # result when its caller leaves; closing the connection under it would crash SQLite.
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def lookup(self, path: str | os.PathLike[str]) -> FileHashes | None:
        """Cached hashes for ``path`` if the file is unchanged since they were computed."""
        if self._db is None:
            return None
        try:
            st = os.stat(path)
            with self._lock:
                if self._db is None:
                    return None
                row = self._db.execute(
                    "SELECT sha256, autov1, autov2, autov3, crc32, blake3 FROM hashes"
                    " WHERE dev=? AND ino=? AND size=? AND mtime_ns=?",
                    self._key(st),
                ).fetchone()
        except (OSError, sqlite3.Error):
            return None
        if row is None:
            return None
        return FileHashes(st.st_size, *row)

    def store(self, path: str | os.PathLike[str], hashes: FileHashes) -> None:
        if self._db is None:
            return
        try:
            st = os.stat(path)
            if st.st_size != hashes.size:
                return
            with self._lock:
                db = self._db
                if db is None:
                    return
                with db:
                    db.execute(
                        "INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (*self._key(st), printable(path), hashes.sha256, hashes.autov1,
                         hashes.autov2, hashes.autov3, hashes.crc32, hashes.blake3),
                    )  # fmt: skip
        except (OSError, sqlite3.Error):
            pass

    def get(
        self, path: str | os.PathLike[str], progress: ProgressCallback | None = None
    ) -> tuple[FileHashes, bool]:
        """(hashes, from_cache). Reads the file only when the cache has nothing valid."""
        cached = self.lookup(path)
        if cached is not None:
            return cached, True
        # A FIFO would block the read until something writes to it, a device never ends:
        # refuse what is not a regular file before opening it.
        check_regular(path)
        before = _stat_key(path)
        hashes = hash_file(path, progress)
        # Only remember a result if the file did not change while we read it.
        if before is not None and before == _stat_key(path):
            self.store(path, hashes)
        return hashes, False


def _stat_key(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    with contextlib.suppress(OSError):
        return HashCache._key(os.stat(path))
    return None
