"""Before a model counts as gone, Civitai's other host is asked (civitai.com <-> civitai.red),
then CivArchive: through a Context configured for https://civitai.com whose network is an
``httpx2.MockTransport`` forwarding civitai.red and civarchive.com to the demo server (so
their answers are the demo's real ones) while civitai.com knows nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from sdlib.config import CivitaiSettings, LibrarySettings, NetworkSettings, Settings
from sdlib.demo._civarchive_api import ARCHIVE_ONLY
from sdlib.demo.server import DemoServer
from sdlib.services import Context

LORA = 628331  # add_detail.safetensors, version 62833 of model 58390


@pytest.fixture
def routed(civitai: DemoServer, tmp_path: Path) -> Iterator[tuple[Context, list[str]]]:
    asked: list[str] = []
    (tmp_path / "webui" / "models" / "Lora").mkdir(parents=True)
    upstream = {"civitai.red": civitai.url, "civarchive.com": civitai.civarchive_url}

    with httpx2.Client() as plain:

        def handler(request: httpx2.Request) -> httpx2.Response:
            asked.append(f"{request.url.host}{request.url.path}")
            target = upstream.get(request.url.host)
            if target is None:  # civitai.com: gone
                return httpx2.Response(404, json={"error": "Model not found"})
            answer = plain.request(request.method, target + request.url.raw_path.decode(),
                                   content=request.content)  # fmt: skip
            ctype = answer.headers.get("content-type", "application/json")
            return httpx2.Response(answer.status_code, content=answer.content,
                                  headers={"Content-Type": ctype})  # fmt: skip

        settings = replace(
            Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
            civitai=CivitaiSettings(base_url="https://civitai.com"),
            network=NetworkSettings(retries=0),
            library=LibrarySettings(root=str(tmp_path / "webui"), ui="a1111"),
        )
        with Context(settings, transport=httpx2.MockTransport(handler)) as ctx:
            yield ctx, asked


def test_identify_asks_civitai_red_before_civarchive(
    civitai: DemoServer, routed: tuple[Context, list[str]]
) -> None:
    ctx, asked = routed
    sha = civitai.files[LORA].hashes["SHA256"]
    match = ctx.remote(rate=0).match({"SHA256": sha})
    assert match is not None
    assert (match.source, match.version_id) == ("civitai", 62833)
    assert match.page_url.startswith("https://civitai.red/")
    assert asked == [f"civitai.com/api/v1/model-versions/by-hash/{sha}",
                     f"civitai.red/api/v1/model-versions/by-hash/{sha}"]  # fmt: skip


def test_identify_reaches_civarchive_after_both_hosts(
    civitai: DemoServer, routed: tuple[Context, list[str]]
) -> None:
    ctx, asked = routed
    sha = civitai.civarchive.published_sha256(ARCHIVE_ONLY.versions[0].files[0]).upper()
    match = ctx.remote(rate=0).match({"SHA256": sha})
    assert match is not None and match.source == "civarchive"
    assert [a.split("/")[0] for a in asked] == ["civitai.com", "civitai.red", "civarchive.com"]


def test_a_version_gone_from_civitai_com_installs_from_civitai_red(
    routed: tuple[Context, list[str]],
) -> None:
    ctx, asked = routed
    notes: list[str] = []
    target = ctx.installer(on_note=notes.append).resolve("58390@62833")
    assert target.source == "civitai"
    assert target.url.startswith("https://civitai.red/api/download/models/62833")
    assert any("found on civitai.red" in n for n in notes)
    assert not any(a.startswith("civarchive.com") for a in asked)


def test_a_sha256_on_neither_host_comes_from_a_civarchive_mirror(
    civitai: DemoServer, routed: tuple[Context, list[str]]
) -> None:
    ctx, asked = routed
    sha = civitai.civarchive.published_sha256(ARCHIVE_ONLY.versions[0].files[0])
    notes: list[str] = []
    target = ctx.installer(on_note=notes.append).resolve(f"sha256:{sha}")
    assert (target.source, target.sha256) == ("civarchive", sha.upper())
    assert target.url.startswith(civitai.civarchive_url + "/mirror/")
    assert [a.split("/")[0] for a in asked] == ["civitai.com", "civitai.red", "civarchive.com"]
    assert any("gone from Civitai" in n and sha.upper() in n for n in notes)


def test_hashes_civitai_com_lacks_go_to_civitai_red_in_one_bulk_request(
    civitai: DemoServer, routed: tuple[Context, list[str]]
) -> None:
    ctx, asked = routed
    known = civitai.files[LORA].hashes["SHA256"]
    unknown = "AB" * 32
    remote = ctx.remote(rate=0)
    remote.prefetch([known, unknown])
    bulk = "/api/v1/model-versions/by-hash"
    assert asked == [f"civitai.com{bulk}", f"civitai.red{bulk}"]
    asked.clear()
    match = remote.match({"SHA256": known})
    assert match is not None and match.page_url.startswith("https://civitai.red/")
    assert asked == [f"civitai.com{bulk}/{known}"]  # civitai.red answered in bulk already
