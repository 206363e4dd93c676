"""SD.Next's ``config.json`` folder keys, edited as JSON.

SD.Next keeps its settings in one JSON object (reference layouts.md 3). Setting a folder key
points that kind at the store; the value it had (or that it had none) is remembered so that
unlinking puts it back. Keys sdlib did not set, and their order, are kept. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdlib.errors import ConfigError

__all__ = ["KeyChange", "restore_keys", "set_keys"]


@dataclass(frozen=True)
class KeyChange:
    key: str
    new: str
    #: The value before sdlib set it; ``had`` False when the key was absent.
    old: Any = None
    had: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "new": self.new, "old": self.old, "had": self.had}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyChange:
        return cls(str(data["key"]), str(data["new"]), data.get("old"), bool(data.get("had")))


def _load(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("config.json does not hold a JSON object")
    return data


def _dump(data: Mapping[str, Any]) -> str:
    # Reformatted (indent 4); unlink gives back the original bytes while the file is as
    # sdlib left it, and SD.Next reads either.
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def set_keys(text: str, values: Mapping[str, str]) -> tuple[str, tuple[KeyChange, ...]]:
    """(new text, what changed) with each key set to its value."""
    data = _load(text)
    changes = tuple(
        KeyChange(key, value, data.get(key), key in data) for key, value in values.items()
    )
    data.update(values)
    return _dump(data), changes


def restore_keys(text: str, changes: tuple[KeyChange, ...]) -> tuple[str, list[str]]:
    """(new text, keys left alone): each key sdlib set goes back to its old value (or away).

    A key whose value is no longer the one sdlib wrote was changed since by the user or the
    UI, and is left as it is.
    """
    data = _load(text)
    kept: list[str] = []
    for change in changes:
        if data.get(change.key) != change.new:
            kept.append(change.key)
            continue
        if change.had:
            data[change.key] = change.old
        else:
            del data[change.key]
    return _dump(data), kept
