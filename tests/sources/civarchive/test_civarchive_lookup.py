"""CivArchiveLookup and the chained lookup over ``httpx2.MockTransport``: a record matches
only with the file's own SHA256, answers (negative ones too) are cached per server, a
files-only answer is completed, a failure caches nothing and never hides Civitai's answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from sdlib.errors import SourceError
from sdlib.lookup import Match
from sdlib.services.fallback import ChainedLookup
from sdlib.sources.civarchive import CivArchiveLookup

SHA = "ab" * 32
OTHER = "cd" * 32
BASE = "https://archive.test"


class MemoryCache:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, Any, float]] = {}

    def remote_get(self, key: str, max_age: float | None) -> tuple[int, Any, float] | None:
        return self.rows.get(key)

    def remote_put(self, key: str, status: int, body: Any) -> None:
        self.rows[key] = (status, body, time.time())


def _record(sha: str) -> dict[str, Any]:
    return {"model": {"id": 5, "name": "Style", "type": "LORA", "version": {
        "id": 6, "name": "v1", "baseModel": "SDXL 1.0",
        "files": [{"id": 11, "name": "s.safetensors", "sha256": sha,
                   "mirrors": [{"url": "https://m.test/s", "deletedAt": None}]}]}}}  # fmt: skip


def _lookup(
    handler: Callable[[httpx2.Request], httpx2.Response], cache: MemoryCache | None = None
) -> tuple[CivArchiveLookup, list[str], MemoryCache]:
    seen: list[str] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url).removeprefix(BASE))
        return handler(request)

    cache = cache or MemoryCache()
    http = httpx2.Client(transport=httpx2.MockTransport(record))
    return CivArchiveLookup(http, BASE, cache), seen, cache


def test_a_record_holding_the_files_sha256_identifies_it() -> None:
    lookup, seen, _ = _lookup(lambda r: httpx2.Response(200, json=_record(SHA)))
    match = lookup.match({"SHA256": SHA.upper(), "AutoV2": "ABCDEF0123"})
    assert match is not None
    assert (match.source, match.matched_by, match.model_id, match.version_id) == (
        "civarchive", "SHA256", 5, 6)  # fmt: skip
    assert match.file is not None and match.file.hashes == {"SHA256": SHA.upper()}
    assert match.page_url == f"{BASE}/models/5?modelVersionId=6"
    assert seen == [f"/api/sha256/{SHA}"]  # lower case, as CivArchive keys it


def test_a_record_with_another_sha256_is_not_a_match() -> None:
    lookup, _, _ = _lookup(lambda r: httpx2.Response(200, json=_record(OTHER)))
    assert lookup.match({"SHA256": SHA}) is None


def test_only_sha256_is_asked() -> None:
    lookup, seen, _ = _lookup(lambda r: httpx2.Response(200, json=_record(SHA)))
    assert lookup.match({"AutoV2": "ABCDEF0123", "AutoV3": "ABCDEF012345"}) is None
    assert seen == []


def test_not_archived_is_cached_per_server() -> None:
    lookup, seen, cache = _lookup(lambda r: httpx2.Response(404, json={"error": "Not found"}))
    assert lookup.match({"SHA256": SHA}) is None
    assert lookup.match({"SHA256": SHA}) is None
    assert seen == [f"/api/sha256/{SHA}"]
    assert (lookup.requests, lookup.cache_hits) == (1, 1)
    assert list(cache.rows) == [f"{BASE}|civarchive:sha256:{SHA.upper()}"]
    again, seen_again, _ = _lookup(lambda r: httpx2.Response(404), cache)  # a new process
    assert again.match({"SHA256": SHA}) is None
    assert seen_again == []


def test_found_answers_are_cached_and_cached_match_needs_no_request() -> None:
    lookup, seen, _ = _lookup(lambda r: httpx2.Response(200, json=_record(SHA)))
    assert lookup.match({"SHA256": SHA}) is not None
    cached = lookup.cached_match({"SHA256": SHA}, "SHA256")
    assert cached is not None and cached.version_id == 6
    model = lookup.model(5, 86400)
    assert model is not None and model.name == "Style"
    assert len(seen) == 1


def test_a_files_only_answer_is_completed_with_its_version() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/api/sha256/"):
            files = _record(SHA)["model"]["version"]["files"]
            return httpx2.Response(200, json={"files": [{**files[0], "modelId": 5,
                                                         "modelVersionId": 6}]})  # fmt: skip
        assert request.url.params["modelVersionId"] == "6"
        return httpx2.Response(200, json=_record(SHA))

    lookup, seen, _ = _lookup(handler)
    match = lookup.match({"SHA256": SHA})
    assert match is not None and (match.model_name, match.version_name) == ("Style", "v1")
    assert seen == [f"/api/sha256/{SHA}", "/api/models/5?modelVersionId=6"]


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx2.Response(500, json={"error": "boom"}),
        lambda r: httpx2.Response(
            200, text="<html>Just a moment...</html>", headers={"Content-Type": "text/html"}
        ),
        lambda r: (_ for _ in ()).throw(httpx2.ConnectError("refused", request=r)),
    ],
)
def test_a_failure_raises_a_source_error_and_caches_nothing(
    answer: Callable[[httpx2.Request], httpx2.Response],
) -> None:
    lookup, _, cache = _lookup(answer)
    with pytest.raises(SourceError):
        lookup.match({"SHA256": SHA})
    assert cache.rows == {}


class _Fixed:
    """A stand-in first source answering ``match`` with a fixed value."""

    name = "civitai"

    def __init__(self, match: Match | None) -> None:
        self._match = match
        self.requests = 1
        self.cache_hits = 0

    def match(self, hashes: Any, *, refresh: bool = False) -> Match | None:
        return self._match

    def cached_match(self, hashes: Any, matched_by: str) -> Match | None:
        return None


def test_chained_lookup_asks_civarchive_only_on_a_miss_and_survives_its_failure() -> None:
    archive, seen, _ = _lookup(lambda r: httpx2.Response(200, json=_record(SHA)))
    found = archive.match({"SHA256": SHA})
    assert found is not None
    seen.clear()
    fresh, seen, _ = _lookup(lambda r: httpx2.Response(200, json=_record(SHA)))
    chained = ChainedLookup(_Fixed(found), [fresh])  # type: ignore[arg-type]
    assert chained.match({"SHA256": SHA}) is found
    assert seen == []  # Civitai knew it: CivArchive was not asked
    chained = ChainedLookup(_Fixed(None), [fresh])  # type: ignore[arg-type]
    hit = chained.match({"SHA256": SHA})
    assert hit is not None and hit.source == "civarchive"
    assert chained.requests == 2  # one each, counted together

    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    broken, _, _ = _lookup(down)
    chained = ChainedLookup(_Fixed(None), [broken])  # type: ignore[arg-type]
    assert chained.match({"SHA256": SHA}) is None  # Civitai's answer stands
    assert chained.fallback_errors and "civarchive" in chained.fallback_errors[0]
