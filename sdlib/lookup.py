"""What the library asks of a source, and the facts a source answers with.

``identify`` and ``updates`` (in ``sdlib.library``) speak only this protocol: they never
see a REST path, a JSON shape or an HTTP client. A source (``sdlib.sources.civitai`` is the
first) implements :class:`Lookup`: it caches its answers in an :class:`AnswerCache` (the
library index is one), paces its requests, and turns its records into the frozen values
below. The library decides what the facts mean for the user's files: which sidecars to
write, whether a version is an update.

This module is a base layer: it imports nothing from sdlib but the standard library, so
both the library and the sources may depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "AnswerCache",
    "FileFacts",
    "Lookup",
    "Match",
    "ModelAnswer",
    "ModelFacts",
    "ModelsReport",
    "Preview",
    "VersionFacts",
]

#: The hashes a lookup tries, in order: SHA256 first (what every source publishes), then
#: the short forms Civitai also matches on (a header edited since, or hashed differently).
MATCH_ORDER = ("SHA256", "AutoV3", "AutoV2")


class AnswerCache(Protocol):
    """Where a source keeps its answers: ``(status, body, stored_at)`` by key."""

    def remote_get(self, key: str, max_age: float | None) -> tuple[int, Any, float] | None: ...

    def remote_put(self, key: str, status: int, body: Any) -> None: ...


@dataclass(frozen=True)
class Preview:
    """An example image a source shows for a version (already judged by its NSFW rule)."""

    url: str
    nsfw: bool


@dataclass(frozen=True)
class FileFacts:
    """One published file of a version: its id, name, hashes (upper-case names and
    values, as Civitai publishes them) and the source's own metadata (fp, size, format)."""

    id: int | None
    name: str | None
    hashes: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A source's answer to "which version are these bytes?"."""

    #: The source's name (``civitai``): it decides which sidecar holds ``record``.
    source: str
    #: The hash that matched (SHA256, AutoV3 or AutoV2).
    matched_by: str
    model_id: int | None
    version_id: int | None
    model_name: str | None
    version_name: str | None
    base_model: str | None
    model_type: str | None
    #: The model's own NSFW flag (None when the record does not say).
    model_nsfw: bool | None
    #: The version's file holding these bytes (None: the version lists no files).
    file: FileFacts | None
    trained_words: tuple[str, ...]
    #: The version's own description (HTML as published), if any.
    description: str | None
    #: The page a person opens for this version.
    page_url: str
    previews: tuple[Preview, ...]
    #: The source's record exactly as it answered (``.civitai.info`` holds Civitai's).
    record: Mapping[str, Any]
    #: When the source gave this answer (epoch seconds; cached answers keep their time), so
    #: byte-identical copies identified from one answer get identical sidecars.
    answered_at: float | None = None


@dataclass(frozen=True)
class VersionFacts:
    id: int | None
    name: str | None
    base_model: str | None
    published_at: str | None
    #: SHA256s of the version's files (upper case): the same bytes are not an update.
    sha256s: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFacts:
    id: int
    name: str | None
    type: str | None
    nsfw: bool
    description: str | None
    tags: tuple[str, ...]
    creator: str | None
    #: Newest first, by publication date (never the list order a creator set).
    versions: tuple[VersionFacts, ...]


@dataclass(frozen=True)
class ModelAnswer:
    """A model as the source last knew it: ``model`` is None when it is gone (404/410);
    ``stale`` when a fresh request failed and this is an older cached answer."""

    model: ModelFacts | None
    stale: bool = False


@dataclass
class ModelsReport:
    """Answers for many models: one per id that has one, an error for each that does not."""

    answers: dict[int, ModelAnswer] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    #: Things worth a line that are not failures (a paging walk the guard ended).
    notes: list[str] = field(default_factory=list)


class Lookup(Protocol):
    """A source's answers for the library: identity by hash, models, previews.

    Methods that ask the network raise ``sdlib.errors.SourceError`` subclasses for a failed
    request (a "not found" is an answer, not an error); nothing else escapes.
    """

    #: The source's name, e.g. ``civitai``.
    name: str
    #: Requests made and answers taken from the cache since this lookup was built.
    requests: int
    cache_hits: int

    def prefetch(self, sha256s: Sequence[str], *, refresh: bool = False) -> None:
        """Ask for many SHA256s at once where the source can (never raises)."""

    def match(self, hashes: Mapping[str, str], *, refresh: bool = False) -> Match | None:
        """The version holding bytes with these hashes (names as ``MATCH_ORDER``), or None."""

    def cached_match(self, hashes: Mapping[str, str], matched_by: str) -> Match | None:
        """What the cache knows about a file identified before, however old (no request)."""

    def model(self, model_id: int, ttl: float) -> ModelFacts | None:
        """A model's facts (cached for ``ttl`` seconds); None when it is gone."""

    def models(
        self,
        ids: Sequence[int],
        *,
        ttl: float,
        refresh: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ModelsReport:
        """Facts for many models in as few requests as the source allows; never raises."""

    def preview(self, url: str) -> bytes | None:
        """A preview image's bytes (bounded), or None when it cannot be had."""
