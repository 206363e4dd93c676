"""UnfinishedDownload downloads: one small JSON record per part file, in the user's cache dir.

A record is written when a download takes its part file's lock, updated when the server's
first answer arrives and when the download stops (why, and how many bytes the part file
keeps), and deleted when the file takes its name. So a later process, after a Ctrl-C, a
dropped link, a crash or a reboot, can list what is unfinished and finish it.

Two processes never write the same record: only the holder of the part file's OS lock
writes it (each write is a whole file put in place with ``os.replace``), and forgetting
one takes that lock first. Readers see the old or the new file, never half of one. A
record whose part file is still locked belongs to a download running in another process.

``record_key``, ``stop_reason`` and ``entry_from_state`` are pure; ``ResumeRecord`` and the
functions below it do the IO.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sdlib._filelock import try_lock, unlock
from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    DiskFull,
    HashMismatch,
    Interrupted,
    NotFound,
    SdlibError,
    SourceError,
    UsageError,
)

__all__ = [
    "ResumeRecord",
    "UnfinishedDownload",
    "entry_from_state",
    "find_unfinished",
    "forget_unfinished",
    "list_unfinished",
    "record_key",
    "stop_reason",
]

#: Characters of the record key shown as a download's ID (``sdlib downloads --resume ID``).
ID_LENGTH = 8
_HINT = re.compile(r";? *resume with: sdlib downloads --resume \w+")
_SUFFIX = ".json"


@dataclass(frozen=True)
class UnfinishedDownload:
    """One unfinished download, as its record and its part file say."""

    #: Short, stable ID (from the part file's path).
    id: str
    #: What fetches it again: the source's ``model@version`` where known, else the URL.
    ref: str
    file_name: str
    #: The path the file takes when it is complete, and its part file beside it.
    target: Path
    part: Path
    url: str
    size: int | None
    sha256: str | None
    #: Bytes the part file holds now (0 when it is gone).
    kept: int
    part_exists: bool
    #: interrupted, network, integrity, disk-full, access, failed, ended (the process died
    #: while downloading), or running (another process is downloading it now).
    stopped_by: str
    #: The one-line reason, as the download reported it.
    reason: str
    #: When the record was last written (ISO 8601, UTC).
    updated: str
    #: What the caller recorded to fetch it again (ref, file id, destination).
    origin: Mapping[str, Any] = field(default_factory=dict)
    #: The record's file stem in the state dir.
    key: str = ""

    @property
    def running(self) -> bool:
        return self.stopped_by == "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "ref": self.ref, "file_name": self.file_name,
            "target": str(self.target), "part": str(self.part), "url": self.url,
            "size": self.size, "sha256": self.sha256, "kept": self.kept,
            "part_exists": self.part_exists, "stopped_by": self.stopped_by,
            "reason": self.reason, "updated": self.updated, "origin": dict(self.origin),
        }  # fmt: skip


# --- pure -------------------------------------------------------------------------------------


def record_key(part: Path) -> str:
    """The record's file stem for a part file (its ID is the first ``ID_LENGTH``)."""
    return hashlib.sha256(str(part.resolve()).encode()).hexdigest()[:32]


def stop_reason(exc: BaseException) -> tuple[str, str]:
    """(stopped_by, one-line reason) for the exception that ended a download."""
    message = exc.message if isinstance(exc, SdlibError) else str(exc)
    message = _HINT.sub("", message)  # the listing says how to resume
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return "interrupted", message or "interrupted"
    if isinstance(exc, HashMismatch):
        return "integrity", message
    if isinstance(exc, DiskFull):
        return "disk-full", message
    if isinstance(exc, (AuthRequired, AccessDenied)):
        return "access", message
    if isinstance(exc, SourceError) or (isinstance(exc, SdlibError) and exc.exit_code == 7):
        return "network", message
    if isinstance(exc, SdlibError):
        return "failed", message
    return "failed", f"{type(exc).__name__}: {message}".rstrip(": ")


