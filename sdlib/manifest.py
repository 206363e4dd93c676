"""``models.toml`` manifests and ``models.lock`` lock files: a requirements file for models.

Parsing and validation are pure (text in, dataclasses out) and every error names the line.
The lock records exactly what was installed, so ``--frozen`` can rebuild it and a re-run
with nothing changed needs no network at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from sdlib.errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCK_VERSION = 1
_ENTRY_KEYS = {
    "ref", "version", "type", "format", "fp", "size", "file_id", "name", "folder", "convert",
}  # fmt: skip
_FILTER_KEYS = ("type", "format", "fp", "size")
_TARGET_KEYS = {"ui", "root", "folders"}
_FORMATS = {"safetensor": "SafeTensor", "safetensors": "SafeTensor", "pickletensor": "PickleTensor",
            "pickle": "PickleTensor", "ckpt": "PickleTensor", "gguf": "GGUF"}  # fmt: skip
_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Target:
    ui: str | None = None
    root: str | None = None
    #: kind -> folder, for plain folders without a webUI layout.
    folders: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One ``[[model]]`` of a manifest, with defaults applied."""

    ref: str
    line: int
    version: int | None = None
    type: str | None = None
    format: str | None = None
    fp: str | None = None
    size: str | None = None
    file_id: int | None = None
    name: str | None = None
    folder: str | None = None
    convert: str | None = None
    #: Filters that came from [defaults]: preferences, dropped when no file matches them.
    defaulted: tuple[str, ...] = ()

    @property
    def sha256(self) -> str | None:
        m = _SHA256.match(self.ref)
        return m.group(1).upper() if m else None

    def key(self) -> str:
        """A fingerprint of what the entry asks for: the lock is reused while it is unchanged."""
        data = {k: v for k, v in asdict(self).items() if k not in ("line", "defaulted")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    target: Target
    entries: tuple[Entry, ...]
    path: str | None = None


@dataclass(frozen=True)
class LockEntry:
    ref: str
    key: str
    model_id: int | None
    #: Civitai's version and file ids (None for a file from another source).
    version_id: int | None
    file_id: int | None
    file_name: str
    size: int
    sha256: str
    #: The download form used: the URL pinned by file id.
    download: str
    #: Final path, relative to the target root when it lies inside it.
    path: str
    #: BLAKE3 of the downloaded file (None when it was converted and removed).
    blake3: str | None = None
    #: SHA256 of the file at ``path`` when it was converted from the downloaded one.
    converted_sha256: str | None = None
    #: The reference naming exactly this file where ids do not (a Hub file at its commit:
    #: ``hf:ORG/REPO@<commit>/PATH``).
    pinned: str | None = None


# --- parsing ----------------------------------------------------------------------------------


def parse_manifest(text: str, path: str | None = None) -> Manifest:
    """Validate a manifest; errors carry the line they are about."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        raise ManifestError(f"not valid TOML: {exc}", path=path, line=line) from None
    lines = _LineFinder(text)
    unknown = set(data) - {"target", "defaults", "model"}
    if unknown:
        key = sorted(unknown)[0]
        raise ManifestError(
            f"unknown top-level key {key!r} (expected [target], [defaults], [[model]])",
            path=path, line=lines.top(key),
        )  # fmt: skip
    target = _target(data.get("target", {}), lines, path)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ManifestError("[defaults] must be a table", path=path, line=lines.top("defaults"))
    bad = set(defaults) - set(_FILTER_KEYS) - {"convert"}
    if bad:
        key = sorted(bad)[0]
        raise ManifestError(
            f"[defaults] cannot set {key!r} (it takes: {', '.join(_FILTER_KEYS)}, convert)",
            path=path, line=lines.in_table("defaults", key),
        )  # fmt: skip
    models = data.get("model", [])
    if not isinstance(models, list) or not models:
        raise ManifestError("the manifest lists no [[model]] entries", path=path, line=1)
    entries = tuple(_entry(i, raw, defaults, lines, path) for i, raw in enumerate(models))
    return Manifest(target, entries, path)


def _target(raw: Any, lines: _LineFinder, path: str | None) -> Target:
    if not isinstance(raw, dict):
        raise ManifestError("[target] must be a table", path=path, line=lines.top("target"))
    bad = set(raw) - _TARGET_KEYS
    if bad:
        key = sorted(bad)[0]
        raise ManifestError(f"[target] has no setting {key!r} (it takes: ui, root, folders)",
                            path=path, line=lines.in_table("target", key))  # fmt: skip
    folders = raw.get("folders", {})
    if not isinstance(folders, dict) or not all(isinstance(v, str) for v in folders.values()):
        raise ManifestError("[target.folders] maps kinds to folder strings", path=path,
                            line=lines.top("target.folders"))  # fmt: skip
    for kind, value in folders.items():
        problem = folder_problem(value)
        if problem:
            raise ManifestError(f"[target.folders] {kind} = {value!r}: {problem}", path=path,
                                line=lines.in_table("target.folders", kind))  # fmt: skip
    return Target(ui=raw.get("ui"), root=raw.get("root"), folders=dict(folders))


def _entry(
    index: int, raw: Any, defaults: Mapping[str, Any], lines: _LineFinder, path: str | None
) -> Entry:
    line = lines.model(index)
    if not isinstance(raw, dict):
        raise ManifestError("a [[model]] entry must be a table", path=path, line=line)
    bad = set(raw) - _ENTRY_KEYS
    if bad:
        key = sorted(bad)[0]
        raise ManifestError(
            f"[[model]] has no key {key!r} (it takes: {', '.join(sorted(_ENTRY_KEYS))})",
            path=path, line=lines.model_key(index, key),
        )  # fmt: skip
    ref = raw.get("ref")
    if not isinstance(ref, str) or not ref.strip():
        raise ManifestError('[[model]] needs ref = "..."', path=path, line=line)
    values: dict[str, Any] = {**{k: v for k, v in defaults.items()}, **raw}

    def fail(message: str, key: str | None = None) -> ManifestError:
        where = lines.model_key(index, key) if key else line
        return ManifestError(message, path=path, line=where)

    for key in ("version", "file_id"):
        if key in values and (not isinstance(values[key], int) or isinstance(values[key], bool)):
            raise fail(f"{key} must be a number", key)
    for key in ("type", "format", "fp", "size", "name", "folder", "convert"):
        if key in values and not isinstance(values[key], str):
            raise fail(f"{key} must be a string", key)
    if "format" in values:
        fmt = _FORMATS.get(values["format"].lower().replace(" ", ""), values["format"])
        values["format"] = fmt
    if values.get("size") not in (None, "pruned", "full"):
        raise fail('size must be "pruned" or "full"', "size")
    if values.get("convert") not in (None, "safetensors"):
        raise fail('convert can only be "safetensors"', "convert")
    if values.get("convert") and values.get("format") == "SafeTensor" and "convert" in raw:
        raise fail("convert = \"safetensors\" with format = \"SafeTensor\": nothing to convert",
                   "convert")  # fmt: skip
    if "file_id" in values and any(k in raw for k in _FILTER_KEYS):
        raise fail("file_id picks one exact file; drop type/format/fp/size", "file_id")
    if values.get("name") and ("/" in values["name"] or "\\" in values["name"]):
        raise fail('name is a file name; put folders in folder = "..."', "name")
    if "folder" in values and (problem := folder_problem(values["folder"])):
        raise fail(f"folder = {values['folder']!r}: {problem}", "folder")
    defaulted = tuple(sorted(k for k in defaults if k not in raw and k in _FILTER_KEYS))
    fields_ = {k: values[k] for k in values if k != "ref"}
    entry = Entry(ref=ref.strip(), line=line, defaulted=defaulted, **fields_)
    _check_ref(entry, fail)
    return entry


def folder_problem(value: str) -> str | None:
    """Why ``value`` cannot be a manifest folder, or None: a folder is a relative path that
    stays inside the target root (no absolute path, drive letter, ``~`` or ``..``), judged
    by both POSIX and Windows rules so a manifest means the same on every machine."""
    if not value.strip():
        return "an empty folder"
    win, posix = PureWindowsPath(value), PurePosixPath(value)
    if posix.is_absolute() or win.is_absolute() or win.drive or win.root or value[:1] == "~":
        return "must be relative to the target root (no absolute path, drive letter or ~)"
    if ".." in win.parts or ".." in posix.parts:
        return "must stay inside the target root (no '..')"
    return None


def resolve_folder(root: str | os.PathLike[str], value: str) -> Path:
    """``root / value``, refused when it is no relative folder or resolves outside ``root``
    (a symlink or junction on the way leading elsewhere)."""
    problem = folder_problem(value)
    if problem:
        raise ManifestError(f"folder {value!r}: {problem}")
    base = Path(root).expanduser()
    path = base / value
    real_root = os.path.normcase(os.path.realpath(base))
    real = os.path.normcase(os.path.realpath(path))
    try:
        inside = os.path.commonpath([real_root, real]) == real_root
    except ValueError:  # another drive
        inside = False
    if not inside:
        raise ManifestError(f"folder {value!r} resolves outside the target root {base} (a link)")
    return path


def _check_ref(entry: Entry, fail: Any) -> None:
    if entry.ref.lower().startswith("sha256:"):
        if entry.sha256 is None:
            raise fail("sha256: refs take the 64 hex digits of the file's SHA256", "ref")
        return
    from sdlib.errors import UsageError
    from sdlib.sources.civitai import parse_ref
    from sdlib.sources.hf import is_hub_ref, parse_hub_ref

    if is_hub_ref(entry.ref):
        try:
            parse_hub_ref(entry.ref)
        except UsageError as exc:
            raise fail(f"bad ref: {exc.message}", "ref") from None
        given = [k for k in ("version", "type", "format", "fp", "size", "file_id")
                 if getattr(entry, k) is not None and k not in entry.defaulted]  # fmt: skip
        if given:
            raise fail(f"{given[0]} = applies to Civitai refs; a Hub ref names one file "
                       "(pin a revision with hf:ORG/REPO@REV/PATH)", given[0])  # fmt: skip
        return
    try:
        ref = parse_ref(entry.ref)
    except UsageError as exc:
        raise fail(f"bad ref: {exc.message}", "ref") from None
    if entry.version is not None and ref.version_id not in (None, entry.version):
        raise fail(f"ref names version {ref.version_id} but version = {entry.version}", "version")


def _toml_error_line(exc: Exception) -> int | None:
    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) if m else None


class _LineFinder:
    """Line numbers of tables and keys, since tomllib does not report them."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.models = [i + 1 for i, ln in enumerate(self.lines)
                       if re.match(r"^\s*\[\[\s*model\s*\]\]", ln)]  # fmt: skip

    def _key_after(self, start: int, key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start, len(self.lines)):
            if i > start and self.lines[i].lstrip().startswith("["):
                break
            if pattern.match(self.lines[i]):
                return i + 1
        return start + 1

    def top(self, key: str) -> int:
        for i, ln in enumerate(self.lines):
            if re.match(rf"^\s*(\[+\s*{re.escape(key)}\s*\]+|{re.escape(key)}\s*=)", ln):
                return i + 1
        return 1

    def in_table(self, table: str, key: str) -> int:
        return self._key_after(self.top(table) - 1, key)

    def model(self, index: int) -> int:
        return self.models[index] if index < len(self.models) else 1

    def model_key(self, index: int, key: str | None) -> int:
        start = self.model(index)
        return self._key_after(start - 1, key) if key else start


