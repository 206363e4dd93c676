"""The library index: one SQLite file (stdlib ``sqlite3``) in the user data dir.

What it remembers per file (models and their sidecars): where it is, the stat key it had
when sdlib last looked (device, inode, size, mtime_ns), what its content is (container,
kind, base, precision, pickle verdict, or why it could not be read), its SHA256 once known,
and the Civitai ids ``identify`` found. A row's id survives moves (``scan`` matches a
vanished path to a new one by inode or SHA256), so history and metadata follow the file;
``events`` records what happened to it. ``remote`` caches Civitai answers with their age.

Schema changes are numbered migrations applied in order under ``PRAGMA user_version``;
the database runs in WAL mode and every write is an explicit transaction. sqlite3 errors
become ``LibraryError`` here, once.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sdlib.errors import LibraryError
from sdlib.library._schema import MIGRATIONS, statements

__all__ = ["DB_NAME", "MIGRATIONS", "FileRow", "Index"]

DB_NAME = "library.sqlite"


@dataclass(frozen=True)
class FileRow:
    """One row of ``files``; ``id`` is None until inserted."""

    path: str
    role: str
    dev: int | None = None
    ino: int | None = None
    size: int | None = None
    mtime_ns: int | None = None
    container: str | None = None
    kind: str | None = None
    base: str | None = None
    variant: str | None = None
    precision: str | None = None
    safety: str | None = None
    problem: str | None = None
    true_ext: str | None = None
    sha256: str | None = None
    civitai_model_id: int | None = None
    civitai_version_id: int | None = None
    civitai_file_id: int | None = None
    civitai_model_name: str | None = None
    civitai_version_name: str | None = None
    civitai_base_model: str | None = None
    identify_state: str | None = None
    identified_at: float | None = None
    matched_by: str | None = None
    #: ``sdlib.files.CLASSIFIER_VERSION`` when the content was classified (None: version 1).
    classified_by: int | None = None
    #: GGUF files: the ggml quantization (Q8_0, Q4_K_M...).
    quantization: str | None = None
    #: Downloads: the verification outcome as JSON (``status``, ``decided_by``, and each
    #: published hash that disagreed), None for files sdlib did not download.
    verification: str | None = None
    #: The source that identified the file (``civarchive``); None for Civitai.
    identified_source: str | None = None
    present: int = 1
    first_seen: float = 0.0
    last_seen: float = 0.0
    id: int | None = None

    @property
    def stat_key(self) -> tuple[int | None, int | None, int | None, int | None]:
        return (self.dev, self.ino, self.size, self.mtime_ns)


_COLUMNS = tuple(f.name for f in fields(FileRow) if f.name != "id")
#: Columns that describe content: cleared when the bytes change.
CONTENT_COLUMNS = (
    "container", "kind", "base", "variant", "precision", "safety", "problem", "true_ext",
    "sha256", "civitai_model_id", "civitai_version_id", "civitai_file_id",
    "civitai_model_name", "civitai_version_name", "civitai_base_model", "identify_state",
    "identified_at", "matched_by", "classified_by", "quantization", "verification",
    "identified_source",
)  # fmt: skip
#: The content columns a newer classifier may change; hashes and Civitai ids stay.
CLASSIFICATION_COLUMNS = (
    "container",
    "kind",
    "base",
    "variant",
    "precision",
    "quantization",
    "safety",
    "problem",
    "classified_by",
)


#: FileRow's fields in order: selecting exactly these builds rows positionally (fast), and
#: columns a newer migration added are simply not selected.
_SELECT = "SELECT " + ", ".join((*_COLUMNS, "id")) + " FROM files"


def _row(r: sqlite3.Row | tuple[Any, ...]) -> FileRow:
    if "\0" in r[0]:  # path is the first column
        return FileRow(_from_db(r[0]), *tuple(r)[1:])
    return FileRow(*r)


_ESCAPED = re.compile("\0([0-9a-f]{4})")


def _to_db(path: str) -> str:
    """``path`` as SQLite can store it. A file name whose bytes are not UTF-8 reaches Python
    with lone surrogates (surrogateescape), which sqlite3 refuses; each becomes NUL plus its
    code point in hex. A path never holds NUL, so this is reversible and keeps every other
    path (and the sort order range queries rely on) unchanged."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(f"\0{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in path)
    return path


_SURROGATES = re.compile("[\ud800-\udfff]")


