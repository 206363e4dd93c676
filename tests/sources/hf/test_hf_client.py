"""The Hub client against the demo Hub over real sockets: every reference form resolves to
the bytes served (sha256 by hashlib), renamed repos, gated repos (401 / 403), missing repos,
revisions and files, and the token reaching the Hub host and never the CDN."""

from __future__ import annotations

import hashlib

import httpx2
import pytest

from sdlib.demo.hub_catalogue import commit_of
from sdlib.demo.server import DemoServer
from sdlib.errors import AccessDenied, AuthRequired, NotFound, UsageError
from tests.sources.hf.conftest import MakeHub

VAE = "stabilityai/sdxl-vae"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
GATED = "black-forest-labs/FLUX.1-dev"


def _served(url: str, token: str | None = None) -> bytes:
    """The bytes behind a /resolve URL, fetched with a plain httpx2 client (no sdlib)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx2.get(url, headers=headers, follow_redirects=True, timeout=10)
    response.raise_for_status()
    return response.content


@pytest.mark.parametrize(
    ("text", "repo", "path", "revision"),
    [
        (f"hf:{VAE}/sdxl_vae.safetensors", VAE, "sdxl_vae.safetensors", "main"),
        (f"hf:{VAE}", VAE, "sdxl_vae.safetensors", "main"),
        (f"https://huggingface.co/{VAE}/blob/main/sdxl_vae.safetensors", VAE,
         "sdxl_vae.safetensors", "main"),
        (f"https://huggingface.co/{VAE}/resolve/main/sdxl_vae.safetensors?download=true", VAE,
         "sdxl_vae.safetensors", "main"),
        (f"https://hf.co/{VAE}", VAE, "sdxl_vae.safetensors", "main"),
        (f"hf:{SD15}@refs/pr/1/v1-5-pruned-emaonly.safetensors", SD15,
         "v1-5-pruned-emaonly.safetensors", "refs/pr/1"),
        (f"https://huggingface.co/{SD15}/resolve/refs%2Fpr%2F1/v1-5-pruned-emaonly.safetensors",
         SD15, "v1-5-pruned-emaonly.safetensors", "refs/pr/1"),
        (f"hf:{SD15}@fp16", SD15, "v1-5-pruned-emaonly.safetensors", "fp16"),
        (f"https://huggingface.co/{SD15}/tree/main/unet", SD15,
         "unet/diffusion_pytorch_model.safetensors", "main"),
    ],
)  # fmt: skip
def test_every_form_resolves_to_the_served_bytes(
    civitai: DemoServer, make_hub: MakeHub, text: str, repo: str, path: str, revision: str
) -> None:
    hub = make_hub()
    target = hub.resolve(text)
    assert (target.repo, target.path, target.revision) == (repo, path, revision)
    assert target.commit == commit_of(repo, revision)  # the demo's commit of that revision
    # Fetched through the configured endpoint, even for a pasted huggingface.co link.
    assert target.url.startswith(civitai.hub_url + "/")
    assert target.commit in target.url
    data = _served(target.url)
    assert target.sha256 == hashlib.sha256(data).hexdigest()
    assert target.size == len(data)
    assert target.file_name == path.rsplit("/", 1)[-1]
    assert target.location is not None and target.location.startswith(civitai.hub.cdn_url)
    assert {r.server for r in civitai.requests} <= {"hub", "hub-cdn"}


def test_several_candidates_are_a_usage_error_listing_them_with_sizes(make_hub: MakeHub) -> None:
    with pytest.raises(UsageError) as caught:
        make_hub().resolve("hf:stabilityai/stable-diffusion-xl-base-1.0")
    message = str(caught.value)
    assert caught.value.exit_code == 2
    for name in ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0_0.9vae.safetensors",
                 "sd_xl_offset_example-lora_1.0.safetensors"):  # fmt: skip
        assert f"hf:stabilityai/stable-diffusion-xl-base-1.0/{name} (" in message
    assert "MiB)" in message
    assert "vae/diffusion_pytorch_model" not in message  # diffusers folders are skipped


def test_the_same_bytes_under_two_names_are_one_choice(make_hub: MakeHub) -> None:
    target = make_hub().resolve("hf:madebyollin/sdxl-vae-fp16-fix")
    assert target.path in ("sdxl_vae.safetensors", "sdxl.vae.safetensors")


def test_a_renamed_repo_is_followed_to_its_new_name(civitai: DemoServer, make_hub: MakeHub) -> None:
    hub = make_hub()
    target = hub.resolve("hf:runwayml/stable-diffusion-v1-5/v1-5-pruned-emaonly.safetensors")
    assert (target.repo, target.renamed_from) == (SD15, "runwayml/stable-diffusion-v1-5")
    assert target.sha256 == hashlib.sha256(_served(target.url)).hexdigest()
    moved = [r for r in civitai.requests if r.path.startswith("/api/models/runwayml/")]
    assert moved, "the old name was asked for"
    repo = hub.repo("https://huggingface.co/runwayml/stable-diffusion-v1-5")
    assert (repo.model.id, repo.renamed_from) == (SD15, "runwayml/stable-diffusion-v1-5")


def test_gated_repo_without_a_token_says_log_in_and_where_to_ask(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    with pytest.raises(AuthRequired) as caught:
        make_hub().resolve(f"hf:{GATED}/ae.safetensors")
    assert caught.value.exit_code == 6
    assert f"request access at {civitai.hub_url}/{GATED}" in str(caught.value) or (
        f"requested access at {civitai.hub_url}/{GATED}" in str(caught.value)
    )
    assert "HF_TOKEN" in str(caught.value)


def test_gated_repo_with_an_account_not_approved_says_so(make_hub: MakeHub) -> None:
    with pytest.raises(AccessDenied) as caught:
        make_hub(token="hf_demo_pending").resolve(f"hf:{GATED}/ae.safetensors")
    assert caught.value.exit_code == 6
    assert "not (yet) in its authorized list" in str(caught.value)
    assert "request access at" in str(caught.value)


def test_gated_repo_with_access_resolves(make_hub: MakeHub) -> None:
    hub = make_hub(token="hf_demo_token")
    target = hub.resolve(f"hf:{GATED}")
    assert (target.path, target.gated) == ("ae.safetensors", "auto")
    assert target.sha256 == hashlib.sha256(_served(target.url, "hf_demo_token")).hexdigest()


@pytest.mark.parametrize("token", [None, "hf_demo_token"])
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hf:nobody/no-such-repo/x.safetensors", "not found, or private"),
        (f"hf:{VAE}@no-such-branch/sdxl_vae.safetensors", "revision no-such-branch not found"),
        (f"hf:{VAE}/no_such_file.safetensors", "no_such_file.safetensors not found"),
        ("https://huggingface.co/nobody/no-such-repo", "not found, or private"),
    ],
)
def test_missing_repo_revision_or_file_is_not_found(
    make_hub: MakeHub, token: str | None, text: str, words: str
) -> None:
    with pytest.raises(NotFound) as caught:
        make_hub(token=token).resolve(text)
    assert caught.value.exit_code == 5
    assert words in str(caught.value)


def test_the_token_reaches_the_hub_host_only(civitai: DemoServer, make_hub: MakeHub) -> None:
    hub = make_hub(token="hf_demo_token")
    target = hub.resolve(f"hf:{GATED}/ae.safetensors")
    # The download as sdlib's engine makes it: the same client, following the 302.
    with hub._client.stream("GET", target.url) as response:
        body = response.read()
    assert hashlib.sha256(body).hexdigest() == target.sha256
    hub_requests = [r for r in civitai.requests if r.server == "hub"]
    cdn_requests = [r for r in civitai.requests if r.server == "hub-cdn"]
    assert hub_requests and cdn_requests
    assert all(r.header("Authorization") == "Bearer hf_demo_token" for r in hub_requests)
    assert not any(r.authorization for r in cdn_requests)


def test_each_token_goes_to_its_own_host(civitai: DemoServer, make_hub: MakeHub) -> None:
    hub = make_hub(token="hf_demo_token", civitai_token="demo-token")
    hub.model_info(VAE)
    hub._client.get(f"{civitai.url}/api/v1/models/1100").raise_for_status()
    seen = {(r.server, r.header("Authorization")) for r in civitai.requests}
    assert seen == {("hub", "Bearer hf_demo_token"), ("api", "Bearer demo-token")}


def test_a_rate_limit_waits_as_the_ratelimit_header_says(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    civitai.hub.add_fault("429", times=1, retry_after=0)
    model, _ = make_hub().model_info(VAE)  # retried after RateLimit's t + 1 (capped in tests)
    assert model.id == VAE
    assert [r.path.split("?")[0] for r in civitai.requests] == [f"/api/models/{VAE}"] * 2


def test_a_rate_limit_that_lasts_is_an_error_saying_when(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    from sdlib.errors import RateLimited

    civitai.hub.add_fault("429", retry_after=60)
    with pytest.raises(RateLimited) as caught:
        make_hub().model_info(VAE)
    assert caught.value.retry_after == 61
    assert "try again in 61 s" in str(caught.value)
