"""Browse against the local Civitai-compatible server: search, paging, filters, details."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.widgets import Input, Markdown, Select, Static

from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.tui.screens.browse import BrowseScreen, _periods, _sorts
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

pytestmark = pytest.mark.anyio


def names(app: Any) -> list[str]:
    table = app.screen.query_one(ResultsTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def model_requests(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/api/v1/models?")]


async def test_first_page_then_more_as_the_cursor_nears_the_end(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(page_size=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        first = names(app)
        # 40 rows of space: short pages are followed until the view is full.
        assert len(first) == 12 and first[:2] == ["EasyNegative", "DreamShaper"]
        paged = model_requests(civitai)
        assert len(paged) == 3 and all("limit=4" in p for p in paged)
        assert "cursor=" not in paged[0] and "cursor=" in paged[1]
        assert "12 models" in ui.text(app)


async def test_scrolling_to_the_end_loads_the_next_page(
    civitai: DemoServer, settings_for: Any, make_app: Any, ui: Any
) -> None:
    app = make_app(settings_for(nsfw=True), page_size=10)  # 15 models
    async with app.run_test(size=(80, 10)) as pilot:  # 4 rows in view: one page is plenty
        await ui.settle(pilot)
        assert len(names(app)) == 10
        assert "more below" in ui.text(app)
        await pilot.press("end")  # the cursor reaches the last rows: fetch the next page
        await ui.until(pilot, lambda: len(names(app)) == 15, what="second page")
        await ui.settle(pilot)
        assert "more below" not in ui.text(app)
        assert len(model_requests(civitai)) == 2


async def test_query_and_filters_send_civitai_parameters(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"dream", "enter")
        await ui.settle(pilot)
        assert names(app)[0] == "DreamShaper"
        assert "query=dream" in model_requests(civitai)[-1]

        screen = app.screen
        screen.query_one("#query", Input).value = ""
        await pilot.press("slash", "enter")
        screen.query_one("#type", Select).value = "LORA"
        await ui.settle(pilot)
        assert names(app) == ["Detail Tweaker LoRA (细节调整LoRA)"]
        assert "types=LORA" in model_requests(civitai)[-1]

        screen.query_one("#type", Select).value = Select.NULL
        screen.query_one("#base", Select).value = "sdxl"
        screen.query_one("#sort", Select).value = "Newest"
        await ui.settle(pilot)
        last = model_requests(civitai)[-1]
        assert "baseModels=SDXL+1.0" in last and "sort=Newest" in last
        assert names(app) == ["SD XL"]


async def test_nsfw_results_only_when_ticked(make_app: Any, civitai: DemoServer, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        assert "ChilloutMix" not in names(app) and len(names(app)) == 12
        assert "nsfw=" not in model_requests(civitai)[-1]
        app.screen.query_one("#nsfw").value = True
        await ui.settle(pilot)
        assert "ChilloutMix ⚠" in names(app) and len(names(app)) == 15
        assert "nsfw=true" in model_requests(civitai)[-1]


async def test_detail_shows_versions_files_words_and_settings(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        table = app.screen.query_one(ResultsTable)
        table.move_cursor(row=names(app).index("Retro Anime Style (LoHa)"))
        await pilot.press("enter")
        await ui.settle(pilot)
        detail = app.screen.query_one(ModelDetail)
        assert detail.model is not None and detail.model.id == 7371
        assert detail.version is not None and detail.version.air  # the full /model-versions
        text = ui.text(app)
        assert "retroAnime_v20.safetensors" in text and "SafeTensor" in text
        assert "retro anime, 1990s style" in text
        assert "CLIP skip 2" in text and "Euler a" in text and "28 steps" in text
        versions = detail.query_one("#versions", Select)
        assert versions.value == 8217

        await pilot.press("c")
        assert app.clipboard == "retro anime, 1990s style"

        versions.value = 8100  # the older version
        await ui.settle(pilot)
        assert detail.version.id == 8100
        assert "retroAnime_v10.safetensors" in ui.text(app)


async def test_description_html_becomes_markdown(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        app.screen.query_one(ResultsTable).move_cursor(row=names(app).index("DreamShaper"))
        await pilot.press("enter")
        await ui.settle(pilot)
        markdown = app.screen.query_one("#description", Markdown)
        assert markdown.source == "A general purpose SD model that aims at doing everything well."


async def test_compact_layout_opens_detail_in_place_and_escape_goes_back(
    make_app: Any, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        screen = app.screen
        assert screen.has_class("-compact")
        assert screen.query_one(ResultsTable).display
        await pilot.press("down", "enter")
        await ui.settle(pilot)
        assert not screen.query_one(ResultsTable).display
        assert "DreamShaper" in ui.text(app) and "esc Results" in ui.text(app)
        await pilot.press("escape")
        assert screen.query_one(ResultsTable).display
        assert app.focused is screen.query_one(ResultsTable)


async def test_slow_server_does_not_block_keys(
    civitai: DemoServer, settings: Settings, make_app: Any, ui: Any
) -> None:
    """While the search waits on the server, keys switch screens and type into the search
    field; the answer shows when it comes. The server holds its answer until the test has
    pressed its keys (no clock: under load a key can take longer than any fixed delay)."""
    import threading

    import httpx2

    from sdlib.config import CivitaiSettings, NetworkSettings
    from tests.support.hostile import Answer, HostileServer

    release = threading.Event()

    def held(query: Any) -> Answer:
        release.wait(timeout=120)
        params = [(k, v) for k, values in query.items() for v in values]
        return Answer.json(httpx2.get(f"{civitai.url}/api/v1/models", params=params).json())

    with HostileServer() as slow:
        slow.route("/api/v1/models", held)
        patient = NetworkSettings(retries=0, read_timeout=120)  # held, never timed out
        app = make_app(
            replace(settings, civitai=CivitaiSettings(base_url=slow.url), network=patient)
        )
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                started = lambda: slow.count("/api/v1/models") >= 1  # noqa: E731
                await ui.until(pilot, started, timeout=60, what="the request")
                await pilot.press("2")  # while the request is open
                assert app.current_mode == "downloads"
                await pilot.press("1", "slash", *"abc")
                assert app.screen.query_one("#query", Input).value == "abc"
                searching = [w for w in app.workers if w.group == "search" and w.is_running]
                assert searching, "the search is still waiting for the server"
                assert names(app) == []
            finally:
                release.set()
            await ui.until(pilot, lambda: len(names(app)) == 12, timeout=60, what="the answer")
            await ui.settle(pilot)  # the detail of the first result, before the app closes


async def test_a_failed_search_is_a_notification_not_a_crash(
    civitai: DemoServer, make_app: Any, ui: Any
) -> None:
    civitai.add_fault("500", match="/api/v1/models")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        assert any("Search failed" in n and "HTTP 500" in n for n in ui.notifications(app))
        assert "search failed" in str(app.screen.query_one("#browse-status", Static).render())
        civitai.clear_faults()
        await pilot.press("r")
        await ui.settle(pilot)
        assert len(names(app)) == 12


def test_sort_and_period_names_match_the_client() -> None:
    from sdlib.sources.civitai import PERIODS, SORTS

    assert _sorts() == SORTS and _periods() == PERIODS


async def test_version_picker_defaults_to_the_newest_in_creator_order(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    # The creator pinned v1.0 (2023-03-01) above v2.0 (2023-09-12): v2.0 is still the newest.
    civitai.version_order = "creator"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        table = app.screen.query_one(ResultsTable)
        table.move_cursor(row=names(app).index("Retro Anime Style (LoHa)"))
        await pilot.press("enter")
        await ui.settle(pilot)
        detail = app.screen.query_one(ModelDetail)
        assert detail.model is not None and [v.id for v in detail.model.versions] == [8100, 8217]
        versions = detail.query_one("#versions", Select)
        assert versions.value == 8217
        assert detail.version is not None and detail.version.id == 8217
        assert [v for _, v in versions._options if isinstance(v, int)] == [8217, 8100]
        assert "retroAnime_v20.safetensors" in ui.text(app)


async def test_load_more_stops_on_endless_empty_pages(
    make_app: Any, settings: Settings, ui: Any
) -> None:
    # A hostile server: empty pages with a fresh cursor forever. The view wants to fill
    # itself, so without the guard "load more" would run without end.
    import itertools

    from sdlib.config import CivitaiSettings
    from sdlib.sources.paging import MAX_EMPTY_PAGES
    from tests.support.hostile import Answer, HostileServer

    fresh = itertools.count()
    with HostileServer() as hostile:
        hostile.route(
            "/api/v1/models",
            lambda q: Answer.json({"items": [], "metadata": {"nextCursor": f"c{next(fresh)}"}}),
        )
        app = make_app(replace(settings, civitai=CivitaiSettings(base_url=hostile.url)))
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.until(pilot, lambda: "stopped paging" in ui.text(app), what="the stop")
            await pilot.pause(0.5)
            await ui.settle(pilot)
            assert hostile.count("/api/v1/models") == MAX_EMPTY_PAGES
            assert "empty pages in a row" in ui.text(app)
            await pilot.press("m")  # asking for more does not start again
            await ui.settle(pilot)
            assert hostile.count("/api/v1/models") == MAX_EMPTY_PAGES


async def test_load_more_stops_on_a_repeated_cursor(
    make_app: Any, settings: Settings, ui: Any
) -> None:
    # Civitai's known bug: past the last result it answers an empty page with the same
    # nextCursor again. One model, then that empty page forever: the view stops asking.
    from sdlib.config import CivitaiSettings
    from tests.support.hostile import Answer, HostileServer

    model = {"id": 1, "name": "Only One", "type": "LORA", "modelVersions": []}

    def page(query: Any) -> Answer:
        if "cursor" not in query:
            return Answer.json({"items": [model], "metadata": {"nextCursor": "c1"}})
        return Answer.json({"items": [], "metadata": {"nextCursor": "c1"}})

    with HostileServer() as hostile:
        hostile.route("/api/v1/models", page)
        app = make_app(replace(settings, civitai=CivitaiSettings(base_url=hostile.url)))
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.until(pilot, lambda: "stopped paging" in ui.text(app), what="the stop")
            await pilot.pause(0.5)
            await ui.settle(pilot)
            assert names(app) == ["Only One"]
            assert hostile.count("/api/v1/models") == 2  # the first page and c1, once
            assert "repeated a page cursor" in ui.text(app)
            await pilot.press("m")  # asking for more does not start again
            await ui.settle(pilot)
            assert hostile.count("/api/v1/models") == 2


@pytest.mark.parametrize(("ends", "shown"), [("2024-11-20T00:00:00.000Z", False),
                                             ("2999-01-01T00:00:00.000Z", True)])  # fmt: skip
async def test_early_access_shows_only_while_it_runs(
    make_app: Any, settings: Settings, ui: Any, ends: str, shown: bool
) -> None:
    from sdlib.config import CivitaiSettings
    from tests.support.hostile import Answer, HostileServer

    # Civitai's Nov 2024 shape keeps earlyAccessEndsAt after the date has passed.
    version = {"id": 2, "modelId": 1, "name": "v1", "baseModel": "SD 1.5",
               "publishedAt": "2024-11-13T00:00:00.000Z", "earlyAccessEndsAt": ends,
               "files": [{"id": 3, "name": "m.safetensors", "sizeKB": 10, "type": "Model",
                          "primary": True, "metadata": {"format": "SafeTensor"}}],
               "model": {"name": "Early Bird", "type": "LORA"}}  # fmt: skip
    model = {"id": 1, "name": "Early Bird", "type": "LORA", "modelVersions": [version]}
    with HostileServer() as server:
        server.route("/api/v1/models", Answer.json({"items": [model], "metadata": {}}))
        server.route("/api/v1/model-versions/2", Answer.json(version))
        server.route("/api/v1/images", Answer.json({"items": [], "metadata": {}}))
        app = make_app(replace(settings, civitai=CivitaiSettings(base_url=server.url)))
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.settle(pilot)
            await pilot.press("enter")
            await ui.settle(pilot)
            detail = app.screen.query_one(ModelDetail)
            assert detail.version is not None and detail.version.id == 2
            assert ("Early access until" in ui.text(app)) is shown


@pytest.mark.parametrize("fails", [False, True], ids=["no-hits", "server-error"])
async def test_an_empty_or_failed_search_clears_the_old_results(
    civitai: DemoServer, make_app: Any, ui: Any, fails: bool
) -> None:
    """After a search that finds nothing (or fails), the previous model is gone from the
    table and the detail, and `d` has nothing to download."""
    from sdlib.tui.screens.dialogs import DownloadDialog

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("down", "enter")
        await ui.settle(pilot)
        assert "DreamShaper" in ui.text(app)  # the detail of the highlighted model
        if fails:
            civitai.add_fault("500", match="/api/v1/models")
        await pilot.press("slash", *"qqqzzz", "enter")
        await ui.settle(pilot)
        assert names(app) == []
        screen = app.screen
        assert not screen.query_one(ModelDetail).display
        assert "DreamShaper" not in ui.text(app)
        status = str(screen.query_one("#browse-status", Static).render())
        assert ("search failed" in status) if fails else ("no models found" in status)
        await pilot.press("d")
        await ui.settle(pilot)
        assert not isinstance(app.screen, DownloadDialog)
        assert any("nothing selected" in n for n in ui.notifications(app))
        await pilot.press("enter")
        await ui.settle(pilot)
        assert list(app.downloads) == []
