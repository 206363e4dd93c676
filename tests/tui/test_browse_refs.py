"""Browse's search box given a reference (issue 17 item 1 through the TUI) and ``d`` on what
Civitai no longer serves (item 7), against the demo server (Civitai, its Hub and its
CivArchive host, real sockets). Expected values come from the demo catalogue and from
hashlib over the bytes served, never from what sdlib printed."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
from textual.widgets import Input

from sdlib.config import CivarchiveSettings, HuggingfaceSettings, Settings
from sdlib.demo._civarchive_api import ARCHIVE_ONLY
from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from sdlib.tui.downloads import JobState
from sdlib.tui.screens.browse import BrowseScreen
from sdlib.tui.widgets.hub_detail import HubDetail
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

pytestmark = pytest.mark.anyio

DREAMSHAPER = next(m for m in CATALOGUE if m.id == 4384)
OLDER = DREAMSHAPER.versions[1]  # "7": not the newest, so opening it is the reference's doing
PROTOGEN = next(m for m in CATALOGUE if m.mode == "Archived")
GONE = ARCHIVE_ONLY.versions[0]


@pytest.fixture
def all_settings(civitai: DemoServer, settings: Settings) -> Settings:
    return replace(
        settings,
        huggingface=HuggingfaceSettings(endpoint=civitai.hub_url),
        civarchive=CivarchiveSettings(base_url=civitai.civarchive_url),
    )


def searches(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/api/v1/models?")]


def rows(app: Any) -> list[str]:
    table = app.screen.query_one(ResultsTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def paste(pilot: Any, ui: Any, text: str) -> None:
    """Type ``text`` into the search box (as a paste lands) and press enter."""
    await ui.settle(pilot)
    await pilot.press("slash")
    pilot.app.screen.query_one("#query", Input).value = text
    await pilot.press("enter")
    await ui.settle(pilot)


def live_mirror_bytes(server: DemoServer, version_id: int, file_id: int) -> bytes:
    record = httpx2.get(f"{server.civarchive_url}/api/models/1",
                        params={"modelVersionId": str(version_id)}).json()  # fmt: skip
    [live] = [m for f in record["version"]["files"] if f["id"] == file_id
              for m in f["mirrors"] if m["deletedAt"] is None]  # fmt: skip
    return httpx2.get(live["url"]).content


@pytest.mark.parametrize(
    "ref",
    [
        "{url}/models/4384?modelVersionId=109123",
        "https://civitai.com/models/4384/dreamshaper?modelVersionId=109123",
        "civitai.red/models/4384?modelVersionId=109123",
        "4384@109123",
        "urn:air:sd1:checkpoint:civitai:4384@109123",
        "civitai:4384@109123",
    ],
    ids=["configured-url", "civitai.com", "civitai.red", "model@version", "air", "civitai:"],
)
async def test_a_pasted_civitai_reference_opens_the_version_it_names(
    make_app: Any, all_settings: Settings, civitai: DemoServer, ui: Any, ref: str
) -> None:
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        before = len(searches(civitai))
        await paste(pilot, ui, ref.format(url=civitai.url))
        assert len(searches(civitai)) == before  # opened, not searched for
        detail = app.screen.query_one(ModelDetail)
        assert detail.model is not None and detail.model.id == DREAMSHAPER.id
        assert detail.version is not None and detail.version.id == OLDER.id
        assert rows(app) == [DREAMSHAPER.name]
        text = ui.text(app)
        assert DREAMSHAPER.name in text and OLDER.files[0].name in text


async def test_words_that_are_no_reference_still_search(
    make_app: Any, all_settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await paste(pilot, ui, "dreamshaper")
        assert "query=dreamshaper" in searches(civitai)[-1]
        assert DREAMSHAPER.name in rows(app)
        await paste(pilot, ui, "4384")  # a bare number may be a name: searched
        assert "query=4384" in searches(civitai)[-1]


async def test_a_pasted_hub_link_switches_source_and_d_takes_the_file_it_names(
    make_app: Any, all_settings: Settings, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    repo = "stabilityai/stable-diffusion-xl-base-1.0"
    name = "sd_xl_offset_example-lora_1.0.safetensors"
    link = f"https://huggingface.co/{repo}/blob/main/{name}?download=true"
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await paste(pilot, ui, link)
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        assert "Hugging Face" in ui.text(app)  # the source switched
        detail = screen.query_one(HubDetail)
        assert detail.repo is not None and detail.repo.model.id == repo
        assert rows(app) == [repo]
        # The repo has three single-file models: d takes the one the link names, no picker.
        await pilot.press("d")
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        assert job.result is not None and job.result.path.name == name
        assert job.result.path.parent == webui / "models" / "Lora"
        digest = hashlib.sha256(job.result.path.read_bytes()).hexdigest()
        assert digest == civitai.hub.files[(repo, name)].sha256


async def test_a_malformed_link_on_civitai_is_said_not_searched(
    make_app: Any, all_settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        before = len(searches(civitai))
        await paste(pilot, ui, "https://civitai.com/images/123")
        assert len(searches(civitai)) == before
        assert "names no model or version" in ui.text(app)


async def test_a_version_gone_from_civitai_offers_its_mirror_and_d_downloads_it(
    make_app: Any, all_settings: Settings, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    file = GONE.files[0]
    expected = hashlib.sha256(live_mirror_bytes(civitai, GONE.id, file.id)).hexdigest().upper()
    host = civitai.civarchive_url.removeprefix("http://")
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        civitai.clear_requests()
        await paste(pilot, ui, f"{ARCHIVE_ONLY.id}@{GONE.id}")
        text = ui.text(app)
        assert f"source: CivArchive mirror ({host})" in text, text
        assert expected in text and file.name in text
        assert not [q for q in civitai.requests if "/mirror/" in q.path]  # offered, not fetched
        await pilot.press("d")
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        assert job.result is not None and job.result.source == "civarchive"
        assert job.result.path.parent == webui / "models" / "Lora"
        assert hashlib.sha256(job.result.path.read_bytes()).hexdigest().upper() == expected


async def test_d_on_an_archived_version_takes_its_mirror(
    make_app: Any, all_settings: Settings, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    """Protogen: Civitai lists the version without files (and answers 410 at its download);
    search does not list it, its link opens it."""
    served = civitai.files[PROTOGEN.versions[0].files[0].id]
    assert served.path is not None
    expected = hashlib.sha256(served.path.read_bytes()).hexdigest().upper()
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await paste(pilot, ui, f"{civitai.url}/models/{PROTOGEN.id}")
        detail = app.screen.query_one(ModelDetail)
        assert detail.model is not None and detail.model.id == PROTOGEN.id
        text = ui.text(app)
        assert "source: CivArchive mirror" in text and expected in text, text
        await pilot.press("d")
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        assert job.result is not None
        assert job.result.path.parent == webui / "models" / "Stable-diffusion"
        assert hashlib.sha256(job.result.path.read_bytes()).hexdigest().upper() == expected


async def test_without_civarchive_a_gone_version_says_not_found(
    make_app: Any, settings: Settings, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await paste(pilot, ui, f"{ARCHIVE_ONLY.id}@{GONE.id}")
        assert "not found" in ui.text(app)
        await pilot.press("d")
        await ui.settle(pilot)
        assert len(app.downloads) == 0
        assert not [q for q in civitai.requests if q.server == "civarchive"]


async def test_d_on_a_version_without_files_looks_elsewhere_then_d_again_downloads(
    make_app: Any, all_settings: Settings, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    """The offer is not known yet (CivArchive was down when the model opened): d asks
    where a download would take it, shows that, and only the second d queues it."""
    served = civitai.files[PROTOGEN.versions[0].files[0].id]
    assert served.path is not None
    expected = hashlib.sha256(served.path.read_bytes()).hexdigest().upper()
    app = make_app(all_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        civitai.civarchive.fault = "down"
        await paste(pilot, ui, f"{civitai.url}/models/{PROTOGEN.id}")
        assert "source: CivArchive" not in ui.text(app)
        civitai.civarchive.fault = None
        await pilot.press("d")
        await ui.settle(pilot)
        text = ui.text(app)
        assert "source: CivArchive mirror" in text and expected in text, text
        assert len(app.downloads) == 0  # shown first, not queued
        await pilot.press("d")
        await ui.until(pilot, lambda: any(j.state is JobState.DONE for j in app.downloads),
                       what="the download")  # fmt: skip
        [job] = list(app.downloads)
        assert job.result is not None and job.result.source == "civarchive"
        assert hashlib.sha256(job.result.path.read_bytes()).hexdigest().upper() == expected
