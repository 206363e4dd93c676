"""Civitai as a :class:`sdlib.lookup.Lookup`: identity by hash, models, previews, cached.

The one place that asks Civitai about files the user already has (``identify`` and
``updates`` call it through the protocol). SHA256s are asked for 100 at a time
(``POST /model-versions/by-hash``); a server without that endpoint is asked hash by hash
(``GET /model-versions/by-hash/{hash}``); models 50 at a time (``/models?ids=``, across
cursor pages under the paging guard), the ids a batch did not return one by one.

Answers, "not found" included, are kept in an :class:`~sdlib.lookup.AnswerCache` under
keys that name the server (``https://civitai.com|by-hash:<SHA256>``): answers of a demo or
mirror server never stand in for another's. A failed request caches nothing, so an error
never replaces a good answer. Requests are paced by a shared :class:`RateLimiter`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sdlib.errors import Gone, NotFound, SourceError
from sdlib.lookup import MATCH_ORDER, Match, ModelAnswer, ModelFacts, ModelsReport
from sdlib.sources.civitai._facts import (
    compact_model,
    file_matching,
    file_with_sha256,
    match_from_version,
    model_facts,
)
from sdlib.sources.civitai._http import get_json
from sdlib.sources.civitai._previews import fetch_preview
from sdlib.sources.paging import MAX_EMPTY_PAGES, PageGuard, normalise_cursor

if TYPE_CHECKING:
    import httpx2

    from sdlib.lookup import AnswerCache

__all__ = ["BULK", "MODEL_BATCH", "CivitaiLookup", "RateLimiter"]

DAY = 86_400.0
#: SHA256s per bulk request (Civitai's limit for POST /model-versions/by-hash).
BULK = 100
#: Model ids per ``/models?ids=`` request (a long list is what makes Civitai answer 400).
MODEL_BATCH = 50


class RateLimiter:
    """At most ``rate`` requests per second across threads (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            time.sleep(at - now)


class CivitaiLookup:
    """Civitai's API at ``base_url`` over ``http``, answers kept in ``cache``.

    ``found_ttl``/``missing_ttl``: how long a found version and "Civitai does not know this
    hash" stay good. Thread-safe (counters are approximate under contention).
    """

    name = "civitai"

    def __init__(
        self,
        http: httpx2.Client,
        base_url: str,
        cache: AnswerCache,
        *,
        rate: float = 4.0,
        found_ttl: float = 30 * DAY,
        missing_ttl: float = 7 * DAY,
        model_batch: int = MODEL_BATCH,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        self.limiter = RateLimiter(rate)
        self.found_ttl = found_ttl
        self.missing_ttl = missing_ttl
        self.model_batch = max(1, model_batch)
        self.requests = 0
        self.cache_hits = 0
        #: Set once the server turned the bulk request down: ask hash by hash from then on.
        self._bulk_off = False
        #: Keys answered during this lookup's life: good even when asked with ``refresh``.
        self._asked_now: set[str] = set()

    # -- requests and the cache ---------------------------------------------------------------

    def key(self, name: str) -> str:
        """The cache key of ``name`` (``by-hash:<H>``, ``model:<id>``) on this server."""
        return f"{self.base_url}|{name}"

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        self.limiter.wait()
        self.requests += 1
        return get_json(self.http, self.base_url + path, params)

    def _post(self, path: str, payload: Any) -> Any:
        """POST a JSON body (never retried: only idempotent requests are)."""
        self.limiter.wait()
        self.requests += 1
        # A fresh connection that is not reused: a server that refuses the method may
        # leave the body unread, and the next request on the socket would be garbage.
        return get_json(
            self.http, self.base_url + path, method="POST", json_body=payload,
            headers={"Connection": "close"},
        )  # fmt: skip

    def _fresh(self, key: str, refresh: bool) -> tuple[int, Any, float] | None:
        """A cached answer still good for its kind (found or not found), unless ``refresh``
        (answers fetched during this lookup's life count even then)."""
        if refresh and key not in self._asked_now:
            return None
        hit = self.cache.remote_get(key, None)
        if hit is None:
            return None
        ttl = self.found_ttl if hit[0] == 200 else self.missing_ttl
        return hit if time.time() - hit[2] < ttl else None

    def _put(self, key: str, status: int, body: Any) -> None:
        self.cache.remote_put(key, status, body)
        self._asked_now.add(key)

    # -- identity by hash ---------------------------------------------------------------------

    def prefetch(self, sha256s: Sequence[str], *, refresh: bool = False) -> None:
        """Ask for up to ``BULK`` SHA256s a request and cache every answer, found or not.
        A server without the bulk endpoint answers an error: then hashes are asked for one
        by one in :meth:`match`."""
        wanted = sorted({
            s.upper() for s in sha256s
            if len(s) == 64 and not self._fresh(self.key(f"by-hash:{s.upper()}"), refresh)
        })  # fmt: skip
        for start in range(0, len(wanted), BULK):
            if self._bulk_off:
                return
            self._bulk(wanted[start : start + BULK])

    def _bulk(self, wanted: list[str]) -> None:
        if len(wanted) < 2:
            return
        try:
            data = self._post("/api/v1/model-versions/by-hash", wanted)
        except SourceError:
            self._bulk_off = True  # not supported here (or failing): ask one by one
            return
        if not isinstance(data, list):
            self._bulk_off = True
            return
        found: dict[str, dict[str, Any]] = {}
        for version in data:
            for f in version.get("files") or () if isinstance(version, dict) else ():
                hashes = f.get("hashes") if isinstance(f, dict) else None
                sha = hashes.get("SHA256") if isinstance(hashes, dict) else None
                if isinstance(sha, str) and sha.upper() in wanted:
                    found.setdefault(sha.upper(), version)  # the first, as by-hash does
        for sha in wanted:
            body = found.get(sha)
            self._put(self.key(f"by-hash:{sha}"), 200 if body else 404, body)

    def match(self, hashes: Mapping[str, str], *, refresh: bool = False) -> Match | None:
        """Try SHA256, then AutoV3, then AutoV2 (``by-hash`` matches any stored hash)."""
        for name in MATCH_ORDER:
            value = (hashes.get(name) or "").upper()
            if not value:
                continue
            key = self.key(f"by-hash:{value}")
            hit = self._fresh(key, refresh)
            if hit is not None:
                self.cache_hits += 1
                status, body, at = hit
            else:
                status, body = self._by_hash(key, value)
                stored = self.cache.remote_get(key, None)  # the answer's time, as cached
                at = stored[2] if stored is not None else time.time()
            if status == 200 and isinstance(body, dict):
                ours, file = file_matching(body, hashes, name)
                if ours:
                    return match_from_version(self.base_url, body, name, file, at)
        return None

    def _by_hash(self, key: str, value: str) -> tuple[int, Any]:
        """Ask now: (200, body) or (404, None), both cached; other failures raise."""
        try:
            body = self._get(f"/api/v1/model-versions/by-hash/{value}")
        except (NotFound, Gone):
            self._put(key, 404, None)
            return 404, None
        self._put(key, 200, body)
        return 200, body

    def cached_match(self, hashes: Mapping[str, str], matched_by: str) -> Match | None:
        value = (hashes.get(matched_by) or hashes.get("SHA256") or "").upper()
        hit = self.cache.remote_get(self.key(f"by-hash:{value}"), None) if value else None
        if hit is None or hit[0] != 200 or not isinstance(hit[1], dict):
            return None
        body = hit[1]
        file = file_with_sha256(body, hashes.get("SHA256"))
        return match_from_version(self.base_url, body, matched_by, file, hit[2])

    # -- models -------------------------------------------------------------------------------

    def model(self, model_id: int, ttl: float) -> ModelFacts | None:
        key = self.key(f"model:{int(model_id)}")
        hit = self.cache.remote_get(key, ttl)
        if hit is not None:
            self.cache_hits += 1
            return model_facts(hit[1]) if hit[0] == 200 and isinstance(hit[1], dict) else None
        try:
            raw = self._get(f"/api/v1/models/{int(model_id)}")
        except (NotFound, Gone):
            self._put(key, 404, None)
            return None
        return model_facts(self._store_model(raw))

    def _store_model(self, raw: Any) -> dict[str, Any]:
        compact = compact_model(raw)
        if isinstance(compact.get("id"), int):
            self._put(self.key(f"model:{compact['id']}"), 200, compact)
        return compact

    def models(
        self,
        ids: Sequence[int],
        *,
        ttl: float,
        refresh: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ModelsReport:
        """Cached answers first; the rest ``model_batch`` ids a request; ids a batch did
        not return (archived, filtered) one by one. A failed request costs only its own
        models: they get the error, or their last cached answer marked stale."""
        ids = sorted(set(ids))
        report = ModelsReport()
        missing = []
        for model_id in ids:
            hit = None if refresh else self.cache.remote_get(self.key(f"model:{model_id}"), ttl)
            if hit is not None:
                self.cache_hits += 1
                report.answers[model_id] = _answer(hit[0], hit[1])
            else:
                missing.append(model_id)
        done = len(ids) - len(missing)
        stops: list[str] = []
        for start in range(0, len(missing), self.model_batch):
            chunk = missing[start : start + self.model_batch]
            self._models_batch(chunk, report, stops.append)
            done += len(chunk)
            if on_progress:
                on_progress(done, len(ids))
        for model_id in report.errors:
            old = self.cache.remote_get(self.key(f"model:{model_id}"), None)
            if old is not None:
                report.answers[model_id] = _answer(old[0], old[1], stale=True)
        report.notes = [f"update check {n}; missing models were asked for one by one"
                        for n in stops]  # fmt: skip
        return report

    def _models_batch(
        self, chunk: list[int], report: ModelsReport, on_stop: Callable[[str], None]
    ) -> None:
        failed: str | None = None
        try:
            for raw in self._pages(chunk, on_stop):
                stored = self._store_model(raw)
                if stored["id"] in chunk:
                    report.answers[stored["id"]] = _answer(200, stored)
        except SourceError as exc:
            failed = exc.message
        for model_id in chunk:
            if model_id in report.answers:
                continue
            if failed is not None and report.errors:
                report.errors[model_id] = failed  # the site is failing: not id by id
                continue
            try:  # not in the list (archived, hidden), or the batch failed: ask alone
                report.answers[model_id] = ModelAnswer(self._model_now(model_id))
            except SourceError as exc:
                report.errors[model_id] = exc.message
                failed = failed or exc.message

    def _model_now(self, model_id: int) -> ModelFacts | None:
        try:
            raw = self._get(f"/api/v1/models/{int(model_id)}")
        except (NotFound, Gone):
            self._put(self.key(f"model:{int(model_id)}"), 404, None)
            return None
        return model_facts(self._store_model(raw))

    def _pages(self, ids: Sequence[int], on_stop: Callable[[str], None]) -> Iterable[Any]:
        """Every item ``/models?ids=`` returns for ``ids``, across cursor pages (``PageGuard``
        ends a walk that repeats cursors or goes on with empty pages; ``on_stop`` hears why)."""
        params = [("ids", ",".join(str(i) for i in ids)), ("limit", "100"), ("nsfw", "true")]
        # Never more pages than the ids could fill, plus room for Civitai's empty pages.
        guard = PageGuard(max_pages=len(ids) // 100 + 1 + MAX_EMPTY_PAGES)
        cursor: str | None = None
        while True:
            page = self._get("/api/v1/models", params + ([("cursor", cursor)] if cursor else []))
            raw = page.get("items") if isinstance(page, dict) else None
            items = [i for i in raw or () if isinstance(i, dict)] if isinstance(raw, list) else []
            yield from items
            meta = page.get("metadata") if isinstance(page, dict) else None
            offered = normalise_cursor(meta.get("nextCursor")) if isinstance(meta, dict) else None
            cursor = guard.follow(offered, len(items), sent=cursor)
            if cursor is None:
                if guard.stopped:
                    on_stop(guard.stopped)
                return

    # -- previews -----------------------------------------------------------------------------

    def preview(self, url: str) -> bytes | None:
        """A preview-sized image, the body capped while streaming (``fetch_preview``)."""
        self.limiter.wait()
        return fetch_preview(self.http, url)


def _answer(status: int, body: Any, *, stale: bool = False) -> ModelAnswer:
    facts = model_facts(body) if status == 200 and isinstance(body, dict) else None
    return ModelAnswer(facts, stale=stale)