def _text(value: Any) -> Any:
    """Text columns other than the path (Civitai names, notes) with lone surrogates, as a
    JSON ``\\ud800`` escape decodes, shown as U+FFFD: sqlite3 refuses to store them."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATES.sub("\ufffd", value)
    return value


def _from_db(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _prefix_bounds(folder: str) -> tuple[str, str]:
    """(low, high) such that every path strictly inside ``folder`` sorts between them."""
    base = _to_db(folder.rstrip("/\\") + os.sep)
    return base, base[:-1] + chr(ord(os.sep) + 1)


class Index:
    """The catalogue. Thread-safe (one connection behind a lock); use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                str(self.path), timeout=10, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(f"cannot open the library index: {exc}", path=str(path)) from None
        db.row_factory = sqlite3.Row
        self._db = db
        with self._errors():
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    @classmethod
    def for_settings(cls, settings: Any) -> Index:
        return cls(Path(settings.data_dir) / DB_NAME)

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise LibraryError(
                "the library index changed while sdlib was working (is another sdlib scanning "
                "the same folders?); run it again",
                path=str(self.path),
            ) from None
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LibraryError(
                    "the library index is busy (another sdlib is writing it); try again",
                    path=str(self.path),
                ) from None
            raise LibraryError(f"library index: {exc}", path=str(self.path)) from None
        except sqlite3.DatabaseError as exc:
            raise LibraryError(
                f"library index is damaged ({exc}); delete it and scan again",
                path=str(self.path),
            ) from None

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise LibraryError(
                f"the library index is from a newer sdlib (schema {version}); upgrade sdlib",
                path=str(self.path),
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements(MIGRATIONS[number - 1]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One explicit write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``)."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock, self._errors():
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    # -- files --------------------------------------------------------------------------------

    def files_under(self, folders: Iterable[str], *, present: bool = True) -> list[FileRow]:
        """Rows whose path lies inside any of ``folders`` (absolute paths)."""
        out: dict[int, FileRow] = {}
        with self._lock, self._errors():
            for folder in folders:
                low, high = _prefix_bounds(folder)
                for r in self._db.execute(
                    _SELECT + " WHERE path > ? AND path < ? AND present = ?",
                    (low, high, int(present)),
                ):
                    out[r[-1]] = _row(r)
        return list(out.values())

    def file_at(self, path: str) -> FileRow | None:
        with self._lock, self._errors():
            r = self._db.execute(
                _SELECT + " WHERE path = ? AND present = 1", (_to_db(path),)
            ).fetchone()
        return _row(r) if r else None

    def gone_at(self, path: str) -> FileRow | None:
        """The newest row no longer present that was last seen at ``path``."""
        with self._lock, self._errors():
            r = self._db.execute(
                _SELECT + " WHERE path = ? AND present = 0 ORDER BY last_seen DESC, id DESC"
                " LIMIT 1",
                (_to_db(path),),
            ).fetchone()
        return _row(r) if r else None

    def get(self, file_id: int) -> FileRow | None:
        with self._lock, self._errors():
            r = self._db.execute(_SELECT + " WHERE id = ?", (file_id,)).fetchone()
        return _row(r) if r else None

    def gone_matching(self, dev: int, ino: int, size: int, mtime_ns: int) -> FileRow | None:
        """A row no longer present whose stat key equals this one (a file moved away)."""
        with self._lock, self._errors():
            r = self._db.execute(
                _SELECT + " WHERE present = 0 AND dev = ? AND ino = ? AND size = ?"
                " AND mtime_ns = ? ORDER BY last_seen DESC LIMIT 1",
                (dev, ino, size, mtime_ns),
            ).fetchone()
        return _row(r) if r else None

    def gone_twins(self, size: int, mtime_ns: int) -> list[FileRow]:
        """Rows no longer present with this exact size and mtime (a copy that kept it)."""
        with self._lock, self._errors():
            rows = self._db.execute(
                _SELECT + " WHERE present = 0 AND size = ? AND mtime_ns = ?",
                (size, mtime_ns),
            ).fetchall()
        return [_row(r) for r in rows]

    def gone_with_sha(self, sha256: str, size: int) -> list[FileRow]:
        with self._lock, self._errors():
            rows = self._db.execute(
                _SELECT + " WHERE present = 0 AND sha256 = ? AND size = ? ORDER BY last_seen DESC",
                (sha256, size),
            ).fetchall()
        return [_row(r) for r in rows]

    def any_gone(self) -> bool:
        """Whether any row is no longer present (none on a first scan: then no new file
        needs asking whether it is one of them)."""
        with self._lock, self._errors():
            found = self._db.execute("SELECT 1 FROM files WHERE present = 0 LIMIT 1").fetchone()
        return found is not None

    def gone_sizes(self) -> set[int]:
        """Sizes of model files sdlib saw and no longer finds (for move detection)."""
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT DISTINCT size FROM files WHERE present = 0 AND role = 'model'"
                " AND sha256 IS NOT NULL"
            ).fetchall()
        return {r[0] for r in rows}

    def insert(self, row: FileRow) -> int:
        """Insert (inside a ``transaction``); returns the new id."""
        values = [_text(getattr(row, c)) for c in _COLUMNS]
        values[0] = _to_db(row.path)  # path is the first column
        marks = ", ".join("?" * len(_COLUMNS))
        with self._lock, self._errors():
            cur = self._db.execute(
                f"INSERT INTO files ({', '.join(_COLUMNS)}) VALUES ({marks})", values
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def insert_many(self, rows: list[FileRow]) -> list[int]:
        """Insert rows (inside a ``transaction``) with one statement; returns their ids, in
        order. A first scan adds thousands: one ``execute`` each cost more than the rest."""
        if not rows:
            return []
        marks = ", ".join("?" * (len(_COLUMNS) + 1))
        with self._lock, self._errors():
            # The transaction holds the write lock: nobody else takes ids meanwhile.
            (top,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()
            ids = list(range(top + 1, top + 1 + len(rows)))
            self._db.executemany(
                f"INSERT INTO files ({', '.join(_COLUMNS)}, id) VALUES ({marks})",
                (_db_values(row) + (i,) for row, i in zip(rows, ids, strict=True)),
            )
        return ids

    def events(self, items: Iterable[tuple[int, str, dict[str, Any]]]) -> None:
        """Record many ``(file_id, event, detail)`` at once (inside a ``transaction``)."""
        now = time.time()
        with self._lock, self._errors():
            self._db.executemany(
                "INSERT INTO events (file_id, at, event, detail) VALUES (?, ?, ?, ?)",
                ((i, now, e, json.dumps(d) if d else None) for i, e, d in items),
            )

    def update(self, file_id: int, **values: Any) -> None:
        """Update columns of one row (inside a ``transaction`` or on its own)."""
        if not values:
            return
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}")
        values = {k: _to_db(v) if k == "path" and isinstance(v, str) else _text(v)
                  for k, v in values.items()}  # fmt: skip
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._lock, self._errors():
            self._db.execute(f"UPDATE files SET {sets} WHERE id = ?", (*values.values(), file_id))

    def event(self, file_id: int, event: str, **detail: Any) -> None:
        with self._lock, self._errors():
            self._db.execute(
                "INSERT INTO events (file_id, at, event, detail) VALUES (?, ?, ?, ?)",
                (file_id, time.time(), event, json.dumps(detail) if detail else None),
            )

    def history(self, file_id: int) -> list[dict[str, Any]]:
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT at, event, detail FROM events WHERE file_id = ? ORDER BY id", (file_id,)
            ).fetchall()
        return [
            {"at": r["at"], "event": r["event"], **(json.loads(r["detail"]) if r["detail"] else {})}
            for r in rows
        ]

    # -- the Civitai answer cache -------------------------------------------------------------

    def remote_get(self, key: str, max_age: float | None) -> tuple[int, Any, float] | None:
        """(status, body, fetched_at) if cached and younger than ``max_age`` seconds."""
        with self._lock, self._errors():
            r = self._db.execute(
                "SELECT status, body, fetched_at FROM remote WHERE key = ?", (key,)
            ).fetchone()
        if r is None:
            return None
        if max_age is not None and time.time() - r["fetched_at"] > max_age:
            return None
        return r["status"], json.loads(r["body"]) if r["body"] else None, r["fetched_at"]

    def remote_put(self, key: str, status: int, body: Any) -> None:
        with self._lock, self._errors():
            self._db.execute(
                "INSERT OR REPLACE INTO remote (key, fetched_at, status, body) VALUES (?, ?, ?, ?)",
                (key, time.time(), status, json.dumps(body) if body is not None else None),
            )

    def stats(self) -> Mapping[str, int]:
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT role, COUNT(*) FROM files WHERE present = 1 GROUP BY role"
            ).fetchall()
        return {r[0]: r[1] for r in rows}


def _db_values(row: FileRow) -> tuple[Any, ...]:
    """``row``'s columns (``_COLUMNS`` order) as SQLite stores them."""
    values = list(_ALL_COLUMNS(row))
    texts = [v for v in values if type(v) is str]
    try:  # the common case, checked at once: no lone surrogate in any text column
        "\n".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        values = list(map(_text, values))
    values[0] = _to_db(row.path)  # path is the first column
    return tuple(values)


_ALL_COLUMNS = operator.attrgetter(*_COLUMNS)
