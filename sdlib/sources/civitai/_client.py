"""Civitai REST API v1 client over an injected ``httpx2.Client``.

    with CivitaiClient.from_settings(load_settings()) as civitai:
        for model in civitai.search("dreamshaper", types=["Checkpoint"], limit=20):
            print(model.id, model.name)
        version = civitai.version(128713)
        target = civitai.resolve_download(version, format="SafeTensor")

HTTP statuses become sdlib errors in one place, ``raise_for_status`` (which callers pass to
the downloader for the download endpoint), and every API body is streamed, capped and
parsed with limits by ``get_json``; both live in ``_http``. Retries and token scoping live
in ``sdlib.http``; the paging guard in ``sdlib.sources.paging``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx2

from sdlib.errors import BadResponse, NotFound, UsageError
from sdlib.http import build_client
from sdlib.sources.civitai._choice import DownloadTarget, choose_file
from sdlib.sources.civitai._http import get_json
from sdlib.sources.civitai._models import (
    CivitaiFile,
    CivitaiImage,
    CivitaiModel,
    CivitaiVersion,
    RecommendedSettings,
    SearchPage,
)
from sdlib.sources.civitai._refs import CivitaiRef, download_url, parse_ref
from sdlib.sources.paging import PageGuard
from sdlib.sources.versions import early_access_active
from sdlib.taxonomy import CIVITAI_PERIODS, CIVITAI_SORTS

if TYPE_CHECKING:
    from sdlib.config import Settings

__all__ = ["PERIODS", "SORTS", "CivitaiClient"]

SORTS = CIVITAI_SORTS
PERIODS = CIVITAI_PERIODS


class CivitaiClient:
    """Civitai API v1 over ``client`` (which the caller owns unless built by ``from_settings``).

    ``base_url`` is the site origin (``https://civitai.com``, a mirror, or a local demo server).
    ``nsfw`` is the default for searches and example images (Civitai defaults to SFW only).
    """

    def __init__(
        self,
        client: httpx2.Client,
        *,
        base_url: str = "https://civitai.com",
        nsfw: bool = False,
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self.nsfw = nsfw
        self._owns_client = False

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx2.BaseTransport | None = None
    ) -> CivitaiClient:
        """A client with its own ``httpx2.Client`` from ``build_client`` (closed by ``close``)."""
        client = cls(
            build_client(settings, transport),
            base_url=settings.civitai.base_url,
            nsfw=settings.civitai.nsfw,
        )
        client._owns_client = True
        return client

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> CivitaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search -------------------------------------------------------------------------------

    def search_pages(
        self,
        query: str | None = None,
        *,
        types: Sequence[str] = (),
        base_models: Sequence[str] = (),
        sort: str | None = None,
        period: str | None = None,
        nsfw: bool | None = None,
        page_size: int = 100,
        tag: str | None = None,
        username: str | None = None,
        cursor: str | None = None,
        guard: PageGuard | None = None,
    ) -> Iterator[SearchPage]:
        """Every page of ``/api/v1/models``, following ``nextCursor`` until it is absent.

        Pages may be short or even empty while a cursor is still given (Civitai filters after
        paging); this yields them as they come. ``guard`` (a fresh ``PageGuard`` by default;
        pass one to keep counting across calls, as the TUI's "load more" does) ends the walk
        on a repeated cursor, a run of empty pages or a page budget: the last page then has
        no ``next_cursor`` and says why in ``stopped``.
        """
        if sort is not None and sort not in SORTS:
            raise UsageError(f"unknown sort {sort!r}; one of: {', '.join(SORTS)}")
        if period is not None and period not in PERIODS:
            raise UsageError(f"unknown period {period!r}; one of: {', '.join(PERIODS)}")
        if not 1 <= page_size <= 100:
            raise UsageError("page size must be between 1 and 100")
        params: list[tuple[str, str]] = [("limit", str(page_size))]
        if query:
            params.append(("query", query))
        params += [("types", t) for t in types]  # repeated, never comma-joined
        params += [("baseModels", b) for b in base_models]
        if sort:
            params.append(("sort", sort))
        if period:
            params.append(("period", period))
        if tag:
            params.append(("tag", tag))
        if username:
            params.append(("username", username))
        if nsfw if nsfw is not None else self.nsfw:
            params.append(("nsfw", "true"))
        guard = guard if guard is not None else PageGuard()
        while True:
            page_params = params + ([("cursor", cursor)] if cursor else [])
            page = SearchPage.from_api(self._get_json("/api/v1/models", page_params))
            follow = guard.follow(page.next_cursor, len(page.items), sent=cursor)
            if follow is None and page.next_cursor is not None:
                page = dataclasses.replace(page, next_cursor=None, stopped=guard.stopped)
            yield page
            if follow is None:
                return
            cursor = follow

    def search(
        self,
        query: str | None = None,
        *,
        types: Sequence[str] = (),
        base_models: Sequence[str] = (),
        sort: str | None = None,
        period: str | None = None,
        nsfw: bool | None = None,
        limit: int | None = None,
        tag: str | None = None,
        username: str | None = None,
        on_stop: Callable[[str], None] | None = None,
    ) -> Iterator[CivitaiModel]:
        """Models matching the filters, lazily, across pages; stop early by breaking.

        ``limit`` caps the number of models yielded (None: all of them). When the paging
        guard cuts the walk short, ``on_stop`` gets its one-line reason.
        """
        if limit is not None and limit <= 0:
            return
        page_size = 100 if limit is None else max(1, min(100, limit))
        count = 0
        seen: set[int] = set()
        for page in self.search_pages(
            query,
            types=types,
            base_models=base_models,
            sort=sort,
            period=period,
            nsfw=nsfw,
            page_size=page_size,
            tag=tag,
            username=username,
        ):
            if page.stopped and on_stop is not None:
                on_stop(page.stopped)
            for model in page.items:
                if model.id in seen:  # cursor bugs have repeated items across pages
                    continue
                seen.add(model.id)
                yield model
                count += 1
                if limit is not None and count >= limit:
                    return

    # -- lookups ------------------------------------------------------------------------------

    def model(self, model_id: int) -> CivitaiModel:
        return CivitaiModel.from_api(self._get_json(f"/api/v1/models/{int(model_id)}"))

    def version(self, version_id: int) -> CivitaiVersion:
        return CivitaiVersion.from_api(self._get_json(f"/api/v1/model-versions/{int(version_id)}"))

    def version_by_hash(self, hash: str) -> CivitaiVersion:
        """The version holding a file with this hash (SHA256, AutoV1/2/3, CRC32 or BLAKE3)."""
        value = hash.strip().upper()
        if not value or any(c not in "0123456789ABCDEF" for c in value):
            raise UsageError(f"not a hex hash: {hash!r}")
        if len(value) not in (8, 10, 12, 64):
            raise UsageError(
                f"a Civitai hash has 8 (AutoV1, CRC32), 10 (AutoV2), 12 (AutoV3) or 64 "
                f"(SHA256, BLAKE3) hex digits, not {len(value)}"
            )
        data = self._get_json(f"/api/v1/model-versions/by-hash/{value}")
        return CivitaiVersion.from_api(data)

    def images(
        self, version_id: int, *, limit: int = 50, nsfw: bool | None = None
    ) -> list[CivitaiImage]:
        """Example images of a version with their generation metadata (``withMeta``)."""
        params = [
            ("modelVersionId", str(int(version_id))),
            ("withMeta", "true"),
            ("limit", str(max(1, min(200, limit)))),
        ]
        if nsfw if nsfw is not None else self.nsfw:
            params.append(("nsfw", "X"))  # on /images a level name means "up to"
        data = self._get_json("/api/v1/images", params)
        items = data.get("items") if isinstance(data, dict) else None
        return [CivitaiImage.from_api(i) for i in items or [] if isinstance(i, dict)]

    def recommended_settings(
        self, version: CivitaiVersion | int, *, limit: int = 50
    ) -> RecommendedSettings:
        """CLIP skip, sampler, steps, CFG and size most example images agree on.

        Votes over the version's own preview metadata and its ``/images?withMeta`` gallery.
        """
        metas: list[Mapping[str, Any]] = []
        if isinstance(version, CivitaiVersion):
            metas += [i.meta for i in version.images if i.meta]
            version_id = version.id
        else:
            version_id = int(version)
        seen = {json.dumps(m, sort_keys=True, default=str) for m in metas}
        for image in self.images(version_id, limit=limit):
            if image.meta and json.dumps(image.meta, sort_keys=True, default=str) not in seen:
                metas.append(image.meta)
        return RecommendedSettings.from_metas(metas)

    def lookup(
        self, ref: CivitaiRef | str, *, available: bool = True
    ) -> tuple[CivitaiModel, CivitaiVersion]:
        """The model and the version a reference names. When it names none: the newest
        anyone can download (``CivitaiModel.newest_available``: by publication date,
        skipping versions still in early access; name one to ask for it anyway).
        ``available=False``: the newest of all, early access or not (what ``show`` shows).

        The version is the full ``/model-versions`` record (with ``air`` and image meta).
        """
        if isinstance(ref, str):
            ref = self.parse_ref(ref)
        if ref.version_id is not None:
            version = self.version(ref.version_id)
            model_id = version.model_id or ref.model_id
            if model_id is None:
                raise BadResponse(f"version {version.id} names no model")
            if ref.model_id is not None and ref.model_id != model_id:
                raise NotFound(f"version {ref.version_id} is not a version of model {ref.model_id}")
            return self.model(model_id), version
        assert ref.model_id is not None
        model = self.model(ref.model_id)
        # By publication date, never the creator's list order.
        latest = model.newest_available if available else model.latest
        if latest is None:
            raise NotFound(f"model {model.id} has no published versions")
        try:
            return model, self.version(latest.id)
        except NotFound:
            # /model-versions 404s a version not yet rated for NSFW (minutes after
            # publishing); the model's own record of it is still good.
            return model, latest

    def parse_ref(self, text: str) -> CivitaiRef:
        """``refs.parse_ref`` that also accepts URLs on this client's own host."""
        netloc = httpx2.URL(self.base_url).netloc.decode("ascii")
        return parse_ref(text, extra_hosts=[netloc])

    def resolve_download(
        self,
        version: CivitaiVersion | int,
        *,
        type: str | None = None,
        format: str | None = None,
        size: str | None = None,
        fp: str | None = None,
        file_id: int | None = None,
    ) -> DownloadTarget:
        """The exact file (and URL) the download endpoint would serve for these choices.

        Mirrors Civitai's own selection (``choose_file``); the URL pins it with ``fileId``
        so the server cannot pick another one.
        """
        if not isinstance(version, CivitaiVersion):
            version = self.version(version)
        if not version.files:
            raise NotFound(
                f"version {version.id} has no downloadable files (archived, or not yet available)"
            )
        chosen = choose_file(
            version.files, type=type, format=format, size=size, fp=fp, file_id=file_id
        )
        if chosen is None:
            wanted = ", ".join(
                f"{k}={v}"
                for k, v in (
                    ("type", type), ("format", format), ("size", size), ("fp", fp),
                    ("file id", file_id),
                )
                if v is not None
            )  # fmt: skip
            have = "; ".join(_describe(f) for f in version.files)
            raise NotFound(f"version {version.id} has no file with {wanted} (has: {have})")
        if chosen.id <= 0 or version.id <= 0:
            raise BadResponse(
                f"Civitai described version {version.id or '?'} or its file {chosen.name!r} "
                "without a usable id (not a positive integer); not downloading"
            )
        url = download_url(self.base_url, version.id, chosen.id)
        return DownloadTarget(
            url=url,
            file_name=chosen.name,
            size=chosen.size,
            hashes=dict(chosen.hashes),
            file_id=chosen.id,
            version_id=version.id,
            model_id=version.model_id,
            model_name=version.model_name,
            version_name=version.name,
            model_type=version.model_type,
            base_model=version.base_model,
            file_type=chosen.type,
            format=chosen.format,
            weights=chosen.weights,
            fp=chosen.fp,
            primary=chosen.primary,
            pickle_scan=chosen.pickle_scan,
            early_access_ends=version.early_access_ends
            if early_access_active(version.early_access_ends)
            else None,
            air=version.air,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _get_json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        return get_json(self._client, self.base_url + path, params)


def _describe(f: CivitaiFile) -> str:
    bits = [f.type, f.format, f.weights, f.fp]
    return f"{f.id} " + "/".join(b for b in bits if b)
