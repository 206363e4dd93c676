"""The Hub client's handling of answers a real Hub rarely gives (``httpx2.MockTransport``):
paging links to other hosts, HTML, redirect loops, odd shapes; and that resolving never
touches the CDN, and the CDN's refusals say what to do."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest

from sdlib.demo.server import DemoServer
from sdlib.errors import BadResponse, NotFound, SourceError
from sdlib.sources.hf import HubClient
from tests.sources.hf.conftest import MakeHub

HUB = "https://hub.example"
SHA = "a" * 64
COMMIT = "c" * 40


def _client(handler: Callable[[httpx2.Request], httpx2.Response], seen: list[str]) -> HubClient:
    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url}")
        return handler(request)

    return HubClient(httpx2.Client(transport=httpx2.MockTransport(record)), endpoint=HUB)


def test_a_next_link_to_another_host_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=[{"id": "a/b"}],
                              headers={"Link": '<https://evil.example/api/models?cursor=x>; '
                                               'rel="next"'})  # fmt: skip

    notes: list[str] = []
    models = list(_client(handler, seen).search(limit=None, on_stop=notes.append))
    assert [m.id for m in models] == ["a/b"]
    assert all("evil.example" not in s for s in seen)
    assert notes == ["stopped paging: the next page was on another host"]


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (httpx2.Response(200, text="<html>login</html>", headers={"Content-Type": "text/html"}),
         "HTML page instead of JSON"),
        (httpx2.Response(200, json={"not": "a list"}), "not a list"),
        (httpx2.Response(200, content=b"[" * 100 + b"]" * 100), "will not read"),
        (httpx2.Response(200, content=b"not json"), "not JSON"),
    ],
)  # fmt: skip
def test_answers_that_are_not_a_search_page_are_bad_responses(
    response: httpx2.Response, words: str
) -> None:
    with pytest.raises(BadResponse, match=words) as caught:
        list(_client(lambda _r: response, []).search(limit=5))
    assert caught.value.exit_code == 7
    assert "\n" not in str(caught.value)


def test_a_redirect_loop_ends_with_one_line() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(301, headers={"Location": request.url.path})

    with pytest.raises(BadResponse, match="too many redirects"):
        _client(handler, []).model_info("a/b")


def test_resolving_reads_the_cdn_location_without_fetching_it() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/models/a/b":
            return httpx2.Response(200, json={"id": "a/b", "sha": COMMIT, "siblings": [
                {"rfilename": "m.safetensors"}]})  # fmt: skip
        # At the commit the info named, so the bytes cannot change under the listing.
        assert request.method == "HEAD"
        assert request.url.path == f"/a/b/resolve/{COMMIT}/m.safetensors"
        assert request.headers["Accept-Encoding"] == "identity"
        return httpx2.Response(302, headers={
            "Location": "https://cdn.example/blob?sig=1", "X-Repo-Commit": COMMIT,
            "X-Linked-Etag": f'"{SHA}"', "X-Linked-Size": "123", "ETag": '"b"'})  # fmt: skip

    target = _client(handler, seen).resolve("hf:a/b/m.safetensors")
    assert (target.sha256, target.size, target.commit) == (SHA, 123, COMMIT)
    assert target.location == "https://cdn.example/blob?sig=1"
    assert target.url == f"{HUB}/a/b/resolve/{COMMIT}/m.safetensors"
    assert not any("cdn.example" in s for s in seen)


def test_a_small_file_answered_directly_has_no_sha256_from_its_git_etag() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/api/"):
            return httpx2.Response(200, json={"id": "a/b", "sha": COMMIT})
        return httpx2.Response(
            200,
            headers={
                "ETag": '"0123456789abcdef0123456789abcdef01234567"',
                "Content-Length": "42",
                "X-Repo-Commit": COMMIT,
            },
        )

    target = _client(handler, []).resolve("hf:a/b/config.json")
    assert (target.sha256, target.size, target.location) == (None, 42, None)


def test_a_path_naming_a_folder_picks_the_model_in_it(make_hub: MakeHub) -> None:
    target = make_hub().resolve("hf:stable-diffusion-v1-5/stable-diffusion-v1-5/vae")
    assert target.path == "vae/diffusion_pytorch_model.safetensors"


def test_the_cdn_refusing_an_expired_link_says_to_start_again(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    hub = make_hub()
    civitai.hub.url_ttl = -10  # every signed URL is already expired
    target = hub.resolve("hf:stabilityai/sdxl-vae/sdxl_vae.safetensors")
    mapper = hub.raise_for_download(target)
    with (
        hub._client.stream("GET", target.url) as response,
        pytest.raises(SourceError, match="start the download again") as caught,
    ):
        mapper(response)
    assert caught.value.exit_code == 7
    assert not isinstance(caught.value, NotFound)


def test_the_download_mapper_maps_the_hubs_own_answers(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    hub = make_hub()
    target = hub.resolve("hf:stabilityai/sdxl-vae/sdxl_vae.safetensors")
    gone = target.url.replace("sdxl_vae.safetensors", "gone.safetensors")
    with (
        hub._client.stream("GET", gone) as response,
        pytest.raises(NotFound, match="not found in stabilityai/sdxl-vae"),
    ):
        hub.raise_for_download(target)(response)
    assert json.dumps(target.to_dict())  # the record is plain JSON
