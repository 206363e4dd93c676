"""Frozen records of the Hub's answers, tolerant of missing or odd fields.

``HubModel`` is a repo as ``/api/models`` (search) and ``/api/models/{repo}`` (info) describe
it; ``HubFile`` one entry of the tree listing (``lfs.oid``) or of ``siblings`` with
``blobs=true`` (``lfs.sha256``); ``HubDownload`` everything a download needs, as the resolver
found it. ``to_dict`` gives the ``--json`` shape (lower-case vocabularies).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdlib.sources.hf._guess import FileGuess, base_of_tags, guess_file, is_candidate
from sdlib.taxonomy import Base

__all__ = ["HubDownload", "HubFile", "HubModel", "HubRepo"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _str(value: Any, limit: int = 500) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def _sha256(value: Any) -> str | None:
    """A sha256 as 64 lower-case hex digits (an ETag's quotes stripped), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().removeprefix("W/").strip('"').lower()
    return text if _SHA256.fullmatch(text) else None


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(t[:200] for t in value[:500] if isinstance(t, str))


def _gated(value: Any) -> str | None:
    """``gated`` as "auto" or "manual" (access needs a request), else None (open)."""
    if value is True:
        return "manual"
    if isinstance(value, str) and value.lower() in ("auto", "manual"):
        return value.lower()
    return None


@dataclass(frozen=True)
class HubFile:
    """One file in a repo, with the facts a verified download needs."""

    path: str
    size: int | None = None
    #: The LFS object's sha256 (the file's sha256), None for small git-stored files.
    sha256: str | None = None
    #: The git blob id (sha1 of the git object), what ``ETag`` holds for non-LFS files.
    blob_id: str | None = None
    lfs: bool = False
    xet_hash: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def candidate(self) -> bool:
        return is_candidate(self.path)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> HubFile | None:
        """A tree entry (``path``, ``lfs.oid``) or a sibling (``rfilename``, ``lfs.sha256``);
        None for folders and entries without a usable path."""
        if data.get("type") == "directory":
            return None
        path = _str(data.get("path") or data.get("rfilename"), 1000)
        if path is None:
            return None
        lfs = data.get("lfs") if isinstance(data.get("lfs"), dict) else None
        size = _int(data.get("size"))
        sha = None
        if lfs is not None:
            sha = _sha256(lfs.get("sha256") or lfs.get("oid"))
            size = _int(lfs.get("size")) if _int(lfs.get("size")) is not None else size
        return cls(
            path=path, size=size, sha256=sha,
            blob_id=_str(data.get("oid") or data.get("blobId"), 64), lfs=lfs is not None,
            xet_hash=_str(data.get("xetHash"), 128),
        )  # fmt: skip

    def guess(self, tags: Sequence[str] = (), diffusers: bool = False, repo: str = "") -> FileGuess:
        return guess_file(self.path, tags, diffusers, repo)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "size": self.size, "sha256": self.sha256,
                "lfs": self.lfs, "blob_id": self.blob_id}  # fmt: skip


