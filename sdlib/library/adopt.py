"""Identities other tools already wrote beside a model file, taken instead of asking again.

Civitai Helper (both forks) writes ``<stem>.civitai.info``: the model-version JSON of
``/api/v1/model-versions/by-hash/<sha256>`` (or ``/model-versions/{id}`` for its own
downloads), ``{}`` when Civitai did not know the file (reference layouts.md 7.1); sdlib's
``download`` and ``identify`` write the same. Stability Matrix writes ``<stem>.cm-info.json``
(layouts.md 6.3). Both name the model and the version; the version JSON lists every file of
the version with its published hashes, Stability Matrix the one file it downloaded.

A sidecar is taken only when it is consistent with the bytes beside it. When the file's
SHA256 is known (hashed before: by a download, ``identify`` or ``scan --hash``), the sidecar
must publish that SHA256 for one of its files, else it describes other bytes (a renamed or
replaced file) and is ignored. When the SHA256 is not known yet, the identity is recorded as
taken from the sidecar and not yet confirmed; ``identify`` confirms it (or corrects it) by
hash later. Sidecars that publish no SHA256 at all cannot be checked: they are taken
unconfirmed too.

Parsers are pure (parsed JSON in, a value out); :func:`adopt` reads the sidecars.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library._walk import Entry
    from sdlib.library.index import FileRow

__all__ = [
    "SIDECAR_SOURCES",
    "Adoption",
    "SidecarIdentity",
    "adopt",
    "adopt_rows",
    "from_civitai_info",
    "from_cm_info",
    "same_description",
]

#: Sidecars that carry an identity, in the order they are trusted.
SIDECAR_SOURCES = (".civitai.info", ".cm-info.json")


@dataclass(frozen=True)
class SidecarIdentity:
    """Who a model file is, as a sidecar says."""

    version_id: int
    model_id: int | None
    file_id: int | None
    model_name: str | None
    version_name: str | None
    base_model: str | None
    #: Every SHA256 the sidecar publishes (upper case): the chosen file's, or the version's.
    sha256s: tuple[str, ...] = ()
    #: The sidecar's suffix (``.civitai.info`` or ``.cm-info.json``).
    source: str = ".civitai.info"

    def columns(self) -> dict[str, Any]:
        """The index columns this identity fills."""
        return {
            "civitai_model_id": self.model_id, "civitai_version_id": self.version_id,
            "civitai_file_id": self.file_id, "civitai_model_name": self.model_name,
            "civitai_version_name": self.version_name, "civitai_base_model": self.base_model,
        }  # fmt: skip


@dataclass(frozen=True)
class Adoption:
    """What the sidecars beside a file say about it."""

    identity: SidecarIdentity | None
    #: The file's SHA256 was known and the sidecar publishes it.
    confirmed: bool = False
    #: Why a sidecar that names an identity was not taken (one phrase), else None.
    refused: str | None = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _sha(hashes: Any) -> str | None:
    if not isinstance(hashes, Mapping):
        return None
    for key, value in hashes.items():
        if isinstance(key, str) and key.upper() == "SHA256" and isinstance(value, str) and value:
            return value.strip().upper()
    return None


def _pick_file(files: Sequence[Mapping[str, Any]], name: str, size: int | None) -> Any:
    """The file of a version this model file most likely is, without its SHA256: the same
    name, else the only one of about the same size, else the primary file."""
    for f in files:
        if isinstance(f.get("name"), str) and f["name"].casefold() == name.casefold():
            return f
    if size is not None:
        near = [f for f in files if isinstance(f.get("sizeKB"), int | float)
                and abs(float(f["sizeKB"]) * 1024 - size) < 1024]  # fmt: skip
        if len(near) == 1:
            return near[0]
    primary = [f for f in files if f.get("primary") is True]
    return primary[0] if len(primary) == 1 else (files[0] if len(files) == 1 else None)


def from_civitai_info(
    data: Any, *, name: str, size: int | None = None, sha256: str | None = None
) -> Adoption:
    """A ``.civitai.info`` (Civitai's model-version JSON) for the file ``name``."""
    if not isinstance(data, Mapping) or _int(data.get("id")) is None:
        return Adoption(None)  # {} (Civitai did not know it), or not a version
    files = [f for f in data.get("files") or () if isinstance(f, Mapping)]
    published = tuple(s for f in files if (s := _sha(f.get("hashes"))))
    chosen: Any = None
    confirmed = False
    if sha256 and published:
        chosen = next((f for f in files if _sha(f.get("hashes")) == sha256.upper()), None)
        if chosen is None:
            return Adoption(None, refused=_OTHER_BYTES)
        confirmed = True
    else:
        chosen = _pick_file(files, name, size)
    inner = data.get("model")
    model: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
    identity = SidecarIdentity(
        version_id=int(data["id"]),
        model_id=_int(data.get("modelId")),
        file_id=_int(chosen.get("id")) if chosen is not None else None,
        model_name=_str(model.get("name")),
        version_name=_str(data.get("name")),
        base_model=_str(data.get("baseModel")),
        sha256s=published,
        source=".civitai.info",
    )
    return Adoption(identity, confirmed=confirmed)


def from_cm_info(data: Any, *, sha256: str | None = None) -> Adoption:
    """Stability Matrix's ``.cm-info.json`` (PascalCase) for the file beside it."""
    if not isinstance(data, Mapping) or _int(data.get("VersionId")) is None:
        return Adoption(None)
    published = _sha(data.get("Hashes"))
    if sha256 and published and published != sha256.upper():
        return Adoption(None, refused=_OTHER_BYTES)
    identity = SidecarIdentity(
        version_id=int(data["VersionId"]),
        model_id=_int(data.get("ModelId")),
        file_id=_int(data.get("RemoteFileId")),
        model_name=_str(data.get("ModelName")),
        version_name=_str(data.get("VersionName")),
        base_model=_str(data.get("BaseModel")),
        sha256s=(published,) if published else (),
        source=".cm-info.json",
    )
    return Adoption(identity, confirmed=bool(sha256 and published))


_OTHER_BYTES = (
    "its sidecar: that describes other bytes (the SHA256 it publishes is not this file's)"
)


def adopt(
    model: str,
    sidecars: Mapping[str, str],
    sha256: str | None,
    size: int | None,
    read: Callable[[str], Any] | None = None,
) -> Adoption:
    """What the identity sidecars of ``model`` say. ``sidecars``: suffix -> path of those
    that exist (``SIDECAR_SOURCES``); the first that names an identity consistent with the
    file wins. A sidecar that cannot be read counts as absent. ``read``: a sidecar's JSON
    (None when unreadable) by path, if not from the file now."""
    from sdlib.library.sidecars import read_json

    refused: str | None = None
    name = os.path.basename(model)
    for suffix in SIDECAR_SOURCES:
        path = sidecars.get(suffix)
        if path is None:
            continue
        data = read(path) if read is not None else read_json(Path(path))
        if suffix == ".civitai.info":
            found = from_civitai_info(data, name=name, size=size, sha256=sha256)
        else:
            found = from_cm_info(data, sha256=sha256)
        if found.identity is not None:
            return found
        refused = refused or found.refused
    return Adoption(None, refused=refused)


def adopt_rows(
    entries: Sequence[Entry],
    rows: dict[str, FileRow],
    cached_sha256: Callable[[str], str | None],
    now: float,
    read: Callable[[str], Any] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Give each model row of a scan that was never looked up the identity its sidecars
    state (in place, in ``rows``). Returns (path -> the sidecar suffix it came from,
    path -> why a sidecar naming an identity was not taken).

    Confirmed identities (SHA256 checked) are ``identified``; the others keep
    ``identify_state`` unset so ``identify`` asks. ``matched_by`` is ``sidecar`` for both.
    ``cached_sha256`` gives a SHA256 already known for a path, without hashing; ``read``
    a sidecar's JSON (see ``adopt``).

    Whenever the file's SHA256 is known (the row's, or the hash cache's for these bytes) the
    sidecar is held to it, whatever the index knew before: a fresh index and one that took
    the sidecar unconfirmed on an earlier scan end the same. An identity taken unconfirmed
    is confirmed, or dropped when the sidecar publishes another SHA256; a SHA256 learned
    from the cache is kept in the row, so the next scan checks the sidecar again (and says
    again why it is not taken) instead of forgetting.
    """
    present = {e.path for e in entries if e.role == "sidecar"}
    folded = {p.casefold(): p for p in present}
    adopted: dict[str, str] = {}
    refused: dict[str, str] = {}
    for e in entries:
        row = rows.get(e.path)
        if row is None or e.role != "model" or row.problem or row.identify_state:
            continue
        unconfirmed = row.civitai_version_id is not None and row.matched_by == "sidecar"
        if row.civitai_version_id is not None and not unconfirmed:
            continue
        stem = os.path.splitext(e.path)[0]
        found = {}
        for suffix in SIDECAR_SOURCES:
            wanted = stem + suffix
            path = wanted if wanted in present else folded.get(wanted.casefold())
            if path is not None:
                found[suffix] = path
        if not found:
            continue
        sha = row.sha256 or cached_sha256(e.path)
        if unconfirmed and sha is None:
            continue  # taken unconfirmed before, and still nothing to check it against
        adoption = adopt(e.path, found, sha, row.size, read)
        if adoption.identity is None:
            if adoption.refused:
                refused[e.path] = f"not identified from {adoption.refused}; run sdlib identify"
                cleared: dict[str, Any] = {}
                if unconfirmed:
                    cleared = dict.fromkeys((*_IDENTITY_COLUMNS, "matched_by"))
                rows[e.path] = replace(row, **cleared, sha256=sha)
            continue
        if unconfirmed and not adoption.confirmed:
            continue  # the sidecar publishes no SHA256 to check: unconfirmed as it was
        state: dict[str, Any] = {}
        if adoption.confirmed:
            state = {"identify_state": "identified", "identified_at": now}
        rows[e.path] = replace(
            row, **adoption.identity.columns(), **state, matched_by="sidecar", sha256=sha
        )
        adopted[e.path] = adoption.identity.source
    return adopted, refused


#: The index columns a sidecar's identity fills (``SidecarIdentity.columns``).
_IDENTITY_COLUMNS = (
    "civitai_model_id", "civitai_version_id", "civitai_file_id", "civitai_model_name",
    "civitai_version_name", "civitai_base_model",
)  # fmt: skip


#: Keys of a version JSON that change by themselves between two answers for one version.
_VOLATILE = frozenset({"stats", "images", "updatedAt", "downloadUrl", "nsfwLevel", "status"})
#: Stability Matrix keys the user sets (a title, a thumbnail, generation defaults).
_CM_USER_KEYS = ("UserTitle", "ThumbnailImageUrl", "InferenceDefaults")


def same_description(suffix: str, kept: Any, other: Any) -> bool:
    """Whether sidecar ``other`` says nothing that ``kept`` (of a byte-identical model)
    lacks, so deleting ``other`` loses nothing.

    Two answers for one version differ in download counts, image lists and timestamps
    (``identify`` writes each file's answer when that file is looked up; a download writes
    the answer it got then; Stability Matrix stamps ``ImportedAt``). Those are the same
    description. Anything else another tool or the user put in ``other`` (a key ``kept``
    does not have, a different version, a user title) makes it different.
    """
    if not isinstance(kept, Mapping) or not isinstance(other, Mapping):
        return False
    if suffix == ".cm-info.json":
        ids = ("ModelId", "VersionId")
        if any(kept.get(k) != other.get(k) for k in ids) or _int(other.get("VersionId")) is None:
            return False
        return all(other.get(k) in (None, kept.get(k)) for k in _CM_USER_KEYS)
    if suffix == ".civitai.info":
        if not other:
            return not kept or _int(kept.get("id")) is not None  # {} says less than anything
        if _int(other.get("id")) is None or (other.get("id"), other.get("modelId")) != (
            kept.get("id"),
            kept.get("modelId"),
        ):
            return False
        extra = set(other) - set(kept) - _VOLATILE
        shas = {_sha(f.get("hashes")) for f in other.get("files") or () if isinstance(f, Mapping)}
        kept_shas = {
            _sha(f.get("hashes")) for f in kept.get("files") or () if isinstance(f, Mapping)
        }
        return not extra and shas - {None} <= kept_shas
    return False
