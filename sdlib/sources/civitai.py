"""Civitai REST API v1 client over an injected ``httpx.Client``.

    with CivitaiClient.from_settings(load_settings()) as civitai:
        for model in civitai.search("dreamshaper", types=["Checkpoint"], limit=20):
            print(model.id, model.name)
        version = civitai.version(128713)
        target = civitai.resolve_download(version, format="SafeTensor")

HTTP statuses become sdlib errors in one place, ``raise_for_status`` (also used by the
downloader on the download endpoint): 401 -> AuthRequired, 403 -> AccessDenied (with the
early-access end date), 404 -> NotFound, 410 -> Gone, 429 -> RateLimited, other 4xx/5xx ->
SourceError, HTML or non-JSON where JSON was due -> BadResponse. Retries and token scoping
live in ``sdlib.sources.http``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    BadResponse,
    Gone,
    NotFound,
    RateLimited,
    SourceError,
    UsageError,
)
from sdlib.sources._civitai_models import (
    CivitaiFile,
    CivitaiImage,
    CivitaiModel,
    CivitaiVersion,
    DownloadTarget,
    RecommendedSettings,
    SearchPage,
    choose_file,
)
from sdlib.sources.http import build_client, network_errors, parse_retry_after
from sdlib.sources.refs import CivitaiRef, parse_ref
from sdlib.sources.versions import early_access_active
from sdlib.taxonomy import CIVITAI_PERIODS, CIVITAI_SORTS

if TYPE_CHECKING:
    from sdlib.config import Settings

__all__ = [
    "PERIODS",
    "SORTS",
    "CivitaiClient",
    "CivitaiFile",
    "CivitaiImage",
    "CivitaiModel",
    "CivitaiVersion",
    "DownloadTarget",
    "RecommendedSettings",
    "SearchPage",
    "choose_file",
    "raise_for_status",
]

SORTS = CIVITAI_SORTS
PERIODS = CIVITAI_PERIODS

#: Bodies larger than this are not an API answer (the largest /models page is ~2 MB).
_MAX_JSON = 32 << 20
_TOKEN_HINT = "set CIVITAI_TOKEN or run `sdlib config set-token`"


class CivitaiClient:
    """Civitai API v1 over ``client`` (which the caller owns unless built by ``from_settings``).

    ``base_url`` is the site origin (``https://civitai.com``, a mirror, or a local demo server).
    ``nsfw`` is the default for searches and example images (Civitai defaults to SFW only).
    """

    def __init__(
        self,
        client: httpx.Client,
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
        cls, settings: Settings, transport: httpx.BaseTransport | None = None
    ) -> CivitaiClient:
        """A client with its own ``httpx.Client`` from ``build_client`` (closed by ``close``)."""
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
    ) -> Iterator[SearchPage]:
        """Every page of ``/api/v1/models``, following ``nextCursor`` until it is absent.

        Pages may be short or even empty while a cursor is still given (Civitai filters after
        paging); this yields them as they come. A repeated cursor ends the walk.
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
        seen: set[str] = set()
        while True:
            page_params = params + ([("cursor", cursor)] if cursor else [])
            page = SearchPage.from_api(self._get_json("/api/v1/models", page_params))
            yield page
            cursor = page.next_cursor
            if cursor is None or cursor in seen:
                return
            seen.add(cursor)

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
    ) -> Iterator[CivitaiModel]:
        """Models matching the filters, lazily, across pages; stop early by breaking.

        ``limit`` caps the number of models yielded (None: all of them).
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

    def lookup(self, ref: CivitaiRef | str) -> tuple[CivitaiModel, CivitaiVersion]:
        """The model and the version a reference names (the newest when it names none:
        ``CivitaiModel.latest``, by publication date).

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
        latest = model.latest  # by publication date, not the creator's list order
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
        netloc = httpx.URL(self.base_url).netloc.decode("ascii")
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
        url = f"{self.base_url}/api/download/models/{version.id}?fileId={chosen.id}"
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
        url = self.base_url + path
        with network_errors(url):
            response = self._client.get(url, params=list(params))
        raise_for_status(response)
        return parse_json(response)


def _describe(f: CivitaiFile) -> str:
    bits = [f.type, f.format, f.weights, f.fp]
    return f"{f.id} " + "/".join(b for b in bits if b)


def _body(response: httpx.Response) -> bytes:
    with network_errors(response.request.url if _has_request(response) else None):
        if not response.is_stream_consumed:
            # Error bodies are small; read at most a bounded prefix of a streamed one.
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                total += len(chunk)
                if total >= _MAX_JSON:
                    break
            response.close()
            return b"".join(chunks)[:_MAX_JSON]
        return response.content[:_MAX_JSON]


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018
    except RuntimeError:
        return False
    return True


def _looks_html(response: httpx.Response, body: bytes) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    head = body.lstrip()[:64].lower()
    return "html" in ctype or head.startswith((b"<!doctype", b"<html", b"<"))