@dataclass(frozen=True)
class HubModel:
    """A model repo as search results and model info describe it."""

    id: str
    author: str | None = None
    #: The commit the asked revision resolved to (model info only).
    sha: str | None = None
    gated: str | None = None
    private: bool = False
    disabled: bool = False
    downloads: int | None = None
    likes: int | None = None
    trending: int | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library: str | None = None
    license: str | None = None
    last_modified: str | None = None
    created_at: str | None = None
    #: ``base_model`` as the card names it (repo ids).
    base_models: tuple[str, ...] = ()
    #: Paths the info's ``siblings`` list (with sizes and sha256 when asked with blobs).
    siblings: tuple[HubFile, ...] = ()

    @property
    def base(self) -> Base:
        return base_of_tags([*self.tags, *(f"base_model:{b}" for b in self.base_models)],
                            self.id)  # fmt: skip

    @property
    def is_diffusers(self) -> bool:
        return any(f.path == "model_index.json" for f in self.siblings) or (
            "diffusers" in self.tags and any(t.startswith("diffusers:") for t in self.tags)
        )

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> HubModel:
        repo = _str(data.get("id") or data.get("modelId"), 300) or "?"
        raw_card = data.get("cardData")
        card: Mapping[str, Any] = raw_card if isinstance(raw_card, dict) else {}
        tags = _tags(data.get("tags"))
        license_ = _str(card.get("license"), 100)
        if license_ is None:
            license_ = next((t[8:] for t in tags if t.startswith("license:")), None)
        raw_base = card.get("base_model")
        bases = (raw_base,) if isinstance(raw_base, str) else _tags(raw_base)
        raw_siblings = data.get("siblings")
        siblings: list[Any] = raw_siblings if isinstance(raw_siblings, list) else []
        files = tuple(
            f for f in (HubFile.from_api(s) for s in siblings[:20000] if isinstance(s, dict))
            if f is not None
        )  # fmt: skip
        sha = _str(data.get("sha"), 64)
        return cls(
            id=repo,
            author=_str(data.get("author"), 200) or (repo.split("/")[0] if "/" in repo else None),
            sha=sha if sha and _COMMIT.fullmatch(sha) else None,
            gated=_gated(data.get("gated")),
            private=data.get("private") is True,
            disabled=data.get("disabled") is True,
            downloads=_int(data.get("downloads")),
            likes=_int(data.get("likes")),
            trending=_int(data.get("trendingScore")),
            tags=tags,
            pipeline_tag=_str(data.get("pipeline_tag"), 100),
            library=_str(data.get("library_name"), 100),
            license=license_,
            last_modified=_str(data.get("lastModified"), 40),
            created_at=_str(data.get("createdAt"), 40),
            base_models=bases,
            siblings=files,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "huggingface", "id": self.id, "author": self.author, "sha": self.sha,
            "gated": self.gated or False, "private": self.private, "downloads": self.downloads,
            "likes": self.likes, "trending": self.trending, "tags": list(self.tags),
            "pipeline_tag": self.pipeline_tag, "library": self.library, "license": self.license,
            "last_modified": self.last_modified, "created_at": self.created_at,
            "base_models": list(self.base_models), "base": self.base.value,
        }  # fmt: skip


@dataclass(frozen=True)
class HubRepo:
    """What ``show`` needs: the model info, its files (with sizes and sha256) and what
    each likely is, and the card's first paragraph."""

    model: HubModel
    files: tuple[HubFile, ...]
    revision: str | None = None
    card_summary: str | None = None
    #: The repo id that was asked for, when the Hub redirected it to ``model.id`` (renamed).
    renamed_from: str | None = None
    #: The file or folder the reference named (``hf:ORG/REPO/PATH``), if any.
    selected: str | None = None

    def guesses(self) -> list[tuple[HubFile, FileGuess]]:
        diffusers = any(f.path == "model_index.json" for f in self.files) or self.model.is_diffusers
        return [(f, f.guess(self.model.tags, diffusers, self.model.id)) for f in self.files]

    def diffusers_folders(self) -> list[str]:
        """Folders holding diffusers components (empty when the repo has none)."""
        seen: list[str] = []
        for _f, guess in self.guesses():
            if guess.layout == "diffusers" and guess.component and guess.component not in seen:
                seen.append(guess.component)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "revision": self.revision,
            "renamed_from": self.renamed_from,
            "selected": self.selected,
            "card_summary": self.card_summary,
            "diffusers_folders": self.diffusers_folders(),
            "files": [
                {**f.to_dict(), "candidate": f.candidate, "guess": g.to_dict()}
                for f, g in self.guesses()
            ],
        }


@dataclass(frozen=True)
class HubDownload:
    """One file's download facts, as the resolver found them."""

    #: The ``/resolve/`` URL on the configured endpoint (revision pinned to ``commit``
    #: when the Hub told it, so the bytes cannot change between resolving and fetching).
    url: str
    repo: str
    #: The revision asked for (``main`` by default) and the commit it resolved to.
    revision: str
    commit: str | None
    path: str
    #: The name to save under (the path's last part, safe on every OS).
    file_name: str
    size: int | None
    sha256: str | None
    #: "auto" or "manual" if the repo is gated (access was granted, or it would have failed).
    gated: str | None
    guess: FileGuess
    #: The CDN URL the Hub redirected ``url`` to (signed, expiring; never given the token).
    location: str | None = None
    #: The repo asked for when the Hub redirected it to ``repo`` (renamed).
    renamed_from: str | None = None
    base: Base = Base.UNKNOWN
    tags: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "huggingface", "url": self.url, "repo": self.repo,
            "revision": self.revision, "commit": self.commit, "path": self.path,
            "file_name": self.file_name, "size": self.size, "sha256": self.sha256,
            "gated": self.gated or False, "renamed_from": self.renamed_from,
            "base": self.base.value, "guess": self.guess.to_dict(),
        }  # fmt: skip
