"""Hub search over the demo Hub (Link paging, its guard, filters), file guesses, card
summaries, and where the Hub's endpoint and token come from."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from sdlib.config import load_settings
from sdlib.demo.hub_catalogue import HUB_CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.errors import UsageError
from sdlib.http import RetryTransport, parse_ratelimit_reset
from sdlib.sources.hf import HubTarget, card_summary, guess_file, hub_query
from sdlib.taxonomy import Kind
from tests.sources.hf.conftest import MakeHub


def _search_pages(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/api/models?")
            or r.path.startswith("/api/models/?")]  # fmt: skip


def test_search_follows_link_pages_without_repeats(civitai: DemoServer, make_hub: MakeHub) -> None:
    hub = make_hub()
    ids = [m.id for m in hub.search(limit=None, sort="downloads")]
    expected = sorted(HUB_CATALOGUE, key=lambda r: (r.downloads, r.id), reverse=True)
    assert ids == [r.id for r in expected]
    civitai.reset()
    # Two at a time: the walk takes several pages, each one asked once.
    page_ids = []
    for model in hub.search(sort="likes", limit=len(HUB_CATALOGUE)):
        page_ids.append(model.id)
    assert len(page_ids) == len(set(page_ids)) == len(HUB_CATALOGUE)


def test_search_pages_with_a_small_limit(civitai: DemoServer, make_hub: MakeHub) -> None:
    models = list(make_hub().search(sort="downloads", limit=3))
    assert len(models) == 3
    assert len(_search_pages(civitai)) == 1  # a page of 3, no more asked
    assert all(m.downloads is not None for m in models)


def test_a_repeated_next_link_ends_the_walk_and_says_why(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    civitai.hub.add_fault("link-loop")
    stops: list[str] = []
    hub = make_hub()
    pages = list(hub._pages(f"{civitai.hub_url}/api/models", [("limit", "2")],
                            _target(civitai), stops.append))  # fmt: skip
    assert len(pages) == 2  # the first page, then its repeat: stopped
    assert any("repeated" in s for s in stops)


def _target(server: DemoServer) -> HubTarget:
    return HubTarget(server.hub_url, "the model search")


@pytest.mark.parametrize(
    ("types", "bases", "expected"),
    [
        (["lora"], [], {"latent-consistency/lcm-lora-sdxl", "latent-consistency/lcm-lora-sdv1-5"}),
        (["lora"], ["sdxl"], {"latent-consistency/lcm-lora-sdxl"}),
        (["lora"], ["sd1"], {"latent-consistency/lcm-lora-sdv1-5"}),
        (["controlnet"], [], {"comfyanonymous/ControlNet-v1-1_fp16_safetensors"}),
        (["embedding"], [], {"gsdf/EasyNegative"}),
        (["vae"], [], {"stabilityai/sdxl-vae", "madebyollin/sdxl-vae-fp16-fix"}),
        (["checkpoint"], [], {"stable-diffusion-v1-5/stable-diffusion-v1-5",
                              "stabilityai/stable-diffusion-xl-base-1.0",
                              "black-forest-labs/FLUX.1-dev"}),
    ],
)  # fmt: skip
def test_types_and_bases_map_onto_hub_filters(
    make_hub: MakeHub, types: list[str], bases: list[str], expected: set[str]
) -> None:
    found = {m.id for m in make_hub().search(types=types, bases=bases, limit=None)}
    assert found == expected


def test_search_text_and_filters_are_sent_as_the_hub_expects(
    civitai: DemoServer, make_hub: MakeHub
) -> None:
    list(make_hub().search("lcm", types=["lora"], bases=["sdxl"], sort="trending", limit=5))
    path = _search_pages(civitai)[0]
    for part in ("search=lcm", "filter=lora",
                 "filter=base_model%3Astabilityai%2Fstable-diffusion-xl-base-1.0",
                 "sort=trendingScore", "direction=-1", "limit=5", "expand=gated"):  # fmt: skip
        assert part in path


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"types": ["hypernetwork"]}, "unknown type"),
        ({"bases": ["pony"]}, "unknown base"),
        ({"sort": "newest"}, "unknown sort"),
    ],
)
def test_words_the_hub_cannot_express_are_usage_errors(
    kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        hub_query(**kwargs)  # type: ignore[arg-type]


def test_a_base_can_be_any_repo_id() -> None:
    assert hub_query(bases=["stable-diffusion-v1-5/stable-diffusion-v1-5"]).filters == (
        "base_model:stable-diffusion-v1-5/stable-diffusion-v1-5",
    )


def test_ratelimit_header_gives_the_wait() -> None:
    assert parse_ratelimit_reset('"api";r=0;t=89') == 90
    assert parse_ratelimit_reset('"resolvers";r=12;t=89') is None
    assert parse_ratelimit_reset("nonsense") is None
    assert parse_ratelimit_reset(None) is None


@pytest.mark.parametrize(
    ("path", "tags", "diffusers", "kind", "layout"),
    [
        ("sdxl_vae.safetensors", (), False, Kind.VAE, "single-file"),
        ("ae.safetensors", (), False, Kind.VAE, "single-file"),
        ("pytorch_lora_weights.safetensors", ("lora",), False, Kind.LORA, "single-file"),
        ("sd_xl_offset_example-lora_1.0.safetensors", (), False, Kind.LORA, "single-file"),
        ("control_v11p_sd15_canny_fp16.safetensors", (), False, Kind.CONTROLNET, "single-file"),
        ("EasyNegative.safetensors", ("textual_inversion",), False, Kind.EMBEDDING,
         "single-file"),
        ("v1-5-pruned-emaonly.safetensors", ("text-to-image",), True, Kind.CHECKPOINT,
         "single-file"),
        ("flux1-dev-Q4_K_S.gguf", ("text-to-image",), False, Kind.CHECKPOINT, "single-file"),
        ("unet/diffusion_pytorch_model.safetensors", (), True, Kind.UNET, "diffusers"),
        ("vae/diffusion_pytorch_model.fp16.safetensors", (), True, Kind.VAE, "diffusers"),
        ("text_encoder/model.safetensors", (), True, Kind.TEXT_ENCODER, "diffusers"),
        ("unet/config.json", (), True, Kind.UNKNOWN, "diffusers"),
        ("README.md", (), False, Kind.UNKNOWN, "other"),
        ("pytorch_model.bin", (), False, Kind.UNKNOWN, "other"),
    ],
)  # fmt: skip
def test_files_are_guessed_from_names_folders_and_tags(
    path: str, tags: tuple[str, ...], diffusers: bool, kind: Kind, layout: str
) -> None:
    guess = guess_file(path, tags, diffusers)
    assert (guess.kind, guess.layout) == (kind, layout)
    assert guess.to_dict()["guessed"] is True


def test_card_summary_skips_front_matter_headings_and_images() -> None:
    card = "---\nlicense: mit\ntags:\n- a\n---\n\n# Title\n\n![img](x.png)\n\n"
    card += "First line\nsecond.\n\nMore."
    assert card_summary(card) == "First line second."
    assert card_summary("---\nlicense: mit\n---\n# Only a title\n") is None
    assert len(card_summary("word " * 200) or "") == 300


# --- where the endpoint and the token come from ---------------------------------------------


def test_endpoint_from_the_environment_over_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[huggingface]\nendpoint = "https://mirror.example/"\n')
    assert load_settings(config, env={}).huggingface.endpoint == "https://mirror.example"
    env = {"HF_ENDPOINT": "http://127.0.0.1:9/"}
    assert load_settings(config, env=env).huggingface.endpoint == "http://127.0.0.1:9"
    env["SDLIB_HF_ENDPOINT"] = "http://127.0.0.1:8"
    assert load_settings(config, env=env).huggingface.endpoint == "http://127.0.0.1:8"
    assert load_settings(tmp_path / "none.toml", env={}).huggingface.endpoint == (
        "https://huggingface.co"
    )


def test_a_bad_endpoint_is_a_config_error(tmp_path: Path) -> None:
    from sdlib.errors import ConfigError

    with pytest.raises(ConfigError, match=r"huggingface\.endpoint"):
        load_settings(tmp_path / "none.toml", env={"HF_ENDPOINT": "huggingface.co"})


def test_token_from_env_then_config_then_the_hf_login_file(tmp_path: Path) -> None:
    home = tmp_path / "hfhome"
    home.mkdir()
    (home / "token").write_text("hf_from_file\n")
    none = tmp_path / "none.toml"
    env = {"HF_HOME": str(home)}
    assert load_settings(none, env=env).huggingface.token == "hf_from_file"
    config = tmp_path / "c.toml"
    config.write_text('[huggingface]\ntoken = "hf_from_config"\n')
    config.chmod(0o600)
    assert load_settings(config, env=env).huggingface.token == "hf_from_config"
    assert load_settings(config, env={**env, "HF_TOKEN": " hf_env "}).huggingface.token == "hf_env"
    legacy = {**env, "HUGGING_FACE_HUB_TOKEN": "hf_legacy"}
    assert load_settings(none, env=legacy).huggingface.token == "hf_legacy"


def test_token_file_locations_are_huggingface_hubs(tmp_path: Path) -> None:
    path_file = tmp_path / "elsewhere" / "tok"
    path_file.parent.mkdir()
    path_file.write_text("hf_path\n")
    none = tmp_path / "none.toml"
    assert load_settings(none, env={"HF_TOKEN_PATH": str(path_file)}).huggingface.token == (
        "hf_path"
    )
    xdg = tmp_path / "xdg"
    (xdg / "huggingface").mkdir(parents=True)
    (xdg / "huggingface" / "token").write_text("hf_xdg")
    assert load_settings(none, env={"XDG_CACHE_HOME": str(xdg)}).huggingface.token == "hf_xdg"
    assert (
        load_settings(none, env={"XDG_CACHE_HOME": str(tmp_path / "empty")}).huggingface.token
        is None
    )


def test_the_retry_waits_as_long_as_the_hubs_ratelimit_header_says() -> None:
    answers = iter([
        httpx2.Response(429, headers={"RateLimit": '"api";r=0;t=7'}),
        httpx2.Response(200, json=[]),
    ])  # fmt: skip
    waits: list[float] = []
    transport = RetryTransport(httpx2.MockTransport(lambda _r: next(answers)), retries=2,
                               backoff_max=30, sleep=waits.append)  # fmt: skip
    with httpx2.Client(transport=transport) as client:
        assert client.get("https://hub.example/api/models").status_code == 200
    assert waits == [8.0]  # t + 1, not the 1 s exponential first step
