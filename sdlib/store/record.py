"""The record of every link and config edit ``sdlib link`` made, one entry per webUI root.

A JSON file in sdlib's data dir (``store-links.json``). An entry is written *before* its
actions are carried out, so a link made by a run that was killed half-way is still known to
``sdlib unlink`` (which removes only what is there and still is what sdlib made). Written
atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdlib.errors import LibraryError
from sdlib.store.plan import Action

__all__ = ["FILE_NAME", "LinkRecord", "load_records", "locked", "same_path", "save_records"]

FILE_NAME = "store-links.json"


def same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b))


@dataclass(frozen=True)
class LinkRecord:
    root: str
    ui: str
    store: str
    method: str
    created: str
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()
    #: The journal of the webUI's own files ``--move-existing`` moved into the store (None:
    #: nothing was moved); unlinking moves them back.
    moves: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "ui": self.ui, "store": self.store, "method": self.method,
            "created": self.created, "actions": [a.to_dict() for a in self.actions],
            "notes": list(self.notes), **({"moves": self.moves} if self.moves else {}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkRecord:
        return cls(
            root=str(data["root"]), ui=str(data["ui"]), store=str(data["store"]),
            method=str(data["method"]), created=str(data.get("created", "")),
            actions=tuple(Action.from_dict(a) for a in data.get("actions", ())),
            notes=tuple(str(n) for n in data.get("notes", ())),
            moves=str(data["moves"]) if data.get("moves") else None,
        )  # fmt: skip


def load_records(path: Path) -> list[LinkRecord]:
    """Every recorded link (none if the file does not exist)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [LinkRecord.from_dict(item) for item in raw.get("links", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LibraryError(f"cannot read the store link record: {exc}", path=str(path)) from None


def save_records(path: Path, records: Sequence[LinkRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"version": 1, "links": [r.to_dict() for r in records]}, indent=2, ensure_ascii=False
    )
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LibraryError(f"cannot write the store link record: {exc}", path=str(path)) from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the record's lock (a ``.lock`` file beside it) for one link or unlink: a second
    run at the same time is refused instead of losing the first one's entry."""
    from sdlib._filelock import try_lock, unlock

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "ab") as fh:
        if not try_lock(fh):
            raise LibraryError("another `sdlib link` or `sdlib unlink` is running; try again")
        try:
            yield
        finally:
            unlock(fh)
