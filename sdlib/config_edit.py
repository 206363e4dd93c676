"""Write settings back to the config file, keeping the rest (the TUI's Settings screen,
``sdlib config set`` and ``sdlib config set-token`` use it), and read one back by its dotted
key (``sdlib config get``).

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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Union

from sdlib.config import Settings, load_settings, write_private
from sdlib.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "Setting", "get_setting", "in_file", "parse_setting", "save_setting", "save_values",
    "set_values",
]  # fmt: skip

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


# --- one setting by its dotted key (``sdlib config set / get``) --------------------------------


@dataclass(frozen=True)
class Setting:
    """A setting named as in config.example.toml: ``civitai.base_url``, ``folders.lora``."""

    #: The TOML table it lives in (``library.folders`` for a folder override) and its key.
    table: str
    key: str
    #: The field's type as the dataclass annotates it (``int``, ``str | None``...).
    annotation: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key}"


#: Keys that are never set from a command line (it ends up in shell history).
_SECRET = {
    "civitai.token": "use `sdlib config set-token`, which reads it without echo",
    "huggingface.token": "set HF_TOKEN, run `hf auth login` (sdlib reads the token it stores), "
    "or write it into the config file with an editor",
}


def _secret_setting(name: str) -> Setting:
    """A token setting, for reading (``parse_setting`` refuses them: they are not set from a
    command line)."""
    table, _, key = name.partition(".")
    return Setting(table, key, "")


def parse_setting(name: str) -> Setting:
    """The setting a dotted key names; ConfigError (exit 2) listing the known keys if none."""
    from sdlib.config import _SECTIONS  # the one list of tables and their dataclasses
    from sdlib.taxonomy import Kind

    parts = name.strip().split(".")
    if parts[:2] == ["library", "folders"]:
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "folders":
        kinds = [k.value for k in Kind if k is not Kind.UNKNOWN]
        if parts[1] not in kinds:
            raise ConfigError(f"unknown kind {parts[1]!r} in {name} (kinds: {', '.join(kinds)})")
        return Setting("library.folders", parts[1], "str")
    if len(parts) == 2 and parts[0] in _SECTIONS:
        known = {f.name: str(f.type) for f in fields(_SECTIONS[parts[0]])}
        if parts[1] in known and parts[1] != "folders":
            if name in _SECRET:
                raise ConfigError(f"{name}: {_SECRET[name]}")
            return Setting(parts[0], parts[1], known[parts[1]])
    keys = [f"{t}.{f.name}" for t, cls in _SECTIONS.items() for f in fields(cls)]
    keys = [k for k in keys if k != "library.folders"] + ["folders.<kind>"]
    raise ConfigError(f"unknown setting {name!r} (known: {', '.join(keys)})")


def _from_text(setting: Setting, text: str) -> Value:
    """The command line's text as the setting's type; None (remove it) for "" where the
    setting may be unset. The type checks themselves are ``load_settings``'s."""
    kind = setting.annotation
    if text == "" and "None" in kind:
        return None
    if kind == "bool":
        low = text.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        raise ConfigError(f"{setting.name} must be true or false, not {text!r}")
    if kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{setting.name} must be a number, not {text!r}") from None
        if kind == "int" and number.is_integer():
            return int(number)
        return number  # a float where a whole number is due is load_settings' error
    return text


def save_setting(path: Path, name: str, text: str) -> tuple[Setting, Settings]:
    """Set the setting ``name`` to ``text`` (typed as the setting is) in the config file at
    ``path``, keeping its comments; the file is untouched if the result would not load."""
    setting = parse_setting(name)
    value = _from_text(setting, text)
    if setting.table == "library.folders" and _inline_folders(path):
        # ``folders = { ... }`` in [library]: replace that table whole (a [library.folders]
        # section beside it would define the key twice).
        current = dict(load_settings(path, env={}).library.folders)
        current[setting.key] = str(value)
        return setting, save_values(path, {"library": {"folders": current}})
    return setting, save_values(path, {setting.table: {setting.key: value}})


def _inline_folders(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except OSError:
        return False
    table = re.compile(r"^\s*\[\s*library\s*\.\s*folders\s*\]")
    if any(table.match(line) for line in text.splitlines()):
        return False
    try:
        return "folders" in (tomllib.loads(text).get("library") or {})
    except tomllib.TOMLDecodeError:
        return False


def get_setting(settings: Settings, name: str) -> tuple[Setting, object]:
    """The effective value of the setting ``name`` in ``settings`` (None when unset)."""
    setting = parse_setting(name) if name not in _SECRET else _secret_setting(name)
    if setting.table == "library.folders":
        return setting, settings.library.folders.get(setting.key)
    return setting, getattr(getattr(settings, setting.table), setting.key)


def in_file(path: Path | None, name: str) -> bool:
    """Whether the config file at ``path`` sets the setting ``name`` itself."""
    setting = parse_setting(name) if name not in _SECRET else _secret_setting(name)
    try:
        data: object = tomllib.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    for part in [*setting.table.split("."), setting.key]:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True
