"""Civitai requests for ``identify`` and ``updates``: raw JSON, cached in the index, paced.

The raw JSON matters: ``.civitai.info`` must hold exactly what Civitai answered, so these
helpers fetch through the sources layer's public pieces (``get_json``: statuses mapped, the
body capped while streaming and parsed with depth and number limits; ``fetch_preview`` for
images) and parse with ``CivitaiVersion.from_api`` only where a typed value is needed. No
httpx exception is caught here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdlib.errors import Gone, NotFound

if TYPE_CHECKING:
    import httpx

    from sdlib.library.index import Index


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


@dataclass
class Remote:
    """Civitai's API at ``base_url`` over ``http``, with the index as a cache."""

    http: httpx.Client
    base_url: str
    index: Index
    limiter: RateLimiter
    requests: int = 0
    cache_hits: int = 0

    def get_json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        """The parsed answer (streamed, capped and bounded by ``sources.civitai.get_json``)."""
        from sdlib.sources.civitai import get_json

        self.limiter.wait()
        self.requests += 1
        return get_json(self.http, self.base_url.rstrip("/") + path, params)

    def post_json(self, path: str, payload: Any) -> Any:
        """POST a JSON body (never retried: only idempotent requests are)."""
        from sdlib.sources.civitai import get_json

        self.limiter.wait()
        self.requests += 1
        # A fresh connection that is not reused: a server that refuses the method may
        # leave the body unread, and the next request on the socket would be garbage.
        return get_json(
            self.http, self.base_url.rstrip("/") + path, method="POST", json_body=payload,
            headers={"Connection": "close"},
        )  # fmt: skip

    def fetch(self, key: str, path: str) -> tuple[int, Any]:
        """Ask Civitai now: (200, body) or (404, None); both are cached under ``key``.

        A 404 (or 410) is an answer and is cached too; any other failure raises and caches
        nothing, so an error never replaces a good answer.
        """
        try:
            body = self.get_json(path)
        except (NotFound, Gone):
            self.index.remote_put(key, 404, None)
            return 404, None
        self.index.remote_put(key, 200, body)
        return 200, body

    def cached(self, key: str, path: str, ttl: float | None) -> tuple[int, Any]:
        """``fetch``, unless the cache holds an answer younger than ``ttl`` seconds."""
        hit = self.index.remote_get(key, ttl)
        if hit is not None:
            self.cache_hits += 1
            return hit[0], hit[1]
        return self.fetch(key, path)

    def model(self, model_id: int, ttl: float | None) -> tuple[int, dict[str, Any] | None]:
        """A model's ``compact_model`` summary (cached under ``model:<id>``)."""
        key = f"model:{model_id}"
        hit = self.index.remote_get(key, ttl)
        if hit is not None:
            self.cache_hits += 1
            return hit[0], hit[1]
        try:
            raw = self.get_json(f"/api/v1/models/{int(model_id)}")
        except (NotFound, Gone):
            self.index.remote_put(key, 404, None)
            return 404, None
        return 200, self.store_model(raw)

    def store_model(self, raw: Any) -> dict[str, Any]:
        compact = compact_model(raw)
        self.index.remote_put(f"model:{compact['id']}", 200, compact)
        return compact

    def stale(self, key: str) -> tuple[int, Any] | None:
        """Whatever the cache holds for ``key``, however old."""
        hit = self.index.remote_get(key, None)
        return (hit[0], hit[1]) if hit else None

    def image(self, url: str) -> bytes | None:
        """An example image's bytes, or None if it cannot be had (never an error).

        ``fetch_preview``: a preview-sized image, the body capped while streaming."""
        from sdlib.sources.civitai import fetch_preview

        self.limiter.wait()
        return fetch_preview(self.http, url)


def image_is_nsfw(image: Any) -> bool:
    """Civitai's one NSFW rule for an image record (a bool, the 2023 enum string, the int
    bitmask in models and versions, the level name in /images): the same as the TUI's."""
    from sdlib.sources.civitai import CivitaiImage

    return isinstance(image, dict) and CivitaiImage.from_api(image).nsfw


def compact_model(raw: Any) -> dict[str, Any]:
    """What sdlib keeps of a ``/models`` item: enough for updates and sidecars."""
    data = raw if isinstance(raw, dict) else {}
    versions = []
    for v in data.get("modelVersions") or ():
        if not isinstance(v, dict):
            continue
        files = [
            {"id": f.get("id"), "sha256": _sha256(f)}
            for f in v.get("files") or ()
            if isinstance(f, dict)
        ]
        versions.append({
            "id": v.get("id"), "name": v.get("name"), "baseModel": v.get("baseModel"),
            "publishedAt": v.get("publishedAt") or v.get("createdAt"),
            "createdAt": v.get("createdAt"), "files": files,
        })  # fmt: skip
    creator: dict[str, Any] = data["creator"] if isinstance(data.get("creator"), dict) else {}
    tags = [t.get("name") if isinstance(t, dict) else t for t in data.get("tags") or ()]
    return {
        "id": data.get("id"), "name": data.get("name"), "type": data.get("type"),
        "mode": data.get("mode"), "description": data.get("description"), "versions": versions,
        # For Stability Matrix's .cm-info.json:
        "nsfw": data.get("nsfw"), "tags": [t for t in tags if isinstance(t, str)],
        "creator": {"username": creator.get("username")},
    }  # fmt: skip


def _sha256(f: dict[str, Any]) -> str | None:
    hashes = f.get("hashes")
    if not isinstance(hashes, dict):
        return None
    for k, v in hashes.items():
        if str(k).lower() == "sha256" and isinstance(v, str):
            return v.upper()
    return None
