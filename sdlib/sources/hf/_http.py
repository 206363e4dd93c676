"""The Hub's HTTP answers as sdlib values or errors: the one place they are mapped.

``open_hub`` makes one request with redirects followed by hand (``follow_redirects=False``):
a repo renamed to a new owner answers 301/307 with a same-host ``Location``, which is
followed (and, being the Hub's own origin, signed again by the client's scoped token, which
httpx2 would otherwise drop); an absolute redirect to another host (the CDN) is followed for
API calls only when asked, and for ``/resolve`` never: its ``Location`` is the download URL.

``raise_for_hub`` maps failures on the Hub's ``X-Error-Code`` header (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``) before the status, as
huggingface_hub's ``hf_raise_for_status`` does, because a bare 401 means "not found, or
private" as often as "log in":

* gated, no token -> ``AuthRequired`` (exit 6): log in and request access at the repo page;
* gated, token not approved -> ``AccessDenied`` (exit 6) saying so;
* a 403 without a gate -> ``AccessDenied``: the token lacks a permission;
* missing or private repo, revision or file -> ``NotFound`` (exit 5);
* 429 -> ``RateLimited`` with the wait ``RateLimit`` or ``Retry-After`` asks for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2

from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    BadResponse,
    NotFound,
    RateLimited,
    SourceError,
)
from sdlib.http import (
    HostileJSON,
    challenge_of,
    loads_bounded,
    network_errors,
    origin_of,
    parse_ratelimit_reset,
    parse_retry_after,
    read_capped,
)

__all__ = ["MAX_JSON", "HubAnswer", "HubTarget", "open_hub", "raise_for_hub", "read_json"]

#: Largest API answer read (a tree page of 1,000 entries is ~300 KB; a search page more).
MAX_JSON = 16 << 20
_MAX_ERROR = 64 << 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_LOGIN_HINT = "set HF_TOKEN, run `hf auth login`, or set [huggingface] token"


@dataclass(frozen=True)
class HubTarget:
    """What a request was about, for messages: the repo, and a revision and file in it."""

    endpoint: str
    repo: str
    revision: str | None = None
    path: str | None = None
    #: Whether a token is configured for the Hub (then "not found" cannot be "log in").
    token: bool = False

    @property
    def page(self) -> str:
        return f"{self.endpoint.rstrip('/')}/{self.repo}"


@dataclass
class HubAnswer:
    """A response after the redirects worth following, and the URLs they went through."""

    response: httpx2.Response
    redirects: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.response.request.url)


@contextmanager
def open_hub(
    client: httpx2.Client,
    method: str,
    url: str,
    *,
    params: Sequence[tuple[str, str]] = (),
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    cross_origin: bool = True,
) -> Iterator[HubAnswer]:
    """One request, streamed; redirects followed by hand up to 5 (same-origin ones always,
    others only with ``cross_origin``). Transport failures become ``SourceError``."""
    redirects: list[str] = []
    # httpx2.URL(url, params=None) would drop the query a next-page link carries.
    current = httpx2.URL(url, params=list(params)) if params else httpx2.URL(url)
    with network_errors(url):
        for _ in range(_MAX_REDIRECTS + 1):
            request = client.build_request(method, current, data=data, headers=headers)
            response = client.send(request, stream=True, follow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code in _REDIRECTS and location:
                target = current.join(location)
                same = origin_of(target) == origin_of(current)
                if same or cross_origin:
                    response.close()
                    redirects.append(str(target))
                    if response.status_code == 303:
                        method, data = "GET", None
                    current = target
                    continue
            try:
                yield HubAnswer(response, redirects)
            finally:
                response.close()
            return
    raise BadResponse(f"too many redirects from {current.host}", url=str(current))


def read_json(response: httpx2.Response) -> Any:
    """The JSON body of a successful answer, read with a cap and parsed with limits."""
    url = str(response.request.url)
    with network_errors(url):
        body, over = read_capped(response, MAX_JSON)
    who = challenge_of(response, body)
    if who is not None:
        raise BadResponse(
            f"{response.request.url.host} served a browser challenge from {who} instead of "
            "answering; try again later or from another network",
            url=url,
            status=response.status_code,
        )
    if over:
        raise BadResponse(
            f"{response.request.url.host} sent an answer larger than {MAX_JSON >> 20} MiB; "
            "stopped reading it",
            url=url,
        )
    if "html" in response.headers.get("content-type", "").lower():
        raise BadResponse(
            f"{response.request.url.host} answered an HTML page instead of JSON (is "
            "huggingface.endpoint the Hub or a mirror of its API?)",
            url=url,
            status=response.status_code,
        )
    try:
        return loads_bounded(body)
    except HostileJSON as exc:
        raise BadResponse(f"the Hub sent JSON sdlib will not read: {exc}", url=url) from None
    except (UnicodeDecodeError, ValueError):
        raise BadResponse(
            f"{response.request.url.host} answered something that is not JSON", url=url
        ) from None


def raise_for_hub(response: httpx2.Response, target: HubTarget) -> None:
    """Raise the sdlib error for a failed Hub answer; return for anything below 400.

    Also maps the CDN's answers to a download (the engine's error mapper for a Hub file is
    ``lambda r: raise_for_hub(r, target)``): an expired or refused signed URL is not a
    repo's access question."""
    status = response.status_code
    if status < 400:
        return
    url = str(response.request.url)
    with network_errors(url):
        body, _ = read_capped(response, _MAX_ERROR)
    if origin_of(response.request.url) != origin_of(target.endpoint):
        _raise_for_cdn(response, target, url)
    code = (response.headers.get("X-Error-Code") or "").strip()
    detail = _clip(response.headers.get("X-Error-Message")) or _body_message(body)
    repo = target.repo
    at = f" at revision {target.revision}" if target.revision else ""
    if code == "GatedRepo" or (status in (401, 403) and "gated" in (detail or "").lower()):
        if status == 401 or not target.token:
            raise AuthRequired(
                f"{repo} is a gated repo: log in ({_LOGIN_HINT}) with an account that has "
                f"requested access at {target.page}",
                url=url,
                status=status,
            )
        raise AccessDenied(
            f"{repo} is a gated repo and your Hugging Face account is not (yet) in its "
            f"authorized list: request access at {target.page} and wait for approval",
            url=url,
            status=status,
        )
    if status == 401 and not code and target.token and _rejected(detail):
        raise AuthRequired(
            f"the Hub rejected the Hugging Face token ({detail}): check HF_TOKEN, "
            "`hf auth login` or [huggingface] token",
            url=url,
            status=status,
        )
    if code == "RevisionNotFound":
        raise NotFound(f"revision {target.revision or 'main'} not found in {repo}", url=url,
                       status=status)  # fmt: skip
    if code == "EntryNotFound" or (code == "" and status == 404 and target.path):
        where = target.path or "the file"
        raise NotFound(f"{where} not found in {repo}{at}", url=url, status=status)
    is_repo = "/" in repo
    if code == "RepoNotFound" or (is_repo and (status == 401 or (status == 404 and not code))):
        hint = "" if target.token else f" (if it is private: {_LOGIN_HINT})"
        if status == 401 and target.token and code != "RepoNotFound":
            hint = " (or the Hugging Face token was rejected)"
        raise NotFound(f"repository {repo} not found, or private{hint}", url=url, status=status)
    if status == 403:
        raise AccessDenied(
            f"the Hub refused access to {repo}"
            + (f" ({detail})" if detail else "")
            + ": a private repo, or a token that lacks the permission (a fine-grained token "
            "needs read access to public gated repos)",
            url=url,
            status=status,
        )
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = parse_ratelimit_reset(response.headers.get("RateLimit"))
        after = f"; try again in {wait:.0f} s" if wait is not None else "; wait and try again"
        raise RateLimited(
            f"the Hub is rate limiting requests (5-minute quota used up){after}"
            + ("" if target.token else "; a logged-in account gets a larger quota"),
            url=url,
            status=status,
            retry_after=wait,
        )
    if challenge_of(response, body) is not None:
        raise BadResponse(f"{response.request.url.host} served a browser challenge", url=url,
                          status=status)  # fmt: skip
    raise SourceError(
        f"the Hub answered HTTP {status} for {repo}" + (f": {detail}" if detail else ""),
        url=url,
        status=status,
    )


