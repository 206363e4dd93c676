"""The source-neutral status mapping (``sdlib.http.raise_for_status``) and the download
engine using it unless the caller passes its source's mapper.

Expected exit codes are DESIGN.md's: 5 not found, 6 authentication or access, 7 network.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from sdlib.download import DownloadOptions, DownloadSpec, download
from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    Gone,
    NotFound,
    RateLimited,
    SdlibError,
    SourceError,
)
from sdlib.http import raise_for_status

STORAGE = "https://storage.example.net/bucket/model.safetensors"
SIGNED = STORAGE + "?X-Amz-Signature=deadbeefcafe&X-Amz-Expires=60"


def _response(status: int, url: str = SIGNED, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))


@pytest.mark.parametrize("status", [200, 204, 206, 301, 302, 307, 399])
def test_success_and_redirects_pass(status: int) -> None:
    raise_for_status(_response(status))


@pytest.mark.parametrize(
    ("status", "error", "exit_code"),
    [
        (401, AuthRequired, 6),
        (403, AccessDenied, 6),
        (404, NotFound, 5),
        (410, Gone, 5),
        (429, RateLimited, 7),
        (400, SourceError, 7),
        (418, SourceError, 7),
        (500, SourceError, 7),
    ],
)
def test_status_becomes_the_designed_error(
    status: int, error: type[SdlibError], exit_code: int
) -> None:
    with pytest.raises(error) as caught:
        raise_for_status(_response(status))
    err = caught.value
    assert type(err) is error
    assert err.exit_code == exit_code
    assert isinstance(err, SourceError) and err.status == status
    text = str(err)
    assert "\n" not in text
    assert "storage.example.net" in text and f"HTTP {status}" in text
    # Neutral: no source named; and a signed URL's signature never reaches the message.
    assert "civitai" not in text.lower()
    assert "deadbeefcafe" not in text and "X-Amz" not in text
    assert err.url == STORAGE


def test_retry_after_is_kept_for_a_rate_limit() -> None:
    with pytest.raises(RateLimited) as caught:
        raise_for_status(_response(429, **{"Retry-After": "7"}))
    assert caught.value.retry_after == 7.0


def test_a_response_without_a_request_still_maps() -> None:
    with pytest.raises(NotFound, match="HTTP 404"):
        raise_for_status(httpx2.Response(404))


def _client(status: int, seen: list[str]) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(status, json={"error": "Early Access", "deadline": "2031-05-01"})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def test_engine_maps_a_plain_url_without_knowing_any_source(tmp_path: Path) -> None:
    seen: list[str] = []
    spec = DownloadSpec(url=STORAGE, dest=tmp_path / "model.safetensors", size=10)
    with _client(403, seen) as http, pytest.raises(AccessDenied) as caught:
        download(http, spec, DownloadOptions(retries=0))
    assert seen == [STORAGE]
    # The body's Civitai-shaped early-access fields are not read by the neutral mapper.
    assert "2031" not in str(caught.value) and "civitai" not in str(caught.value).lower()
    assert list(tmp_path.iterdir()) == []


def test_engine_uses_the_mapper_the_caller_passes(tmp_path: Path) -> None:
    calls: list[int] = []

    def mapper(response: httpx2.Response) -> None:
        calls.append(response.status_code)
        raise NotFound(f"mapped by the caller: {response.status_code}")

    spec = DownloadSpec(url=STORAGE, dest=tmp_path / "model.safetensors", size=10)
    with _client(403, []) as http, pytest.raises(NotFound, match="mapped by the caller: 403"):
        download(http, spec, DownloadOptions(retries=0, raise_for_status=mapper))
    assert calls == [403]
    assert list(tmp_path.iterdir()) == []
