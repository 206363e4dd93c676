"""The demo server's Hugging Face Hub, checked with huggingface_hub itself (the Hub's own
client, as an independent judge of the protocol) and with raw httpx2: shapes, headers,
Link paging, errors by X-Error-Code, renames, gated repos and the CDN's ranges."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from sdlib.demo.hub_catalogue import HUB_LARGE_PATH, HUB_LARGE_REPO
from sdlib.demo.server import DemoServer

VAE = "stabilityai/sdxl-vae"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
GATED = "black-forest-labs/FLUX.1-dev"


def test_huggingface_hub_downloads_from_the_demo_and_the_bytes_match(
    civitai: DemoServer, tmp_path: Path
) -> None:
    path = hf_hub_download(VAE, "sdxl_vae.safetensors", endpoint=civitai.hub_url,
                           cache_dir=tmp_path, token=False)  # fmt: skip
    data = Path(path).read_bytes()
    meta = get_hf_file_metadata(hf_hub_url(VAE, "sdxl_vae.safetensors", endpoint=civitai.hub_url),
                                token=False)  # fmt: skip
    assert meta.etag == hashlib.sha256(data).hexdigest()
    assert meta.size == len(data)
    assert re.fullmatch(r"[0-9a-f]{40}", meta.commit_hash or "")
    assert meta.location is not None and meta.location.startswith(civitai.hub.cdn_url)
    info = HfApi(endpoint=civitai.hub_url, token=False).model_info(VAE, files_metadata=True)
    sibling = next(s for s in info.siblings or [] if s.rfilename == "sdxl_vae.safetensors")
    assert sibling.lfs is not None and sibling.lfs.sha256 == meta.etag
    assert info.sha == meta.commit_hash


def test_tree_listing_pages_through_link_headers(civitai: DemoServer) -> None:
    api = HfApi(endpoint=civitai.hub_url, token=False)
    entries = list(api.list_repo_tree(SD15, recursive=True))
    paths = {e.path for e in entries}
    assert {"v1-5-pruned-emaonly.safetensors", "unet", "unet/diffusion_pytorch_model.safetensors",
            "model_index.json"} <= paths  # fmt: skip
    pages = [r for r in civitai.requests if "/tree/" in r.path]
    assert len(pages) > 1  # the demo's small pages made huggingface_hub follow Link
    top = {e.path for e in api.list_repo_tree(SD15)}
    assert "unet" in top and "unet/config.json" not in top


def test_search_pages_and_filters_as_huggingface_hub_expects(civitai: DemoServer) -> None:
    api = HfApi(endpoint=civitai.hub_url, token=False)
    loras = [m.id for m in api.list_models(filter="lora", sort="downloads")]
    assert loras == ["latent-consistency/lcm-lora-sdxl", "latent-consistency/lcm-lora-sdv1-5"]
    response = httpx2.get(f"{civitai.hub_url}/api/models", params={"limit": 2})
    assert len(response.json()) == 2 and response.links["next"]["url"]
    second = httpx2.get(response.links["next"]["url"])
    assert {m["id"] for m in second.json()}.isdisjoint({m["id"] for m in response.json()})


def test_errors_are_the_hubs(civitai: DemoServer) -> None:
    api = HfApi(endpoint=civitai.hub_url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(VAE, revision="no-branch")
    with pytest.raises(EntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(VAE, "nope.safetensors", endpoint=civitai.hub_url),
                             token=False)  # fmt: skip
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(hf_hub_url(GATED, "ae.safetensors", endpoint=civitai.hub_url),
                             token=False)  # fmt: skip
    anonymous = httpx2.get(f"{civitai.hub_url}/api/models/nobody/nothing")
    logged_in = httpx2.get(f"{civitai.hub_url}/api/models/nobody/nothing",
                          headers={"Authorization": "Bearer hf_demo_token"})  # fmt: skip
    assert (anonymous.status_code, logged_in.status_code) == (401, 404)
    assert anonymous.headers["X-Error-Code"] == "RepoNotFound"
    url = f"{civitai.hub_url}/{GATED}/resolve/main/ae.safetensors"
    codes = [httpx2.head(url, headers=h).status_code for h in
             ({}, {"Authorization": "Bearer hf_demo_pending"},
              {"Authorization": "Bearer hf_demo_token"})]  # fmt: skip
    assert codes == [401, 403, 302]
    assert httpx2.head(url, headers={"Authorization": "Bearer hf_wrong"}).status_code == 401


def test_a_renamed_repo_redirects_to_its_new_name(civitai: DemoServer) -> None:
    api = httpx2.get(f"{civitai.hub_url}/api/models/runwayml/stable-diffusion-v1-5")
    assert api.status_code == 301
    assert api.headers["Location"] == f"/api/models/{SD15}"
    resolve = httpx2.head(
        f"{civitai.hub_url}/runwayml/stable-diffusion-v1-5/resolve/main/model_index.json"
    )
    assert (resolve.status_code, resolve.headers["Location"]) == (
        307, f"/{SD15}/resolve/main/model_index.json"
    )  # fmt: skip
    meta = get_hf_file_metadata(hf_hub_url("runwayml/stable-diffusion-v1-5",
                                           "v1-5-pruned-emaonly.safetensors",
                                           endpoint=civitai.hub_url), token=False)  # fmt: skip
    assert meta.location is not None and meta.location.startswith(civitai.hub.cdn_url)


def test_small_files_come_from_the_hub_with_their_git_blob_id(civitai: DemoServer) -> None:
    response = httpx2.get(f"{civitai.hub_url}/{SD15}/resolve/main/model_index.json")
    assert response.status_code == 200
    blob = hashlib.sha1(b"blob %d\0" % len(response.content) + response.content).hexdigest()
    assert response.headers["ETag"] == f'"{blob}"'
    assert "X-Linked-Etag" not in response.headers


def test_the_cdn_serves_ranges_and_refuses_bad_signatures(civitai: DemoServer) -> None:
    head = httpx2.head(f"{civitai.hub_url}/{VAE}/resolve/main/sdxl_vae.safetensors")
    location, etag = head.headers["Location"], head.headers["X-Linked-Etag"]
    size = int(head.headers["X-Linked-Size"])
    full = httpx2.get(location).content
    assert len(full) == size and f'"{hashlib.sha256(full).hexdigest()}"' == etag
    part = httpx2.get(location, headers={"Range": "bytes=100-", "If-Range": etag})
    assert part.status_code == 206 and part.content == full[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
    stale = httpx2.get(location, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == full
    assert httpx2.get(location, headers={"Range": f"bytes={size}-"}).status_code == 416
    assert httpx2.get(location.replace("signature=", "signature=0")).status_code == 403
    civitai.hub.url_ttl = -10
    expired = httpx2.head(f"{civitai.hub_url}/{VAE}/resolve/main/sdxl_vae.safetensors")
    assert httpx2.get(expired.headers["Location"]).status_code == 403


def test_rate_limit_fault_sends_ratelimit_headers(civitai: DemoServer) -> None:
    civitai.hub.add_fault("429", times=1, retry_after=7)
    limited = httpx2.get(f"{civitai.hub_url}/api/models/{VAE}")
    assert limited.status_code == 429
    assert limited.headers["RateLimit"] == '"api";r=0;t=7'
    assert httpx2.get(f"{civitai.hub_url}/api/models/{VAE}").status_code == 200


def test_the_large_benchmark_file_is_generated_hashed_true_and_never_stored(
    tmp_path: Path,
) -> None:
    size = 100_003  # odd, so no chunk size divides it
    with DemoServer(tmp_path / "files", catalogue=()) as server:
        ref = server.hub.add_large_file(size)
        assert ref == f"hf:{HUB_LARGE_REPO}/{HUB_LARGE_PATH}"
        path = hf_hub_download(HUB_LARGE_REPO, HUB_LARGE_PATH, endpoint=server.hub_url,
                               cache_dir=tmp_path / "hf", token=False)  # fmt: skip
        data = Path(path).read_bytes()
        info = HfApi(endpoint=server.hub_url, token=False).model_info(
            HUB_LARGE_REPO, files_metadata=True
        )
        (sibling,) = info.siblings or []
        assert sibling.lfs is not None
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sibling.lfs.sha256)
        # A real safetensors file: the header's length, then JSON whose one tensor fills the rest.
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        assert header["benchmark.data"]["data_offsets"] == [0, size - 8 - n]
        assert data[8 + n :] == bytes(size - 8 - n)
        # The CDN answers ranges of it (what parallel downloads ask for).
        location = httpx2.head(
            f"{server.hub_url}/{HUB_LARGE_REPO}/resolve/main/{HUB_LARGE_PATH}"
        ).headers["Location"]
        assert location.startswith(server.hub.cdn_url)
        part = httpx2.get(location, headers={"Range": "bytes=70-99999"})
        assert part.status_code == 206 and part.content == data[70:100_000]
    stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert stored and all(p.stat().st_size != size for p in stored)  # the small ones only


def test_an_ordinary_demo_hub_has_no_large_file(civitai: DemoServer) -> None:
    assert HUB_LARGE_REPO not in civitai.hub.repos
    response = httpx2.get(f"{civitai.hub_url}/api/models/{HUB_LARGE_REPO}")
    assert (response.status_code, response.headers["X-Error-Code"]) == (401, "RepoNotFound")
    with pytest.raises(ValueError, match="at least 1 KiB"):
        civitai.hub.add_large_file(100)


def test_a_reset_drops_the_large_file_a_test_added(civitai: DemoServer) -> None:
    """The session's shared server serves its own catalogue again after a test that added
    the benchmark file (the ``civitai`` fixture resets between tests)."""
    ref = civitai.hub.add_large_file(4096)
    repo = ref.removeprefix("hf:").rpartition("/")[0]
    assert repo in civitai.hub.repos
    civitai.reset()
    assert HUB_LARGE_REPO not in civitai.hub.repos
    assert not any(r == HUB_LARGE_REPO for r, _ in civitai.hub.files)
    response = httpx2.get(f"{civitai.hub_url}/api/models/{HUB_LARGE_REPO}")
    assert response.status_code == 401