def _raise_for_cdn(response: httpx2.Response, target: HubTarget, url: str) -> None:
    """The CDN a ``/resolve`` redirected to refused: its signed URL expired, or the object
    is gone. Resolving again gives a fresh URL."""
    status = response.status_code
    host = response.request.url.host
    what = f"{target.path or 'the file'} of {target.repo}"
    if status == 404:
        raise NotFound(f"the Hub's CDN ({host}) has no {what}; resolve it again", url=url,
                       status=status)  # fmt: skip
    if status in (401, 403, 410):
        raise SourceError(
            f"the Hub's CDN ({host}) refused the download link for {what} (HTTP {status}: "
            "expired or no longer valid); start the download again for a fresh link",
            url=url,
            status=status,
        )
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimited(f"the Hub's CDN ({host}) is rate limiting downloads", url=url,
                          status=status, retry_after=wait)  # fmt: skip
    raise SourceError(f"the Hub's CDN ({host}) answered HTTP {status} for {what}", url=url,
                      status=status)  # fmt: skip


def _rejected(detail: str | None) -> bool:
    """Whether a 401's message says the token itself is bad (not "no such repo")."""
    text = (detail or "").lower()
    return (
        "invalid credentials" in text
        or "invalid username or password" in text
        or ("invalid" in text and "token" in text)
    )


def _body_message(body: bytes) -> str | None:
    try:
        data = loads_bounded(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(data, dict):
        return _clip(data.get("error") if isinstance(data.get("error"), str) else None)
    return None


def _clip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    lines = value.strip().splitlines()
    text = "".join(c for c in (lines[0] if lines else "") if c.isprintable())
    return (text[:297] + "...") if len(text) > 300 else (text or None)
