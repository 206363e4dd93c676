"""CivArchive's JSON API over an injected ``httpx2.Client`` (one request each, no paging).

``GET /api/sha256/{hash}`` and ``GET /api/models/{id}?modelVersionId={vid}``, as the public
clients use them (reference civarchive.md). A files-only hash answer (2025) is completed
with a second request for its version. Statuses and bodies are mapped as Civitai's are
(``sdlib.sources.civitai.get_json``): a 404 or 410 is "not archived" (None), every other
failure a ``SourceError``. The caller gives a client with short timeouts and no retries.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from sdlib.errors import Gone, NotFound
from sdlib.sources.civarchive._records import ArchiveAnswer, parse_answer
from sdlib.sources.civitai import get_json

if TYPE_CHECKING:
    import httpx2

__all__ = ["DEFAULT_URL", "CivArchiveClient"]

DEFAULT_URL = "https://civarchive.com"


class CivArchiveClient:
    def __init__(self, http: httpx2.Client, base_url: str = DEFAULT_URL) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        #: Requests made by this client.
        self.requests = 0

    def by_sha256(self, sha256: str) -> ArchiveAnswer | None:
        """The version holding a file with this SHA256, or None when CivArchive has none."""
        answer = self._ask(f"/api/sha256/{sha256.lower()}")
        if answer is not None and not answer.has_model and answer.version_id is not None:
            fuller = self.version(answer.version_id, answer.model_id)
            if fuller is not None:
                # The version's own record, with the files the hash answer listed.
                files = fuller.files + tuple(f for f in answer.files if f not in fuller.files)
                return replace(fuller, files=files)
        return answer

    def version(self, version_id: int | None, model_id: int | None = None) -> ArchiveAnswer | None:
        """A model version (any model id works with the version id: CivArchive answers the
        right model), or with only ``model_id`` the version CivArchive shows first for the
        model; None when CivArchive does not have it."""
        if version_id is None:
            if model_id is None:
                return None
            answer = self._ask(f"/api/models/{int(model_id)}")
            return answer if answer is not None and answer.model_id == model_id else None
        answer = self._ask(f"/api/models/{model_id or version_id}",
                           [("modelVersionId", str(int(version_id)))])  # fmt: skip
        if answer is not None and answer.version_id not in (None, version_id):
            return None  # an answer about another version is no answer
        return answer

    def _ask(self, path: str, params: list[tuple[str, str]] | None = None) -> ArchiveAnswer | None:
        self.requests += 1
        try:
            data = get_json(self.http, self.base_url + path, params or ())
        except (NotFound, Gone):
            return None
        return parse_answer(data)
