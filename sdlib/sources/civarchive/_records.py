"""CivArchive's answers as frozen records, parsed tolerantly.

CivArchive is unofficial and its JSON changes: a lookup by SHA256 answers a ``model`` with a
nested ``version`` and/or a ``files[]`` list (for a while in 2025 only ``files[]``), keys
come in camelCase or snake_case, trigger words as ``trigger`` (Civitai: ``trainedWords``),
a creator as a name or an object. Anything of the wrong type is read as absent; nothing here
raises on a strange answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ArchiveAnswer", "ArchiveFile", "Mirror", "parse_answer"]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Mirror:
    url: str
    filename: str | None
    #: Who hosts it (civitai, huggingface, a file host...), as CivArchive names it.
    source: str | None
    #: When CivArchive saw it go; None while it is live.
    deleted_at: str | None


@dataclass(frozen=True)
class ArchiveFile:
    id: int | None
    name: str | None
    #: Upper-case hex, or None when the record has no well-formed SHA256.
    sha256: str | None
    #: Exact size in bytes when the record gives one (``sizeKB`` is rounded: not used).
    size: int | None
    model_id: int | None
    version_id: int | None
    primary: bool
    mirrors: tuple[Mirror, ...]

    @property
    def live_mirror(self) -> Mirror | None:
        """The first mirror CivArchive has not seen removed (as Lora-Manager picks it)."""
        return next((m for m in self.mirrors if m.deleted_at is None), None)


@dataclass(frozen=True)
class ArchiveAnswer:
    """One model version as CivArchive describes it (any field may be missing)."""

    model_id: int | None
    version_id: int | None
    model_name: str | None
    version_name: str | None
    model_type: str | None
    base_model: str | None
    nsfw: bool | None
    description: str | None
    creator: str | None
    tags: tuple[str, ...]
    trained_words: tuple[str, ...]
    #: When the model was removed upstream (Civitai), if CivArchive says so.
    deleted_at: str | None
    files: tuple[ArchiveFile, ...]

    @property
    def has_model(self) -> bool:
        """Whether the answer names its model version (a files-only answer does not)."""
        return self.version_id is not None and self.model_name is not None

    def file_with_sha256(self, sha256: str) -> ArchiveFile | None:
        wanted = sha256.upper()
        return next((f for f in self.files if f.sha256 == wanted), None)


def parse_answer(data: Any) -> ArchiveAnswer | None:
    """An answer of ``/api/sha256/{hash}`` or ``/api/models/{id}``; None if it holds neither
    a model nor a file."""
    if not isinstance(data, Mapping):
        return None
    model = _map(data.get("model")) or ({} if "files" in data else _map(data))
    version = _map(model.get("version")) or _version_in(model, data) or {}
    raw_files = _list(version.get("files")) + _list(data.get("files"))
    files = _files(raw_files, model, version)
    model_id = _int(model.get("id")) or _int(version.get("modelId") or version.get("model_id"))
    version_id = _int(version.get("id"))
    if model_id is None or version_id is None:  # a files-only answer names them per file
        first = files[0] if files else None
        model_id = model_id or (first.model_id if first else None)
        version_id = version_id or (first.version_id if first else None)
    if model_id is None and version_id is None and not files:
        return None  # names nothing: not an answer
    return ArchiveAnswer(
        model_id=model_id,
        version_id=version_id,
        model_name=_str(model.get("name")),
        version_name=_str(version.get("name")),
        model_type=_str(model.get("type")),
        base_model=_str(version.get("baseModel") or version.get("base_model")),
        nsfw=model.get("nsfw") if isinstance(model.get("nsfw"), bool) else None,
        description=_str(model.get("description")),
        creator=_creator(model),
        tags=tuple(t for t in (_tag(x) for x in _list(model.get("tags"))) if t),
        trained_words=_words(version.get("trigger") or version.get("trainedWords")),
        deleted_at=_str(model.get("deletedAt") or data.get("deletedAt")),
        files=files,
    )


def _version_in(model: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The version a ``/api/models/{id}?modelVersionId=`` answer is about: ``version``, else
    the entry of ``versions[]`` with the id asked for (``modelVersionId`` echoed back)."""
    wanted = _int(data.get("modelVersionId") or model.get("modelVersionId"))
    versions = [v for v in (_map(x) for x in _list(model.get("versions"))) if v]
    for version in versions:
        if wanted is not None and _int(version.get("id")) == wanted:
            return version
    return versions[0] if len(versions) == 1 else None


def _files(
    raw: list[Any], model: Mapping[str, Any], version: Mapping[str, Any]
) -> tuple[ArchiveFile, ...]:
    out: list[ArchiveFile] = []
    seen: set[tuple[int | None, str | None]] = set()
    for item in raw:
        f = _map(item)
        if not f:
            continue
        sha = _str(f.get("sha256") or _map(f.get("hashes")).get("SHA256"))
        parsed = ArchiveFile(
            id=_int(f.get("id")),
            name=_str(f.get("name") or f.get("filename")),
            sha256=sha.upper() if sha and _SHA256.fullmatch(sha) else None,
            size=_int(f.get("size") if not isinstance(f.get("size"), float) else None),
            model_id=_int(f.get("modelId") or f.get("model_id")) or _int(model.get("id")),
            version_id=_int(f.get("modelVersionId") or f.get("version_id") or f.get("versionId"))
            or _int(version.get("id")),
            primary=f.get("primary") is True,
            mirrors=tuple(m for m in (_mirror(x) for x in _list(f.get("mirrors"))) if m),
        )
        key = (parsed.id, parsed.sha256)
        if key not in seen:
            seen.add(key)
            out.append(parsed)
    return tuple(out)


def _mirror(item: Any) -> Mirror | None:
    m = _map(item)
    url = _str(m.get("url"))
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    return Mirror(
        url=url,
        filename=_str(m.get("filename") or m.get("name")),
        source=_str(m.get("source") or m.get("platform")),
        deleted_at=_str(m.get("deletedAt") or m.get("deleted_at")),
    )


def _creator(model: Mapping[str, Any]) -> str | None:
    creator = model.get("creator") or model.get("username")
    if isinstance(creator, Mapping):
        return _str(creator.get("username") or creator.get("name"))
    return _str(creator)


def _tag(item: Any) -> str | None:
    return _str(item.get("name")) if isinstance(item, Mapping) else _str(item)


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(w.strip() for w in _list(value) if isinstance(w, str) and w.strip())


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None
