"""An HTTP status as an sdlib error, for servers whose error bodies sdlib does not know.

The download engine's default: a storage host, a mirror or any plain URL answers 401, 404
or 429, and the user gets the exit code that status means (DESIGN.md: 5 not found, 6
authentication or access, 7 network) with one line naming the host and the status.
Nothing here knows a source: Civitai's mapper (``sdlib.sources.civitai.raise_for_status``)
reads its JSON error bodies for early access, token hints and deadlines, and callers that
download from Civitai pass it in ``DownloadOptions.raise_for_status``.

The body is never read (a failing server's page says nothing this mapping needs), and the
message never carries the URL's query, where signed storage URLs keep their signature.
"""

from __future__ import annotations

import httpx2

from sdlib.errors import AccessDenied, AuthRequired, Gone, NotFound, RateLimited, SourceError
from sdlib.http._client import parse_retry_after

__all__ = ["raise_for_status"]


def raise_for_status(response: httpx2.Response) -> None:
    """Raise the sdlib error for a failed response (status >= 400); return otherwise."""
    status = response.status_code
    if status < 400:
        return
    url = _url_without_query(response)
    where = f"{httpx2.URL(url).host or 'the server'}" if url else "the server"
    said = f"{where} answered HTTP {status}"
    if url:
        said += f" for {httpx2.URL(url).path or '/'}"
    if status == 401:
        raise AuthRequired(f"{said}: it needs authentication", url=url, status=status)
    if status == 403:
        raise AccessDenied(f"{said}: access denied", url=url, status=status)
    if status == 404:
        raise NotFound(f"{said}: not found", url=url, status=status)
    if status == 410:
        raise Gone(f"{said}: gone (taken down)", url=url, status=status)
    if status == 429:
        raise RateLimited(
            f"{said}: rate limited; wait a while and try again",
            url=url,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise SourceError(said, url=url, status=status)


def _url_without_query(response: httpx2.Response) -> str | None:
    try:
        url = response.request.url
    except RuntimeError:  # a response built without a request
        return None
    return str(url.copy_with(query=None, fragment=None))
