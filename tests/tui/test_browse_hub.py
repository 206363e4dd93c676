"""Browse's source switch: the Hugging Face Hub searched, read and downloaded from, against
the demo server's Hub (real sockets). Expected values come from the demo catalogue's
specs and from hashlib over the bytes, never from what sdlib printed."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select

from sdlib.config import HuggingfaceSettings, Settings
from sdlib.demo.hub_catalogue import HUB_CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.tui.downloads import JobState
from sdlib.tui.screens.browse import BrowseScreen
from sdlib.tui.screens.dialogs import HubFileDialog
from sdlib.tui.widgets.hub_detail import HubDetail
from sdlib.tui.widgets.results import ResultsTable

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_settings(civitai: DemoServer, settings: Settings) -> Settings:
    return replace(settings, huggingface=HuggingfaceSettings(endpoint=civitai.hub_url))


def rows(app: Any) -> list[str]:
    table = app.screen.query_one(ResultsTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def keys(app: Any) -> list[str]:
    return [str(k.value) for k in app.screen.query_one(ResultsTable).rows]


def hub_searches(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/api/models?")]


def spec(repo: str) -> Any:
    return next(r for r in HUB_CATALOGUE if r.id == repo)


async def to_hub(pilot: Any, ui: Any) -> None:
    await ui.settle(pilot)
    await pilot.press("s")
    await ui.settle(pilot)


async def open_repo(pilot: Any, ui: Any, repo: str) -> HubDetail:
    app = pilot.app
    app.screen.query_one(ResultsTable).move_cursor(row=rows(app).index(repo))
    await pilot.press("enter")
    detail = app.screen.query_one(HubDetail)
    # The files, then the headers (peeked) arrive from the detail worker.
    await ui.until(pilot, lambda: detail.peeks is not None, what=f"{repo} read")
    await ui.settle(pilot)
    return detail


async def test_s_switches_to_the_hub_with_its_columns_and_filters(
    make_app: Any, hub_settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(hub_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        assert "Hugging Face" in ui.text(app)
        # Every demo repo, most downloaded first (the Hub's default sort).
        by_downloads = sorted(HUB_CATALOGUE, key=lambda r: -r.downloads)
        assert rows(app) == [r.id for r in by_downloads]
        assert "sort=downloads" in hub_searches(civitai)[-1]
        table = screen.query_one(ResultsTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["repo", "base", "gated", "dl", "likes", "updated"]
        flux = table.get_row_at(rows(app).index("black-forest-labs/FLUX.1-dev"))
        assert [str(c) for c in flux[1:3]] == ["flux", "auto"]
        # Civitai's filters (and NSFW) make no sense on the Hub: not shown.
        assert not screen.query_one("#filters").display and not screen.query_one("#nsfw").display
        assert screen.query_one("#hub-filters").display and screen.query_one("#hub-sort").region
        assert "Copy words" not in ui.text(app)

        # The query box and the Hub's filters send the Hub's parameters.
        await pilot.press("slash", *"vae", "enter")
        await ui.settle(pilot)
        assert "search=vae" in hub_searches(civitai)[-1]
        assert sorted(rows(app)) == ["madebyollin/sdxl-vae-fp16-fix", "stabilityai/sdxl-vae"]
        screen.query_one("#hub-sort", Select).value = "likes"
        await ui.settle(pilot)
        assert "sort=likes" in hub_searches(civitai)[-1]
        assert rows(app) == ["stabilityai/sdxl-vae", "madebyollin/sdxl-vae-fp16-fix"]  # 812, 600
        screen.query_one("#query", Input).value = ""
        await pilot.press("slash", "enter")
        screen.query_one("#hub-type", Select).value = "lora"
        await ui.settle(pilot)
        assert "filter=lora" in hub_searches(civitai)[-1]
        assert sorted(rows(app)) == ["latent-consistency/lcm-lora-sdv1-5",
                                     "latent-consistency/lcm-lora-sdxl"]  # fmt: skip

        # And back: Civitai's results and filters again.
        await pilot.press("s")
        await ui.settle(pilot)
        assert "DreamShaper" in rows(app) and screen.query_one("#filters").display
        assert not screen.query_one("#hub-filters").display


async def test_hub_results_come_in_pages_until_the_view_is_full(
    make_app: Any, hub_settings: Settings, ui: Any
) -> None:
    """Two repos a page: pages fill the view, then the next is taken as the cursor nears
    the end, in the Hub's order, none twice, until the search has no more."""
    app = make_app(hub_settings, page_size=2)
    async with app.run_test(size=(80, 10)) as pilot:  # 4 rows in view
        await to_hub(pilot, ui)
        by_downloads = [f"hf:{r.id}" for r in sorted(HUB_CATALOGUE, key=lambda r: -r.downloads)]
        first = keys(app)
        assert 4 <= len(first) < len(by_downloads) and first == by_downloads[: len(first)]
        assert "more below" in ui.text(app)
        for _ in range(len(by_downloads)):
            if len(keys(app)) == len(by_downloads):
                break
            await pilot.press("end")
            await ui.settle(pilot)
        assert keys(app) == by_downloads
        assert "9 repos" in ui.text(app) and "more below" not in ui.text(app)