def entry_from_state(
    key: str, state: Mapping[str, Any], *, kept: int | None, locked: bool
) -> UnfinishedDownload | None:
    """The listing of one record; None for a record that is not one (an older sdlib's
    validator-only record, or a damaged file). ``kept`` is the part file's size (None: it
    is gone); ``locked``: another process holds the part file now."""
    target, part, url = state.get("target"), state.get("part"), state.get("url")
    if not (isinstance(target, str) and isinstance(part, str) and isinstance(url, str)):
        return None
    identity = state.get("identity")
    identity = identity if isinstance(identity, dict) else {}
    size = identity.get("size")
    sha = identity.get("sha256")
    origin = state.get("origin")
    origin = origin if isinstance(origin, dict) else {}
    ref = origin.get("ref")
    stopped_by = str(state.get("stopped_by") or "")
    reason = str(state.get("reason") or "")
    if locked:
        stopped_by, reason = "running", "downloading in another sdlib process"
    elif state.get("state") == "downloading":
        # It said "downloading" and nobody holds the lock: that process ended (kill,
        # crash, power cut) before it could say why.
        stopped_by, reason = "ended", "the sdlib process ended before the download finished"
    return UnfinishedDownload(
        id=key[:ID_LENGTH],
        ref=ref if isinstance(ref, str) and ref else url,
        file_name=Path(target).name,
        target=Path(target),
        part=Path(part),
        url=url,
        size=size if isinstance(size, int) else None,
        sha256=sha if isinstance(sha, str) else None,
        kept=kept or 0,
        part_exists=kept is not None,
        stopped_by=stopped_by or "failed",
        reason=reason,
        updated=str(state.get("updated") or ""),
        origin=origin,
        key=key,
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the record a download keeps --------------------------------------------------------------


class ResumeRecord:
    """The record of one part file: what a later run needs to resume it (the server's
    validator, ETag or Last-Modified, valid only for the same published size and SHA256)
    and what ``sdlib downloads`` lists. Written only by the holder of the part file's lock.
    """

    def __init__(
        self,
        state_dir: Path | None,
        part: Path,
        size: int | None,
        hashes: Mapping[str, str],
        *,
        target: Path | None = None,
        url: str = "",
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        self._part = part
        self._path: Path | None = None
        self.key = record_key(part)
        if state_dir is not None:
            self._path = state_dir / f"{self.key}{_SUFFIX}"
        sha = next((v for k, v in hashes.items() if k.upper() == "SHA256"), None)
        self._identity = {"size": size, "sha256": sha and sha.upper()}
        self._known_size = size is not None
        # Absolute (not resolved: the folder as the user named it), so that a process
        # started elsewhere finds them.
        self._state: dict[str, Any] = {
            "identity": self._identity, "validator": None, "part": os.path.abspath(part),
            "target": os.path.abspath(target) if target is not None else None, "url": url,
            "origin": dict(origin or {}), "state": "downloading", "kept": 0,
            "stopped_by": None, "reason": None, "updated": _now(),
        }  # fmt: skip

    @property
    def id(self) -> str:
        return self.key[:ID_LENGTH]

    def load(self) -> tuple[bool, str | None]:
        """(whether the part file may be resumed, the validator saved with it). Not when
        there is no record, it was for another file, or no size was published."""
        state = _read(self._path) if self._path is not None else {}
        if not self._known_size or state.get("identity") != self._identity:
            return False, None
        value = state.get("validator")
        return True, value if isinstance(value, str) else None

    def begin(self, validator: str | None, kept: int) -> None:
        """The download holds the part file now (with ``kept`` bytes in it). A new one is
        recorded when the server answers (``save``): until then there is nothing to list."""
        if kept <= 0 and not (self._path is not None and self._path.exists()):
            self._state.update(validator=validator)
            return
        self._write(validator=validator, state="downloading", kept=kept, stopped_by=None,
                    reason=None)  # fmt: skip

    def save(self, validator: str | None) -> None:
        """The server answered: keep its validator for If-Range."""
        self._write(validator=validator)

    def stopped(self, kept: int, exc: BaseException) -> None:
        """The download ended without its file: say why. Nothing kept: no record (bytes
        that failed verification were discarded, and the error said so with the way to keep
        them; a record listing nothing to resume was only noise)."""
        stopped_by, reason = stop_reason(exc)
        if kept <= 0:
            self.drop()
            return
        self._write(state="stopped", kept=kept, stopped_by=stopped_by, reason=reason)

    def drop(self) -> None:
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink(missing_ok=True)

    def _write(self, **changes: Any) -> None:
        if self._path is None:
            return
        self._state.update(changes, updated=_now())
        with contextlib.suppress(OSError):
            _write_atomic(self._path, self._state)


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _read(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- listing and forgetting -------------------------------------------------------------------


def _part_locked(part: Path) -> bool:
    """Whether another process holds the part file's lock (it is downloading it now)."""
    try:
        fh = open(part, "r+b")  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        if not try_lock(fh):
            return True
        unlock(fh)
        return False
    finally:
        fh.close()


def _part_size(part: Path) -> int | None:
    try:
        return part.stat().st_size
    except OSError:
        return None


def list_unfinished(state_dir: Path) -> list[UnfinishedDownload]:
    """Every unfinished download recorded in ``state_dir``, oldest first."""
    entries: list[UnfinishedDownload] = []
    try:
        paths = sorted(state_dir.glob(f"*{_SUFFIX}"))
    except OSError:
        return []
    for path in paths:
        state = _read(path)
        part = state.get("part")
        if not isinstance(part, str):
            continue
        kept = _part_size(Path(part))
        locked = state.get("state") == "downloading" and kept is not None
        locked = locked and _part_locked(Path(part))
        entry = entry_from_state(path.stem, state, kept=kept, locked=locked)
        if entry is not None:
            entries.append(entry)
    entries.sort(key=lambda e: (e.updated, e.id))
    return entries


def find_unfinished(state_dir: Path, wanted: str) -> UnfinishedDownload:
    """The entry whose ID is ``wanted`` (or starts with it, if only one does)."""
    wanted = wanted.strip().lower()
    entries = list_unfinished(state_dir)
    exact = [e for e in entries if e.id == wanted]
    found = exact or ([e for e in entries if e.id.startswith(wanted)] if wanted else [])
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no unfinished download with ID {wanted!r} (sdlib downloads lists them)")
    raise UsageError(f"ID {wanted!r} names {len(found)} downloads; give more of it")


def forget_unfinished(state_dir: Path, entry: UnfinishedDownload) -> bool:
    """Drop ``entry``'s record and delete its part file: only that part file, only when it
    sits in the target's folder, and never while another process downloads it. True if a
    part file was deleted."""
    part = entry.part
    if part.parent != entry.target.parent or part.name != entry.target.name + ".part":
        raise SdlibError(
            f"the recorded part file {part} is not beside its target {entry.target}; "
            "not deleting it", path=str(part),
        )  # fmt: skip
    deleted = False
    if part.exists() or part.is_symlink():
        if part.is_symlink() or not part.is_file():
            raise SdlibError(f"{part} is not a regular file; not deleting it", path=str(part))
        if _part_locked(part):
            raise SdlibError(
                f"another sdlib process is downloading {entry.file_name}; stop it first",
                path=str(part),
            )
        # Unlinked after the probe's handle is closed: Windows deletes no open file.
        part.unlink(missing_ok=True)
        deleted = True
    path = state_dir / f"{entry.key or record_key(part)}{_SUFFIX}"
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    return deleted
