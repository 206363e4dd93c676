"""The Civitai client against the local Civitai-compatible server (real HTTP, real sockets)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sdlib.config import CivitaiSettings, Settings
from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.errors import AccessDenied, AuthRequired, BadResponse, NotFound, SourceError
from sdlib.hashing import hash_file
from sdlib.http import build_client, network_errors
from sdlib.sources.civitai import CivitaiClient, raise_for_status


@pytest.fixture
def civ(civitai_settings: Settings) -> Iterator[CivitaiClient]:
    with CivitaiClient.from_settings(civitai_settings) as client:
        yield client


def _sfw_ids() -> set[int]:
    return {m.id for m in CATALOGUE if not m.nsfw and m.mode != "Archived"}


def test_paging_walks_every_cursor(civ: CivitaiClient, civitai: DemoServer) -> None:
    pages = list(civ.search_pages(page_size=3))
    assert len(pages) >= 4
    assert all(p.next_cursor for p in pages[:-1]) and pages[-1].next_cursor is None
    ids = [m.id for p in pages for m in p.items]
    assert len(ids) == len(set(ids))
    assert set(ids) == _sfw_ids()  # SFW only by default, archived hidden
    cursors = [r.path for r in civitai.requests if r.path.startswith("/api/v1/models?")]
    assert sum("cursor=" in c for c in cursors) == len(pages) - 1


def test_short_and_empty_pages_are_followed(civ: CivitaiClient) -> None:
    # baseModels filters after paging: pages of 2 come back short or empty, cursors go on.
    pages = list(civ.search_pages(base_models=["SDXL 1.0"], page_size=2))
    assert any(not p.items for p in pages)
    models = [m for p in pages for m in p.items]
    assert [m.id for m in models] == [101055]
    assert all(v.base_model == "SDXL 1.0" for v in models[0].versions)


def test_query_paging_uses_numeric_offsets(civ: CivitaiClient) -> None:
    pages = list(civ.search_pages("diffusion", page_size=1))
    assert [m.name for p in pages for m in p.items] == [
        "Stable Diffusion v1.5", "Stable Diffusion v1.4"
    ]  # fmt: skip
    assert pages[0].next_cursor == "1"


def test_filters(civ: CivitaiClient) -> None:
    assert {m.type for m in civ.search(types=["LORA", "LoCon"])} == {"LORA", "LoCon"}
    assert {m.id for m in civ.search(types=["TextualInversion"])} == {7808}
    nsfw = {m.id for m in civ.search(nsfw=True)}
    assert {6424, 43331, 1890} <= nsfw and 6424 not in {m.id for m in civ.search()}
    newest = [m.id for m in civ.search(sort="Newest", limit=2)]
    assert newest[0] == 4201
    downloads = [m.download_count or 0 for m in civ.search(sort="Most Downloaded")]
    assert downloads == sorted(downloads, reverse=True)
    assert [m.id for m in civ.search(period="Month")] == [4201]
    assert list(civ.search(limit=3)) and len(list(civ.search(limit=3))) == 3


def test_model_and_version_detail(civ: CivitaiClient) -> None:
    model = civ.model(4384)
    assert (model.name, model.kind, model.creator) == ("DreamShaper", "checkpoint", "Lykon")
    assert [v.id for v in model.versions] == [128713, 109123]
    version = civ.version(128713)
    assert version.air == "urn:air:sd1:checkpoint:civitai:4384@128713"
    assert (version.model_id, version.model_name, version.base) == (4384, "DreamShaper", "sd1")
    primary = version.primary_file
    assert primary is not None and primary.name == "dreamshaper_8.safetensors"
    assert [f.primary for f in version.files] == [True, False, False]
    assert {f.format for f in version.files} == {"SafeTensor", "PickleTensor"}
    assert version.images and all(i.meta for i in version.images)


def test_recommended_settings_from_example_images(civ: CivitaiClient) -> None:
    rec = civ.recommended_settings(civ.version(128713))
    assert (rec.clip_skip, rec.sampler, rec.steps, rec.cfg_scale, rec.size) == (
        2, "DPM++ 2M Karras", 30, 7.0, "512x768"
    )  # fmt: skip
    assert rec.samples == 4  # the gallery repeats the version's images: counted once
    assert civ.recommended_settings(128078).clip_skip is None  # SDXL images carry none


@pytest.mark.parametrize("kind", ["SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3"])
def test_by_hash_finds_every_hash_kind(civ: CivitaiClient, civitai: DemoServer, kind: str) -> None:
    served = civitai.files[128713_1]
    version = civ.version_by_hash(served.hashes[kind].lower())
    assert version.id == 128713


def test_published_hashes_and_sizes_are_true(civ: CivitaiClient, civitai: DemoServer) -> None:
    version = civ.version(130072)
    for f in version.files:
        served = civitai.files[f.id]
        assert served.path is not None
        assert f.size == served.path.stat().st_size
        actual = hash_file(served.path)
        assert f.sha256 == actual.sha256
        assert f.hash("AutoV2") == actual.autov2 and f.hash("BLAKE3") == actual.blake3
        assert f.hash("CRC32") == actual.crc32 and f.hash("AutoV1") == actual.autov1
        assert f.hash("AutoV3") == actual.autov3


def test_small_files_have_no_autov1(civ: CivitaiClient) -> None:
    f = civ.version(9536).files[0]
    assert f.size is not None and f.size < 2 << 20
    assert f.hash("AutoV1") is None and f.hash("AutoV3") is not None


def test_errors_from_the_server(civ: CivitaiClient) -> None:
    with pytest.raises(NotFound, match="model 424242 not found"):
        civ.model(424242)
    with pytest.raises(NotFound):
        civ.version(999999)
    with pytest.raises(NotFound):
        civ.version_by_hash("0123456789")


def test_resolve_and_download_without_leaking_the_token(
    civitai: DemoServer, civitai_settings: Settings
) -> None:
    settings = replace(civitai_settings, civitai=CivitaiSettings(civitai.url, token="demo-token"))
    with build_client(settings) as http:
        civ = CivitaiClient(http, base_url=civitai.url)
        target = civ.resolve_download(128713, format="PickleTensor")
        assert target.file_name == "dreamshaper_8.ckpt"
        assert target.url.endswith("/api/download/models/128713?fileId=1287132")
        with network_errors(target.url):
            response = http.get(target.url)
        raise_for_status(response)
        assert response.status_code == 200
        assert len(response.content) == target.size
        assert (
            response.headers["content-disposition"] == 'attachment; filename="dreamshaper_8.ckpt"'
        )
        assert hashlib.sha256(response.content).hexdigest().upper() == target.sha256
    api = [r for r in civitai.requests if r.server == "api"]
    storage = [r for r in civitai.requests if r.server == "storage"]
    assert api and all(r.header("Authorization") == "Bearer demo-token" for r in api)
    assert storage and not any(r.authorization for r in storage)
    assert not any("demo-token" in r.path for r in civitai.requests)


def test_download_errors_map_to_exit_codes(civitai: DemoServer, civitai_settings: Settings) -> None:
    def fetch(version_id: int, token: str | None = None) -> None:
        settings = replace(civitai_settings, civitai=CivitaiSettings(civitai.url, token=token))
        with build_client(settings) as http:
            response = http.get(f"{civitai.url}/api/download/models/{version_id}")
            raise_for_status(response)

    with pytest.raises(AccessDenied) as early:
        fetch(245598, token="demo-token")
    assert early.value.early_access_ends == "2030-01-01T00:00:00.000Z"
    fetch(245598, token="demo-early-access")
    with pytest.raises(AuthRequired) as auth:
        fetch(11745)
    assert auth.value.exit_code == 6
    fetch(11745, token="demo-token")
    with pytest.raises(SourceError) as gone:
        fetch(4048)
    assert gone.value.exit_code == 5 and "archived" in str(gone.value)


def test_html_fault_is_a_bad_response(civ: CivitaiClient, civitai: DemoServer) -> None:
    civitai.add_fault("html")
    with pytest.raises(BadResponse, match="HTML"):
        civ.model(4384)


def test_retries_ride_out_transient_503(civ: CivitaiClient, civitai: DemoServer) -> None:
    civitai.add_fault("503", times=2)  # retries=2 in the fixture settings
    assert civ.model(4384).id == 4384
    assert sum(r.path == "/api/v1/models/4384" for r in civitai.requests) == 3
