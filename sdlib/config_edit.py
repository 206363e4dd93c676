"""Write settings back to the config file, keeping the rest (the TUI's Settings screen and
``sdlib config set-token`` use it).

This edits lines, not a parsed tree:
comments, ordering and unrelated settings survive. Only ``key = value`` lines of the given
table are added, replaced or removed; the result is re-parsed with ``load_settings`` before
it is written (0600, atomically, through ``config.write_private``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Union

from sdlib.config import Settings, load_settings, write_private
from sdlib.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["save_values", "set_values"]

#: None removes the key.
Value = Union[str, bool, int, float, Mapping[str, str], None]  # noqa: UP007 - a runtime alias on 3.10

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid TOML basic string
    assert value is not None
    items = ", ".join(f"{_key(k)} = {json.dumps(str(v))}" for k, v in value.items())
    return "{ " + items + " }" if items else "{}"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _header(name: str) -> re.Pattern[str]:
    parts = r"\s*\.\s*".join(re.escape(p) for p in name.split("."))
    return re.compile(rf"^\s*\[\s*{parts}\s*\]\s*(#.*)?$")


def set_values(text: str, table: str, values: Mapping[str, Value]) -> str:
    """``text`` with ``values`` set in ``[table]`` (a ``None`` value removes the key).

    A mapping value replaces a ``[table.key]`` sub-table if the file has one, else it is
    written inline (``folders = { lora = "models/MyLoras" }``).
    """
    lines = text.splitlines()
    any_header = re.compile(r"^\s*\[")
    for key, value in values.items():
        sub = _header(f"{table}.{key}")
        start = next((i for i, line in enumerate(lines) if sub.match(line)), None)
        if start is not None:
            end = next(
                (i for i in range(start + 1, len(lines)) if any_header.match(lines[i])),
                len(lines),
            )
            table_value = value if isinstance(value, Mapping) else {}
            body = [f"{_key(k)} = {json.dumps(str(v))}" for k, v in table_value.items()]
            lines[start:end] = [lines[start], *body, ""] if value else []
            continue
        start = next((i for i, line in enumerate(lines) if _header(table).match(line)), None)
        new = f"{key} = {_toml(value)}" if value is not None else None
        if start is None:
            if new is not None:
                if lines and lines[-1].strip():
                    lines.append("")
                lines += [f"[{table}]", new]
            continue
        end = next(
            (i for i in range(start + 1, len(lines)) if any_header.match(lines[i])), len(lines)
        )
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        found = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        if found is not None:
            if new is None:
                del lines[found]
            else:
                lines[found] = new
        elif new is not None:
            # After the table's last setting, before trailing blank lines or comments.
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            lines.insert(at, new)
    return "\n".join(lines).rstrip("\n") + "\n"


def save_values(path: Path, updates: Mapping[str, Mapping[str, Value]]) -> Settings:
    """Apply ``{table: {key: value}}`` to the config file at ``path``; return the new settings.

    Raises ``ConfigError`` (and leaves the file alone) if the result would not load.
    """
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(path)) from None
    for table, values in updates.items():
        text = set_values(text, table, values)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot update config: {exc}", path=str(path)) from None
    _check(path, text)
    try:
        write_private(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write config: {exc}", path=str(path)) from None
    return load_settings(path)


def _check(path: Path, text: str) -> None:
    """Raise ConfigError if ``text`` would not load as settings (before anything is written)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".check-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_settings(Path(name), env={})
    except ConfigError as exc:  # name the user's file, not the temporary copy
        raise ConfigError(exc.message, path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot write config: {exc}", path=str(path)) from None
    finally:
        Path(name).unlink(missing_ok=True)
