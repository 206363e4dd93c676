"""CivArchive as a :class:`sdlib.lookup.Lookup`: identity by SHA256 only, cached per server.

It is asked only after Civitai found nothing (``sdlib.services.fallback`` chains the two).
Answers, "not archived" included, go to the same :class:`~sdlib.lookup.AnswerCache` as
Civitai's under keys naming this server (``https://civarchive.com|civarchive:sha256:<H>``),
so a second run asks nothing; a failed request caches nothing. A record matches only when
one of its files carries exactly the file's own SHA256: CivArchive's other hashes, and a
record whose SHA256 differs, are never taken over the local hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sdlib.lookup import FileFacts, Match, ModelFacts, ModelsReport, VersionFacts
from sdlib.sources.civarchive._client import CivArchiveClient
from sdlib.sources.civarchive._records import ArchiveAnswer, ArchiveFile, Mirror

if TYPE_CHECKING:
    import httpx2

    from sdlib.lookup import AnswerCache

__all__ = ["CivArchiveLookup", "page_url"]

DAY = 86_400.0


def page_url(base_url: str, answer: ArchiveAnswer) -> str:
    """CivArchive's page for the version (its site mirrors Civitai's paths)."""
    base = base_url.rstrip("/")
    if answer.model_id is None:
        return base
    tail = f"?modelVersionId={answer.version_id}" if answer.version_id else ""
    return f"{base}/models/{answer.model_id}{tail}"


class CivArchiveLookup:
    """CivArchive at ``base_url`` over ``http``; answers kept in ``cache``."""

    name = "civarchive"

    def __init__(
        self,
        http: httpx2.Client,
        base_url: str,
        cache: AnswerCache,
        *,
        found_ttl: float = 30 * DAY,
        missing_ttl: float = 7 * DAY,
    ) -> None:
        self.client = CivArchiveClient(http, base_url)
        self.base_url = self.client.base_url
        self.cache = cache
        self.found_ttl = found_ttl
        self.missing_ttl = missing_ttl
        self.requests = 0
        self.cache_hits = 0

    def key(self, name: str) -> str:
        return f"{self.base_url}|civarchive:{name}"

    # -- cached questions ---------------------------------------------------------------------

    def by_sha256(
        self, sha256: str, *, refresh: bool = False
    ) -> tuple[ArchiveAnswer | None, float]:
        """CivArchive's answer for a SHA256 (None: not archived) and when it was given."""
        return self._cached(f"sha256:{sha256.upper()}", refresh,
                            lambda: self.client.by_sha256(sha256))  # fmt: skip

    def version(
        self, version_id: int | None, model_id: int | None = None, *, refresh: bool = False
    ) -> ArchiveAnswer | None:
        """A version by id, else (``version_id`` None) the model's newest CivArchive shows."""
        name = f"version:{version_id}" if version_id is not None else f"model-newest:{model_id}"
        return self._cached(name, refresh,
                            lambda: self.client.version(version_id, model_id))[0]  # fmt: skip

    def _cached(
        self, name: str, refresh: bool, ask: Callable[[], ArchiveAnswer | None]
    ) -> tuple[ArchiveAnswer | None, float]:
        key = self.key(name)
        hit = None if refresh else self.cache.remote_get(key, None)
        if hit is not None:
            ttl = self.found_ttl if hit[0] == 200 else self.missing_ttl
            if time.time() - hit[2] < ttl:
                self.cache_hits += 1
                return (_from_cache(hit[1]) if hit[0] == 200 else None), hit[2]
        before = self.client.requests
        try:
            answer = ask()  # a failure raises: nothing is cached
        finally:
            self.requests += self.client.requests - before
        self.cache.remote_put(key, 200 if answer else 404, asdict(answer) if answer else None)
        if answer is not None and answer.model_id is not None:
            self.cache.remote_put(self.key(f"model:{answer.model_id}"), 200, asdict(answer))
        return answer, time.time()

    # -- the Lookup protocol ------------------------------------------------------------------

    def prefetch(self, sha256s: Sequence[str], *, refresh: bool = False) -> None:
        """CivArchive has no bulk lookup: files are asked one by one in :meth:`match`."""

    def match(self, hashes: Mapping[str, str], *, refresh: bool = False) -> Match | None:
        sha = (hashes.get("SHA256") or "").upper()
        if len(sha) != 64:
            return None
        answer, at = self.by_sha256(sha, refresh=refresh)
        return self._match(answer, sha, at)

    def cached_match(self, hashes: Mapping[str, str], matched_by: str) -> Match | None:
        sha = (hashes.get("SHA256") or "").upper()
        hit = self.cache.remote_get(self.key(f"sha256:{sha}"), None) if sha else None
        if hit is None or hit[0] != 200:
            return None
        return self._match(_from_cache(hit[1]), sha, hit[2])

    def _match(self, answer: ArchiveAnswer | None, sha: str, at: float) -> Match | None:
        file = answer.file_with_sha256(sha) if answer is not None else None
        if answer is None or file is None:
            return None  # no file of the record has these bytes' SHA256: not a match
        return Match(
            source=self.name, matched_by="SHA256", model_id=answer.model_id,
            version_id=answer.version_id, model_name=answer.model_name,
            version_name=answer.version_name, base_model=answer.base_model,
            model_type=answer.model_type, model_nsfw=answer.nsfw,
            file=FileFacts(file.id, file.name, {"SHA256": sha}),
            trained_words=answer.trained_words, description=None,
            page_url=page_url(self.base_url, answer), previews=(), record=asdict(answer),
            answered_at=at,
        )  # fmt: skip

    def model(self, model_id: int, ttl: float) -> ModelFacts | None:
        """What CivArchive's last answer about one of the model's versions said (no request):
        enough for the description and tags a sidecar carries."""
        hit = self.cache.remote_get(self.key(f"model:{int(model_id)}"), None)
        answer = _from_cache(hit[1]) if hit is not None and hit[0] == 200 else None
        return model_facts(answer) if answer is not None else None

    def models(
        self,
        ids: Sequence[int],
        *,
        ttl: float,
        refresh: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ModelsReport:
        """Update checks are Civitai's: an archive has no newer versions to offer."""
        return ModelsReport()

    def preview(self, url: str) -> bytes | None:
        return None


def model_facts(answer: ArchiveAnswer) -> ModelFacts | None:
    if answer.model_id is None:
        return None
    version = VersionFacts(answer.version_id, answer.version_name, answer.base_model, None,
                           tuple(f.sha256 for f in answer.files if f.sha256))  # fmt: skip
    return ModelFacts(
        id=answer.model_id, name=answer.model_name, type=answer.model_type,
        nsfw=bool(answer.nsfw), description=answer.description, tags=answer.tags,
        creator=answer.creator, versions=(version,),
    )  # fmt: skip


def _from_cache(body: Any) -> ArchiveAnswer | None:
    """An answer stored by :meth:`CivArchiveLookup._cached` (``asdict``), rebuilt."""
    if not isinstance(body, dict):
        return None
    try:
        files = tuple(
            ArchiveFile(**{**f, "mirrors": tuple(Mirror(**m) for m in f.get("mirrors", ()))})
            for f in body.get("files", ())
        )
        return ArchiveAnswer(**{**body, "files": files, "tags": tuple(body.get("tags", ())),
                                "trained_words": tuple(body.get("trained_words", ()))})  # fmt: skip
    except TypeError:
        return None  # stored by another sdlib version: asked again
