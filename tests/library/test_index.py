"""The library index: migrations by user_version, WAL, transactions, queries."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sdlib.errors import LibraryError
from sdlib.library import index as index_module
from sdlib.library.index import MIGRATIONS, FileRow, Index


def row(path: str, **kw: object) -> FileRow:
    return FileRow(path=path, role="model", first_seen=1.0, last_seen=1.0, **kw)  # type: ignore[arg-type]


def test_new_index_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    with Index(tmp_path / "lib.sqlite") as ix:
        assert ix.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "lib.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"files", "events", "remote"} <= tables


def test_a_later_migration_runs_once_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lib.sqlite"
    with Index(path) as ix, ix.transaction():
        ix.insert(row("/m/a.safetensors", sha256="AA"))
    extra = "ALTER TABLE files ADD COLUMN note TEXT;\nCREATE INDEX files_note ON files(note);"
    monkeypatch.setattr(index_module, "MIGRATIONS", (*MIGRATIONS, extra))
    with Index(path) as ix:
        assert ix.schema_version == len(MIGRATIONS) + 1
        assert ix.files_under(["/m"])[0].sha256 == "AA"
    with Index(path) as ix:  # already at the new version: nothing runs twice
        assert ix.schema_version == len(MIGRATIONS) + 1


def test_an_index_from_a_newer_sdlib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite"
    Index(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    db.commit()
    db.close()
    with pytest.raises(LibraryError, match="newer sdlib"):
        Index(path)


def test_a_damaged_index_is_a_library_error(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError, match="damaged"):
        Index(path)


def test_transactions_roll_back_on_error(tmp_path: Path) -> None:
    with Index(tmp_path / "lib.sqlite") as ix:
        with pytest.raises(RuntimeError), ix.transaction():
            ix.insert(row("/m/a.safetensors"))
            raise RuntimeError("boom")
        assert ix.files_under(["/m"]) == []


def test_prefix_queries_and_present_paths(tmp_path: Path) -> None:
    with Index(tmp_path / "lib.sqlite") as ix:
        with ix.transaction():
            a = ix.insert(row("/m/a/x.safetensors"))
            ix.insert(row("/m/ab/y.safetensors"))
        assert [r.path for r in ix.files_under(["/m/a"])] == ["/m/a/x.safetensors"]
        ix.update(a, present=0)
        assert ix.files_under(["/m/a"]) == []
        assert ix.file_at("/m/a/x.safetensors") is None
        with ix.transaction():  # a new file at the path of a gone one: a new row
            b = ix.insert(row("/m/a/x.safetensors"))
        assert b != a and ix.get(a).present == 0  # type: ignore[union-attr]
        with pytest.raises(LibraryError), ix.transaction():
            ix.insert(row("/m/a/x.safetensors"))  # two present rows may not share a path


def test_remote_cache_ages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Index(tmp_path / "lib.sqlite") as ix:
        ix.remote_put("by-hash:AB", 200, {"id": 1})
        ix.remote_put("by-hash:CD", 404, None)
        assert ix.remote_get("by-hash:AB", 60)[:2] == (200, {"id": 1})  # type: ignore[index]
        assert ix.remote_get("by-hash:CD", None)[:2] == (404, None)  # type: ignore[index]
        later = time.time() + 120
        monkeypatch.setattr(index_module.time, "time", lambda: later)
        assert ix.remote_get("by-hash:AB", 60) is None
        assert ix.remote_get("by-hash:AB", None) is not None