# --- lock files -------------------------------------------------------------------------------


def parse_lock(text: str, path: str | None = None) -> dict[str, LockEntry]:
    """Lock entries by manifest ref."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"lock file is not valid TOML: {exc}", path=path) from None
    if data.get("version") != LOCK_VERSION:
        raise ManifestError(f"unsupported lock version {data.get('version')!r}", path=path)
    out: dict[str, LockEntry] = {}
    for raw in data.get("model", []):
        try:
            values = {k: raw[k] for k in LockEntry.__dataclass_fields__ if k in raw}
            entry = LockEntry(**{"model_id": None, "version_id": None, "file_id": None,
                                 **values})  # fmt: skip
        except TypeError as exc:
            raise ManifestError(f"damaged lock entry: {exc}", path=path) from None
        if not entry.ref or not entry.sha256:
            raise ManifestError("damaged lock entry: no ref or sha256", path=path)
        if entry.version_id is None and not entry.pinned:
            raise ManifestError("damaged lock entry: no version id or pinned ref", path=path)
        out[entry.ref] = entry
    return out


def dump_lock(entries: Sequence[LockEntry]) -> str:
    lines = [
        "# Written by `sdlib install`. It records exactly what was installed;",
        "# `sdlib install --frozen` reinstalls it. Do not edit by hand.",
        f"version = {LOCK_VERSION}",
    ]
    for entry in entries:
        lines += ["", "[[model]]"]
        for key, value in asdict(entry).items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def dump_manifest(target: Target, entries: Sequence[Entry], header: str = "") -> str:
    lines = [f"# {ln}" if ln else "#" for ln in header.splitlines()]
    tgt = {k: v for k, v in (("ui", target.ui), ("root", target.root)) if v}
    if tgt:
        lines += ["", "[target]"] + [f"{k} = {_toml_value(v)}" for k, v in tgt.items()]
    for entry in entries:
        lines += ["", "[[model]]"]
        for key, value in asdict(entry).items():
            if key not in ("line", "defaulted") and value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(str(value), ensure_ascii=False)