async def test_a_failed_hub_search_leaves_no_stale_results(
    make_app: Any, hub_settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(hub_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        assert rows(app)
        civitai.hub.add_fault("500", match="/api/models")  # every try, retries too
        await pilot.press("slash", *"sdxl", "enter")
        await ui.settle(pilot)
        assert rows(app) == []
        assert "search failed" in ui.text(app)
        civitai.hub.reset()
        app.screen.query_one("#query", Input).value = "no-such-repo-anywhere"
        await pilot.press("slash", "enter")
        await ui.settle(pilot)
        assert rows(app) == [] and "no repos found" in ui.text(app)


async def test_a_repo_shows_card_license_files_headers_and_folders(
    make_app: Any, hub_settings: Settings, ui: Any
) -> None:
    repo = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    app = make_app(hub_settings)
    async with app.run_test(size=(120, 60)) as pilot:
        await to_hub(pilot, ui)
        detail = await open_repo(pilot, ui, repo)
        text = ui.text(app)
        assert "Stable Diffusion is a latent text-to-image diffusion model" in text
        assert "license: creativeml-openrail-m" in text
        assert "v1-5-pruned-emaonly.safetensors" in text
        # Its header was read: an SD 1 checkpoint (the demo wrote sd15_checkpoint specs).
        assert "checkpoint, sd1, fp16" in text
        files = {f.path: f for f in detail.repo.files} if detail.repo else {}
        # Every SHA256 shown uppercase (issue 16), the Hub's too; its LFS sha256 is lowercase.
        sha = files["v1-5-pruned-emaonly.safetensors"].sha256
        assert sha is not None and sha == sha.lower()
        assert f"SHA256 {sha.upper()}" in text and sha not in text
        for folder in ("unet/", "vae/", "text_encoder/", "scheduler/"):
            assert folder in text


async def test_download_a_vae_from_the_hub_into_the_webui(
    make_app: Any, hub_settings: Settings, webui: Path, civitai: DemoServer, ui: Any
) -> None:
    repo = "stabilityai/sdxl-vae"
    app = make_app(hub_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        await open_repo(pilot, ui, repo)
        await pilot.press("d")  # one single-file model: queued at once
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        placed = webui / "models" / "VAE" / "sdxl_vae.safetensors"
        assert job.result is not None and job.result.path == placed
        digest = hashlib.sha256(placed.read_bytes()).hexdigest()
        assert digest == civitai.hub.files[(repo, "sdxl_vae.safetensors")].sha256
        assert job.result.verified and job.result.sha256.lower() == digest
        await pilot.press("2")
        await ui.settle(pilot)
        text = ui.text(app)
        assert "sdxl_vae.safetensors" in text
        assert f"SHA256 {digest.upper()} verified" in text, text


async def test_several_single_files_ask_which(
    make_app: Any, hub_settings: Settings, webui: Path, ui: Any
) -> None:
    app = make_app(hub_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        await open_repo(pilot, ui, "stabilityai/stable-diffusion-xl-base-1.0")
        await pilot.press("d")
        await ui.settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, HubFileDialog)
        singles = [f.path for f in spec("stabilityai/stable-diffusion-xl-base-1.0").files
                   if f.path.endswith(".safetensors") and "/" not in f.path]  # fmt: skip
        text = ui.text(app)
        assert all(name in text for name in singles)
        # The highlighted first file is an SDXL checkpoint (its header says so): where it goes.
        await ui.until(pilot, lambda: "where: ~/webui/models/Stable-diffusion" in ui.text(app),
                       what="where the file goes")  # fmt: skip
        await pilot.press("escape")
        await ui.settle(pilot)
        assert len(app.downloads) == 0


@pytest.mark.parametrize("token", [None, "hf_demo_pending"], ids=["no-login", "not-approved"])
async def test_a_gated_repo_without_access_says_why(
    make_app: Any, hub_settings: Settings, webui: Path, ui: Any, token: str | None
) -> None:
    repo = "black-forest-labs/FLUX.1-dev"
    hub = replace(hub_settings.huggingface, token=token)
    app = make_app(replace(hub_settings, huggingface=hub))
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        detail = await open_repo(pilot, ui, repo)
        text = ui.text(app)
        assert "Gated (auto)" in text and "ae.safetensors" in text
        assert detail.peeks is not None and detail.peeks["ae.safetensors"].error
        await pilot.press("d")
        await ui.until(pilot, lambda: any("No access" in n for n in ui.notifications(app)),
                       what="the refusal")  # fmt: skip
        [note] = [n for n in ui.notifications(app) if "No access" in n]
        assert "gated" in note and f"/{repo}" in note  # where to request access
        assert ("not (yet) in its authorized list" in note) if token else "log in" in note
        assert note.split(": ", 1)[1] in ui.text(app).replace("\n ", " ")  # and in the pane
        assert len(app.downloads) == 0  # nothing queued to fail later
        assert isinstance(app.screen, BrowseScreen) and app.is_running


def test_tui_demo_points_the_hub_at_the_demo_server(tmp_path: Path) -> None:
    """`sdlib tui --demo`: Browse's Hub is the demo's, asked without any real token."""
    import httpx2

    from sdlib.cli.tui_cmd import _start_demo

    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        huggingface=HuggingfaceSettings(token="hf_a_real_users_token"),
    )
    demo, server, _root = _start_demo(settings)
    try:
        assert demo.huggingface.endpoint == server.hub_url != settings.huggingface.endpoint
        assert demo.huggingface.token is None
        answer = httpx2.get(f"{server.hub_url}/api/models", params={"search": "sdxl-vae"})
        assert answer.status_code == 200
        assert "stabilityai/sdxl-vae" in [m["id"] for m in answer.json()]
    finally:
        server.stop()


async def test_a_gated_repo_with_access_downloads(
    make_app: Any, hub_settings: Settings, webui: Path, civitai: DemoServer, ui: Any
) -> None:
    """The demo Hub grants hf_demo_token every gated repo: d resolves, then queues."""
    repo = "black-forest-labs/FLUX.1-dev"
    hub = replace(hub_settings.huggingface, token="hf_demo_token")
    app = make_app(replace(hub_settings, huggingface=hub))
    async with app.run_test(size=(120, 40)) as pilot:
        await to_hub(pilot, ui)
        detail = await open_repo(pilot, ui, repo)
        assert detail.peeks is not None and not detail.peeks["ae.safetensors"].error
        await pilot.press("d")
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        assert job.result is not None and job.result.path.parent == webui / "models" / "VAE"
        served = civitai.hub.files[(repo, "ae.safetensors")]
        assert hashlib.sha256(job.result.path.read_bytes()).hexdigest() == served.sha256


async def test_compact_layout_opens_a_repo_in_place_and_escape_goes_back(
    make_app: Any, hub_settings: Settings, ui: Any
) -> None:
    app = make_app(hub_settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_hub(pilot, ui)
        screen = app.screen
        detail = await open_repo(pilot, ui, "stabilityai/sdxl-vae")
        assert detail.display and not screen.query_one(ResultsTable).display
        assert "sdxl_vae.safetensors" in ui.text(app)
        await pilot.press("escape")
        await ui.settle(pilot)
        assert screen.query_one(ResultsTable).display and not detail.display
