"""The library index's schema: numbered migrations, applied in order by
:class:`sdlib.library.index.Index` under ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "statements"]

#: Migration n (1-based) takes the schema from user_version n-1 to n. Never edit a shipped
#: entry: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        role TEXT NOT NULL,               -- model | sidecar | link
        present INTEGER NOT NULL DEFAULT 1,
        dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,
        container TEXT, kind TEXT, base TEXT, variant TEXT, precision TEXT,
        safety TEXT,                      -- safe | suspicious | unsafe (pickles)
        problem TEXT,                     -- why the content could not be read
        true_ext TEXT,                    -- previews: the extension their bytes have
        sha256 TEXT,
        civitai_model_id INTEGER, civitai_version_id INTEGER, civitai_file_id INTEGER,
        civitai_model_name TEXT, civitai_version_name TEXT, civitai_base_model TEXT,
        identify_state TEXT,              -- identified | unidentified (NULL: never asked)
        identified_at REAL, matched_by TEXT,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL
    );
    CREATE UNIQUE INDEX files_present_path ON files(path) WHERE present = 1;
    CREATE INDEX files_path ON files(path);
    CREATE INDEX files_inode ON files(dev, ino);
    CREATE INDEX files_size ON files(size, mtime_ns);
    CREATE INDEX files_sha256 ON files(sha256);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        event TEXT NOT NULL,              -- added | changed | moved | removed | identified
        detail TEXT                       -- JSON
    );
    CREATE INDEX events_file ON events(file_id);
    CREATE TABLE remote (
        key TEXT PRIMARY KEY,             -- by-hash:<SHA256> | model:<id>
        fetched_at REAL NOT NULL,
        status INTEGER NOT NULL,          -- 200, or 404 for "Civitai does not know it"
        body TEXT
    );
    """,
    # 2: which classifier version said what a file is (NULL: the first one), and the
    # ggml quantization of GGUF files.
    """
    ALTER TABLE files ADD COLUMN classified_by INTEGER;
    ALTER TABLE files ADD COLUMN quantization TEXT;
    """,
    # 3: what checking a download against its published size and hashes found (JSON:
    # status, decided_by, disagreements), for files sdlib downloaded.
    """
    ALTER TABLE files ADD COLUMN verification TEXT;
    """,
    # 4: which source identified the file (NULL: civitai, as before sources were named).
    """
    ALTER TABLE files ADD COLUMN identified_source TEXT;
    """,
)


def statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.executescript would commit on its own)."""
    out, current = [], []
    for line in script.splitlines():
        current.append(line.split("--", 1)[0])
        joined = "\n".join(current)
        if joined.strip().endswith(";") and sqlite3.complete_statement(joined):
            out.append(joined.strip())
            current = []
    if "\n".join(current).strip():
        out.append("\n".join(current).strip())
    return out
