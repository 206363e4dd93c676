"""Civitai's records turned into the library's facts (``sdlib.lookup``); pure functions.

``match_from_version`` reads a ``/model-versions/by-hash`` answer; ``compact_model`` keeps
what updates and sidecars need of a ``/models`` item (the form cached in the index) and
``model_facts`` reads that form back. Every field is optional and any JSON shape is
tolerated: a field of the wrong type is treated as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sdlib.lookup import FileFacts, Match, ModelFacts, Preview, VersionFacts
from sdlib.sources.civitai._models import CivitaiImage
from sdlib.sources.versions import newest_first, raw_dates

__all__ = ["compact_model", "file_matching", "match_from_version", "model_facts", "page_url"]


def page_url(site: str, model_id: object, version_id: object) -> str:
    """The version's page on the site ``site`` (the API's base URL)."""
    return f"{site.rstrip('/')}/models/{model_id}?modelVersionId={version_id}"


def file_matching(
    body: Mapping[str, Any], hashes: Mapping[str, str], matched_by: str
) -> tuple[bool, dict[str, Any] | None]:
    """(is ours, the version's file with our bytes). A short-hash match whose file
    publishes another SHA256 is a collision, not ours. An archived version lists no
    files: nothing to contradict the match."""
    files = [f for f in _list(body.get("files")) if isinstance(f, dict)]
    ours = {k: (hashes.get(k) or "").upper() for k in ("SHA256", "AutoV3", "AutoV2", "BLAKE3")}
    for f in files:
        published = {str(k).lower(): str(v).upper() for k, v in _dict(f.get("hashes")).items()}
        sha = published.get("sha256")
        if sha and sha == ours["SHA256"]:
            return True, f
        if published.get(matched_by.lower()) == ours.get(matched_by):
            if matched_by == "AutoV2" and sha and sha != ours["SHA256"]:
                continue  # ten hex digits that happen to agree: not our file
            return True, f
    return not files, None


def match_from_version(
    site: str,
    body: Mapping[str, Any],
    matched_by: str,
    file: Mapping[str, Any] | None,
    answered_at: float | None = None,
) -> Match:
    """A by-hash answer as a :class:`~sdlib.lookup.Match`."""
    model = _dict(body.get("model"))
    previews = tuple(
        Preview(str(image["url"]), CivitaiImage.from_api(image).nsfw)
        for image in _list(body.get("images"))
        if isinstance(image, dict)
        and image.get("type", "image") == "image"
        and isinstance(image.get("url"), str)
    )
    description = body.get("description")
    return Match(
        source="civitai",
        matched_by=matched_by,
        model_id=_int(body.get("modelId")),
        version_id=_int(body.get("id")),
        model_name=_str(model.get("name")),
        version_name=_str(body.get("name")),
        base_model=_str(body.get("baseModel")),
        model_type=_str(model.get("type")),
        model_nsfw=model["nsfw"] if isinstance(model.get("nsfw"), bool) else None,
        file=_file_facts(file) if file is not None else None,
        trained_words=tuple(w for w in _list(body.get("trainedWords")) if isinstance(w, str)),
        description=description if isinstance(description, str) else None,
        page_url=page_url(site, body.get("modelId"), body.get("id")),
        previews=previews,
        record=dict(body),
        answered_at=answered_at,
    )


def file_with_sha256(body: Mapping[str, Any], sha256: str | None) -> dict[str, Any] | None:
    """The version's file publishing ``sha256``, if any."""
    for f in _list(body.get("files")):
        hashes = _dict(f.get("hashes")) if isinstance(f, dict) else {}
        if sha256 and str(hashes.get("SHA256", "")).upper() == sha256.upper():
            return f  # type: ignore[no-any-return]
    return None


def _file_facts(f: Mapping[str, Any]) -> FileFacts:
    return FileFacts(
        id=_int(f.get("id")),
        name=_str(f.get("name")),
        hashes={str(k).upper(): str(v) for k, v in _dict(f.get("hashes")).items()},
        metadata=_dict(f.get("metadata")),
    )


def compact_model(raw: Any) -> dict[str, Any]:
    """What sdlib keeps of a ``/models`` item: enough for updates and sidecars."""
    data = _dict(raw)
    versions = []
    for v in _list(data.get("modelVersions")):
        if not isinstance(v, dict):
            continue
        files = [
            {"id": f.get("id"), "sha256": _sha256(f)}
            for f in _list(v.get("files"))
            if isinstance(f, dict)
        ]
        versions.append({
            "id": v.get("id"), "name": v.get("name"), "baseModel": v.get("baseModel"),
            "publishedAt": v.get("publishedAt") or v.get("createdAt"),
            "createdAt": v.get("createdAt"), "files": files,
        })  # fmt: skip
    creator = _dict(data.get("creator"))
    tags = [t.get("name") if isinstance(t, dict) else t for t in _list(data.get("tags"))]
    return {
        "id": data.get("id"), "name": data.get("name"), "type": data.get("type"),
        "mode": data.get("mode"), "description": data.get("description"), "versions": versions,
        # For Stability Matrix's .cm-info.json:
        "nsfw": data.get("nsfw"), "tags": [t for t in tags if isinstance(t, str)],
        "creator": {"username": creator.get("username")},
    }  # fmt: skip


def model_facts(compact: Mapping[str, Any]) -> ModelFacts | None:
    """A cached :func:`compact_model` as :class:`~sdlib.lookup.ModelFacts` (None without
    an id: not a model)."""
    model_id = _int(compact.get("id"))
    if model_id is None:
        return None
    raw_versions = [v for v in _list(compact.get("versions")) if isinstance(v, dict)]
    versions = tuple(
        VersionFacts(
            id=_int(v.get("id")),
            name=_str(v.get("name")),
            base_model=_str(v.get("baseModel")),
            published_at=_str(v.get("publishedAt")),
            sha256s=tuple(
                str(f["sha256"]).upper()
                for f in _list(v.get("files"))
                if isinstance(f, dict) and isinstance(f.get("sha256"), str)
            ),
        )
        for v in newest_first(raw_versions, raw_dates)
    )
    description = compact.get("description")
    return ModelFacts(
        id=model_id,
        name=_str(compact.get("name")),
        type=_str(compact.get("type")),
        nsfw=bool(compact.get("nsfw")),
        description=description if isinstance(description, str) else None,
        tags=tuple(t for t in _list(compact.get("tags")) if isinstance(t, str)),
        creator=_str(_dict(compact.get("creator")).get("username")),
        versions=versions,
    )


def _sha256(f: Mapping[str, Any]) -> str | None:
    for k, v in _dict(f.get("hashes")).items():
        if str(k).lower() == "sha256" and isinstance(v, str):
            return v.upper()
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
