"""Civitai's HTTP answers as sdlib values or errors: the one place statuses are mapped.

``get_json`` makes one API request with the body streamed and capped (``MAX_JSON``) and the
JSON parsed with depth and number limits (``sdlib.http``). ``raise_for_status``
turns statuses into sdlib errors (also used by the downloader on the download endpoint):
401 -> AuthRequired, 403 -> AccessDenied (with the early-access end date), 404 -> NotFound,
410 -> Gone, 429 -> RateLimited, other 4xx/5xx -> SourceError; a CDN's browser challenge
(Cloudflare "Just a moment...") at any status, HTML where JSON was due, an oversized or
hostile body -> BadResponse. Every message is one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx2

from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    BadResponse,
    Gone,
    NotFound,
    RateLimited,
    SourceError,
)
from sdlib.http import (
    HostileJSON,
    challenge_of,
    loads_bounded,
    network_errors,
    parse_retry_after,
    read_capped,
)

__all__ = ["MAX_JSON", "get_json", "parse_json", "raise_for_status"]

#: Bodies larger than this are not an API answer (the largest /models page is ~2 MB).
MAX_JSON = 32 << 20
#: Error bodies are a line of JSON or text; only a prefix is read.
_MAX_ERROR = 64 << 10
_TOKEN_HINT = "set CIVITAI_TOKEN or run `sdlib config set-token`"


def get_json(
    client: httpx2.Client,
    url: str,
    params: Sequence[tuple[str, str]] = (),
    *,
    method: str = "GET",
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """One API request: statuses mapped (``raise_for_status``), the body streamed and capped
    at ``MAX_JSON`` bytes, and parsed with depth and number limits (``parse_json``)."""
    with (
        network_errors(url),
        client.stream(
            method, url, params=list(params) or None, json=json_body, headers=headers
        ) as response,
    ):
        raise_for_status(response)
        return parse_json(response)


def _body(response: httpx2.Response, limit: int = _MAX_ERROR) -> tuple[bytes, bool]:
    with network_errors(response.request.url if _has_request(response) else None):
        return read_capped(response, limit)


def _has_request(response: httpx2.Response) -> bool:
    try:
        response.request  # noqa: B018
    except RuntimeError:
        return False
    return True


def _looks_html(response: httpx2.Response, body: bytes) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    head = body.lstrip()[:64].lower()
    return "html" in ctype or head.startswith((b"<!doctype", b"<html", b"<"))


def _challenge_error(response: httpx2.Response, body: bytes, url: str | None) -> BadResponse | None:
    """A CDN's browser challenge (Cloudflare "Just a moment..."), which no client can pass."""
    who = challenge_of(response, body)
    if who is None:
        return None
    return BadResponse(
        f'{_host(url)} served a browser challenge from {who} (an HTML "Just a moment..." '
        f"page, HTTP {response.status_code}) instead of answering; sdlib cannot pass it: try "
        "again later or from another network",
        url=url,
        status=response.status_code,
    )


def parse_json(response: httpx2.Response) -> Any:
    """The JSON body of a successful response, or ``BadResponse`` explaining what came.

    The body is read while streaming and capped at ``MAX_JSON`` bytes (gzip decoded up to the
    cap only); the JSON is parsed with ``loads_bounded``'s depth and number limits.
    """
    url = str(response.request.url) if _has_request(response) else None
    body, over = _body(response, MAX_JSON)
    challenge = _challenge_error(response, body, url)
    if challenge is not None:
        raise challenge
    if _looks_html(response, body):
        raise BadResponse(
            f"{_host(url)} answered an HTML page instead of JSON (is civitai.base_url an API "
            "host? a proxy or captive portal in the way?)",
            url=url,
            status=response.status_code,
        )
    if over:
        raise BadResponse(
            f"{_host(url)} sent an answer larger than {MAX_JSON >> 20} MiB, which is not an "
            "API answer; stopped reading it",
            url=url,
            status=response.status_code,
        )
    try:
        return loads_bounded(body)
    except HostileJSON as exc:
        raise BadResponse(
            f"{_host(url)} sent JSON sdlib will not read: {exc}", url=url,
            status=response.status_code,
        ) from None  # fmt: skip
    except (UnicodeDecodeError, ValueError):  # malformed JSON
        raise BadResponse(
            f"{_host(url)} answered something that is not JSON "
            f"({response.headers.get('content-type') or 'no content type'})",
            url=url,
            status=response.status_code,
        ) from None


def _host(url: str | None) -> str:
    return httpx2.URL(url).host if url else "the server"


def raise_for_status(response: httpx2.Response) -> None:
    """Raise the sdlib error for a failed Civitai response; return for 2xx/3xx.

    Works on streamed responses too (it reads a bounded error body). The messages say what
    to do: log in / set a token, wait for early access, check the id.
    """
    status = response.status_code
    if status < 400:
        return
    url = str(response.request.url) if _has_request(response) else None
    body, _ = _body(response)
    challenge = _challenge_error(response, body, url)
    if challenge is not None:
        raise challenge  # before 403/503: a CDN wall is not "access denied"
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
        data = loads_bounded(body)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError, HostileJSON
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
    return _clip(error), _clip(message), _clip(deadline)


def _clip(value: Any) -> str | None:
    """A server's string as part of a one-line message: first line, at most 300 chars."""
    if not isinstance(value, str):
        return None
    lines = value.strip().splitlines()
    text = lines[0] if lines else ""
    return (text[:297] + "...") if len(text) > 300 else (text or None)


def _zod_message(error: Mapping[str, Any]) -> str | None:
    raw = error.get("message")
    if not isinstance(raw, str):
        return None
    try:
        issues = loads_bounded(raw)
    except ValueError:  # not JSON, or hostile JSON
        return raw[:300]
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
    parts = [p for p in httpx2.URL(url).path.split("/") if p]
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
    return httpx2.URL(url).path or "the resource"