def parse_json(response: httpx.Response) -> Any:
    """The JSON body of a successful response, or ``BadResponse`` explaining what came."""
    url = str(response.request.url) if _has_request(response) else None
    body = _body(response)
    if _looks_html(response, body):
        raise BadResponse(
            f"{_host(url)} answered an HTML page instead of JSON (is civitai.base_url an API "
            "host? a proxy or captive portal in the way?)",
            url=url,
            status=response.status_code,
        )
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadResponse(
            f"{_host(url)} answered something that is not JSON "
            f"({response.headers.get('content-type') or 'no content type'})",
            url=url,
            status=response.status_code,
        ) from None


def _host(url: str | None) -> str:
    return httpx.URL(url).host if url else "the server"


def raise_for_status(response: httpx.Response) -> None:
    """Raise the sdlib error for a failed Civitai response; return for 2xx/3xx.

    Works on streamed responses too (it reads a bounded error body). The messages say what
    to do: log in / set a token, wait for early access, check the id.
    """
    status = response.status_code
    if status < 400:
        return
    url = str(response.request.url) if _has_request(response) else None
    body = _body(response)
    html = _looks_html(response, body)
    error, message, deadline = _error_fields(body)
    detail = message or error
    if html and status not in (401, 403, 404, 410, 429):
        raise BadResponse(
            f"{_host(url)} answered HTTP {status} with an HTML page instead of JSON "
            "(Civitai or a proxy in the way is having trouble; try again later)",
            url=url,
            status=status,
        )
    what = _what(url)
    if status == 401:
        raise AuthRequired(
            f"{what} needs a logged-in Civitai account"
            + (f" ({detail})" if detail and detail != "Unauthorized" else "")
            + f": {_TOKEN_HINT}",
            url=url,
            status=status,
        )
    if status == 403:
        early = deadline is not None or (error or "").lower() == "early access"
        if early:
            when = f" until {deadline}" if deadline else ""
            raise AccessDenied(
                f"{what} is in Early Access{when}; it can be downloaded once early access "
                "ends, or bought with Buzz on civitai.com",
                url=url,
                status=status,
                early_access_ends=deadline,
            )
        raise AccessDenied(
            f"{what}: access denied"
            + (f" ({detail})" if detail else "")
            + " (a private model, or your token lacks access)",
            url=url,
            status=status,
        )
    if status == 404:
        raise NotFound(f"{what} not found" + (f" ({detail})" if detail else ""), url=url,
                       status=status)  # fmt: skip
    if status == 410:
        raise Gone(
            f"{what} is archived or taken down and can no longer be downloaded"
            + (f" ({detail})" if detail else ""),
            url=url,
            status=status,
        )
    if status == 429:
        retry = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimited(
            "Civitai is rate limiting us"
            + (f" ({detail})" if detail else "")
            + "; wait a while and try again",
            url=url,
            status=status,
            retry_after=retry,
        )
    if status == 400:
        raise SourceError(
            f"Civitai rejected the request for {what}: {detail or 'bad request'}",
            url=url,
            status=status,
        )
    raise SourceError(
        f"Civitai answered HTTP {status} for {what}" + (f": {detail}" if detail else ""),
        url=url,
        status=status,
    )


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(error, message, deadline) from any of Civitai's error body shapes."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        text = body.decode("utf-8", "replace").strip()
        if text and not text.startswith("<") and len(text) < 300:
            return None, text.splitlines()[0], None  # plain text (browser-UA errors)
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, dict):  # {"error": {"name": "ZodError", "message": "[...]"}}
        error = _zod_message(error)
    message = data.get("message")
    deadline = data.get("deadline")
    return (
        error if isinstance(error, str) else None,
        message if isinstance(message, str) else None,
        deadline if isinstance(deadline, str) else None,
    )


def _zod_message(error: Mapping[str, Any]) -> str | None:
    raw = error.get("message")
    if not isinstance(raw, str):
        return None
    try:
        issues = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(issues, list):
        parts = []
        for issue in issues:
            if isinstance(issue, dict):
                path = ".".join(str(p) for p in issue.get("path", []))
                parts.append(
                    f"{path}: {issue.get('message')}" if path else str(issue.get("message"))
                )
        return "; ".join(parts) or raw
    return raw


def _what(url: str | None) -> str:
    """'model 4384', 'version 128713', 'download of version 128713'... from the request path."""
    if not url:
        return "the resource"
    parts = [p for p in httpx.URL(url).path.split("/") if p]
    if parts[:3] == ["api", "download", "models"] and len(parts) > 3:
        return f"the download of version {parts[3]}"
    if parts[:3] == ["api", "v1", "models"] and len(parts) > 3:
        return f"model {parts[3]}"
    if parts[:4] == ["api", "v1", "model-versions", "by-hash"] and len(parts) > 4:
        return f"a version with hash {parts[4]}"
    if parts[:3] == ["api", "v1", "model-versions"] and len(parts) > 3:
        return f"version {parts[3]}"
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        return {"models": "the model search", "images": "the example images"}.get(
            parts[2], f"Civitai {parts[2]}"
        )
    return httpx.URL(url).path or "the resource"
